//! The running hub: cameras (RTSP sessions and file sources) feeding the decode pool, a sampler
//! for the per-camera rates, gate ingest (MQTT and HTTP push), and the HTTP API.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xl_api::{ApiState, ApiToken};
use xl_core::camera::{CameraInfo, CameraRegistry, CameraStats};
use xl_core::frame::{DiscardFrames, FrameSink};
use xl_decode::{DecodePool, FileSource, Pacing};
use xl_rtsp::{CameraSource, Credentials, Timeouts};

use crate::config::{CameraConfig, Config, RtspConfig};
use crate::vision::{CameraAnalysis, Vision};

/// A started hub. Dropping it without [`Hub::stop`] leaves tasks to die with the runtime.
pub struct Hub {
    pub cameras: Arc<CameraRegistry>,
    /// Where the API actually listens (useful with port 0).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    file_stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    file_threads: Vec<std::thread::JoinHandle<()>>,
    pool: Option<DecodePool>,
    /// Gate ingest (MQTT, HTTP push), when gates or `[mqtt]` are configured.
    gates: Option<xl_gates::Gates>,
    pub gate_registry: Arc<xl_core::gate_status::GateRegistry>,
    /// Detection, tracking and zones, when `[detect]` is on (see [`Vision::subscribe`]).
    pub vision: Option<Arc<Vision>>,
}

impl Hub {
    /// Starts every camera, detection (unless `[detect] enabled = false`) and the API; returns
    /// once the API listens.
    pub async fn start(config: Config) -> anyhow::Result<Hub> {
        let analysed: Vec<CameraAnalysis> = config
            .cameras
            .iter()
            .map(|c| CameraAnalysis {
                id: c.id.clone(),
                detect: c.detect.clone(),
                zones: c.zones.clone(),
            })
            .collect();
        if !config.detect.enabled || !analysed.iter().any(|c| c.detect.enabled) {
            return Self::start_with_sink(config, Arc::new(DiscardFrames)).await;
        }
        let detect = config.detect.clone();
        // Loading the models takes a second or two: off the async threads.
        let vision =
            tokio::task::spawn_blocking(move || Vision::start(&detect, &analysed, false)).await??;
        let vision = Arc::new(vision);
        Self::start_inner(config, vision.clone(), Some(vision)).await
    }

    /// Like [`Hub::start`] without detection, decoded frames going to `sink`.
    pub async fn start_with_sink(config: Config, sink: Arc<dyn FrameSink>) -> anyhow::Result<Hub> {
        Self::start_inner(config, sink, None).await
    }

    async fn start_inner(
        config: Config,
        sink: Arc<dyn FrameSink>,
        vision: Option<Arc<Vision>>,
    ) -> anyhow::Result<Hub> {
        let token = api_token(&config)?;
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} ([server] listen)",
                    config.server.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let pool = DecodePool::new(&config.decode, sink)?;
        let cameras = Arc::new(CameraRegistry::default());
        let shutdown = CancellationToken::new();
        let file_stop = Arc::new(AtomicBool::new(false));
        let mut hub = Hub {
            cameras: Arc::clone(&cameras),
            addr,
            shutdown: shutdown.clone(),
            file_stop,
            tasks: Vec::new(),
            file_threads: Vec::new(),
            pool: None,
            gates: None,
            gate_registry: Arc::default(),
            vision: vision.clone(),
        };
        for cam in &config.cameras {
            hub.add_camera(&pool, cam, &config.rtsp)?;
        }
        info!(
            cameras = config.cameras.len(),
            decode_threads = pool.threads(),
            "cameras started"
        );
        hub.pool = Some(pool);
        hub.tasks.push(tokio::spawn(sample_rates(
            Arc::clone(&cameras),
            shutdown.clone(),
        )));

        let mut device_routes = axum::Router::new();
        if !config.gates.is_empty() || config.mqtt.is_some() {
            let gates = xl_gates::Gates::start(
                config.gates_config(),
                &config.server.data_dir,
                Arc::clone(&hub.gate_registry),
            )
            .await
            .context("cannot start gate ingest")?;
            device_routes = gates.push_router();
            hub.gates = Some(gates);
        }

