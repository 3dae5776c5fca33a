//! Live viewers for `benches/live-run`: opens one WebSocket per `--camera` (repeat a camera to
//! have several viewers of it) on the hub's live route, reads everything for `--seconds`, and
//! prints one JSON line: per viewer the time from opening the socket to the init segment and
//! to the first picture, the pictures and bytes received, and how the socket ended.
//!
//! Usage: live_viewers --hub 127.0.0.1:PORT --token TOKEN --seconds S [--stream sub|main]
//!        [--h265 true|false] --camera ID [--camera ID ...]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Args {
    hub: String,
    token: String,
    seconds: u64,
    stream: String,
    h265: String,
    cameras: Vec<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        hub: String::new(),
        token: String::new(),
        seconds: 30,
        stream: "sub".into(),
        h265: "false".into(),
        cameras: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--hub" => a.hub = value,
            "--token" => a.token = value,
            "--seconds" => a.seconds = value.parse()?,
            "--stream" => a.stream = value,
            "--h265" => a.h265 = value,
            "--camera" => a.cameras.push(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.hub.is_empty() || a.cameras.is_empty() {
        bail!("--hub and at least one --camera are required");
    }
    Ok(a)
}

#[derive(Default)]
struct Viewer {
    init_ms: Option<f64>,
    first_picture_ms: Option<f64>,
    pictures: u64,
    bytes: u64,
    end: String,
}

async fn view(a: &Args, camera: &str, until: Instant) -> Viewer {
    let mut v = Viewer::default();
    let url = format!(
        "ws://{}/api/v1/cameras/{camera}/live?stream={}&h265={}",
        a.hub, a.stream, a.h265
    );
    let mut request = url.into_client_request().expect("a valid URL");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", a.token)
            .parse()
            .expect("a valid header"),
    );
    let opened = Instant::now();
    let ms = || opened.elapsed().as_secs_f64() * 1e3;
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((s, _)) => s,
        Err(e) => {
            v.end = format!("refused: {e}");
            return v;
        }
    };
    let mut segments = 0u64;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, socket.next()).await {
            Err(_) => {
                v.end = "done".into();
                break;
            }
            Ok(None) => {
                v.end = "ended".into();
                break;
            }
            Ok(Some(Err(e))) => {
                v.end = format!("error: {e}");
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        match message {
            Message::Binary(b) => {
                segments += 1;
                v.bytes += b.len() as u64;
                if segments == 1 {
                    v.init_ms = Some(ms());
                } else {
                    v.pictures += 1;
                    v.first_picture_ms.get_or_insert_with(ms);
                }
            }
            Message::Close(frame) => {
                v.end = format!("closed: {frame:?}");
                break;
            }
            _ => {}
        }
    }
    v
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let viewers = futures::future::join_all(a.cameras.iter().map(|c| view(&a, c, until))).await;
    let json: Vec<_> = viewers
        .iter()
        .zip(&a.cameras)
        .map(|(v, c)| {
            serde_json::json!({
                "camera": c, "init_ms": v.init_ms, "first_picture_ms": v.first_picture_ms,
                "pictures": v.pictures, "bytes": v.bytes, "end": v.end,
            })
        })
        .collect();
    println!("{}", serde_json::Value::from(json));
    Ok(())
}
