//! Finding 1 against the real binary: 250 concurrent wrong passwords for one user from one
//! address got 190 argon2 verifications through a limit of 5, and the hub grew from 535 MB to
//! 4.2 GB (argon2 takes about 19 MiB a verification). Memory is read from /proc, not timed.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::temp_dir;

/// How much the hub's peak resident memory may grow over its resident memory before the
/// burst. With the fix: at most 5 verifications, at most 2 x cores at once (19 MiB each).
/// Without it: 200 verifications, up to 512 at once on the blocking pool (~3.8 GiB).
const MAX_GROWTH_KIB: u64 = 200 * 1024;
const PASSWORD: &str = "duty-password-1";

struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn user_add(config: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .args(["user", "add", "--config"])
        .arg(config)
        .args(["--role", "duty", "duty1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn login(client: &reqwest::Client, base: &str, password: &str) -> u16 {
    client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": "duty1", "password": password }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_logins_neither_passes_the_limit_nor_takes_memory() {
    let data = temp_dir("login-burst");
    let port = free_port();
    // Enough connections from one address that every login reaches the limiter.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
         max_connections_per_address = 256\n[detect]\nenabled = false\n",
        data.display()
    );
    let config = data.join("hub.toml");
    std::fs::write(&config, &text).unwrap();
    user_add(&config);
    let log = std::fs::File::create(data.join("hub.log")).unwrap();
    let hub = Hub(Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap());
    let pid = hub.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the hub did not become ready: {}",
            std::fs::read_to_string(data.join("hub.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let before_kib = status_kib(pid, "VmRSS");
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { login(&client, &base, "wrong password!").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in burst {
        statuses.push(t.await.unwrap());
    }
    let peak_kib = status_kib(pid, "VmHWM");
    let growth_kib = peak_kib.saturating_sub(before_kib);
    eprintln!(
        "resident before {before_kib} KiB, peak after {peak_kib} KiB (+{growth_kib} KiB); \
         answers: {} x 401, {} x 429, {} x 503",
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 429).count(),
        statuses.iter().filter(|s| **s == 503).count(),
    );
    let verified = statuses.iter().filter(|s| **s == 401).count();
    assert!(verified <= 5, "{verified} passwords verified: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429 | 503)),
        "{statuses:?}"
    );
    assert!(
        growth_kib < MAX_GROWTH_KIB,
        "peak resident memory grew by {growth_kib} KiB (bound {MAX_GROWTH_KIB} KiB)"
    );

    // The right password still works for the right user, from another address.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    assert_eq!(login(&other, &base, PASSWORD).await, 200);
    drop(hub);
    let _ = std::fs::remove_dir_all(&data);
}