        let ready = Arc::new(AtomicBool::new(false));
        let app = xl_api::router_with_devices(
            ApiState {
                cameras,
                gates: Arc::clone(&hub.gate_registry),
                token: Arc::new(token),
                ready: Arc::clone(&ready),
                extra_metrics: vision
                    .into_iter()
                    .map(|v| v as Arc<dyn xl_core::metrics::MetricsSource>)
                    .collect(),
            },
            device_routes,
        );
        let stop = shutdown.clone();
        hub.tasks.push(tokio::spawn(async move {
            // The source address is needed by the gate push routes (allow-lists).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                warn!(error = %e, "HTTP server stopped");
            }
        }));
        ready.store(true, Ordering::Relaxed);
        info!(%addr, "API listening on http://{addr}");
        Ok(hub)
    }

    fn add_camera(
        &mut self,
        pool: &DecodePool,
        cam: &CameraConfig,
        rtsp: &RtspConfig,
    ) -> anyhow::Result<()> {
        let stats = Arc::new(CameraStats::new(cam.id.clone(), cam.decode));
        let info = CameraInfo {
            id: cam.id.clone(),
            name: cam.name.clone().unwrap_or_else(|| cam.id.to_string()),
            community: cam.community.clone(),
            network: cam.network,
        };
        self.cameras.insert(info, Arc::clone(&stats));
        let input = pool.add_camera(Arc::clone(&stats));
        if let Some(path) = &cam.file {
            let source = FileSource {
                path: path.clone(),
                looped: true,
                pacing: Pacing::RealTime,
            };
            let t = xl_decode::spawn_file_source(source, input, Arc::clone(&self.file_stop))
                .context("cannot start a file source thread")?;
            self.file_threads.push(t);
        } else if let Some(url) = &cam.url {
            let credentials = cam.username.clone().map(|username| Credentials {
                username,
                password: cam.password.clone().unwrap_or_default(),
            });
            let mut source = CameraSource::new(cam.id.clone(), url, credentials)
                .with_context(|| format!("camera {}: bad url", cam.id))?;
            source.transport = cam.transport.unwrap_or(rtsp.transport);
            source.timeouts = Timeouts {
                request: Duration::from_secs(rtsp.request_timeout_secs),
                frame: Duration::from_secs(rtsp.frame_timeout_secs),
            };
            source.backoff_initial = Duration::from_secs_f64(rtsp.backoff_initial_secs);
            source.backoff_max = Duration::from_secs_f64(rtsp.backoff_max_secs);
            self.tasks.push(tokio::spawn(xl_rtsp::run_camera(
                source,
                Arc::new(input),
                stats,
                self.shutdown.child_token(),
            )));
        }
        Ok(())
    }

    /// Stops every camera and the API, and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.file_stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(gates) = self.gates.take() {
            gates.stop().await;
        }
        let threads = std::mem::take(&mut self.file_threads);
        let pool = self.pool.take();
        let vision = self.vision.take();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
            drop(pool);
            // the inference workers stop when the last handle goes
            drop(vision);
        })
        .await;
    }

    /// Waits for Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await?;
        info!("shutting down");
        self.stop().await;
        Ok(())
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn sample_rates(cameras: Arc<CameraRegistry>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = jiff::Timestamp::now();
        for (_, stats) in cameras.snapshot() {
            stats.sample_rates(now);
        }
    }
}

/// The configured token, or the one kept in the data directory (generated at first start).
fn api_token(config: &Config) -> anyhow::Result<ApiToken> {
    if let Some(t) = &config.server.api_token {
        return Ok(ApiToken::new(t.clone()));
    }
    let dir = &config.server.data_dir;
    let path = dir.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(ApiToken::new(t.trim().to_owned()));
    }
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create data directory {} ([server] data_dir)",
            dir.display()
        )
    })?;
    let token: String = rand::random::<[u8; 24]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    write_private(&path, &token)?;
    info!(path = %path.display(), "generated an API token");
    Ok(ApiToken::new(token))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
