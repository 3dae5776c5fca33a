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
use xl_core::camera::CameraRegistry;
use xl_core::clock::{Clocks, RealClocks};
use xl_core::frame::{DiscardFrames, FrameSink};
use xl_decode::DecodePool;
use xl_store::Store;

use crate::api_backend::StoreBackend;
use crate::config::Config;
use crate::gate_store::StoreSink;
use crate::live::LiveStreams;
use crate::recording::Recordings;
use crate::runtime::{self, LazyVision, Runtime, TopologyFeed};
use xl_alerts::Alerts;
use xl_alerts::evidence::{EvidenceSink, Rings};
use xl_analysis::Vision;

/// How long requests in flight may finish after shutdown starts.
const HTTP_DRAIN: Duration = Duration::from_secs(2);

/// A started hub. Dropping it without [`Hub::stop`] leaves tasks to die with the runtime.
pub struct Hub {
    pub cameras: Arc<CameraRegistry>,
    /// Where the API actually listens (useful with port 0).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Gate ingest (MQTT, HTTP push); shared with the runtime, which applies gate changes.
    gates: Arc<xl_gates::Gates>,
    pub gate_registry: Arc<xl_core::gate_status::GateRegistry>,
    /// Detection, tracking and zones, started with the first analysed camera unless
    /// `[detect] enabled = false` or frames go to a sink of the caller's.
    vision: Option<Arc<LazyVision>>,
    pub store: Store,
    /// Rules, alerts and their publishers.
    pub alerts: Arc<Alerts>,
    webhooks: Option<xl_notify::Webhooks>,
    /// MQTT out (alerts, camera status, hub status), when configured.
    pub mqtt_out: Option<xl_notify::MqttOut>,
    /// The topology as applied, and the runtime's wake-up.
    pub topology: TopologyFeed,
    /// The cameras' recorders, and the task indexing their segments (stopped last).
    pub recordings: Arc<Recordings>,
    index: Option<(JoinHandle<()>, CancellationToken)>,
    /// On a node of a district: its leases (released last at stop, so that the other nodes
    /// take its cameras at once).
    pub cluster: Option<Arc<xl_cluster::Cluster>>,
}

impl Hub {
    /// Starts every camera of the topology, detection (unless `[detect] enabled = false`) and
    /// the API; returns once the API listens.
    pub async fn start(config: Config) -> anyhow::Result<Hub> {
        Self::start_inner(config, None, RealClocks::shared()).await
    }

    /// Like [`Hub::start`] without detection, decoded frames going to `sink`.
    pub async fn start_with_sink(config: Config, sink: Arc<dyn FrameSink>) -> anyhow::Result<Hub> {
        Self::start_inner(config, Some(sink), RealClocks::shared()).await
    }

    /// Detection, once an analysed camera has started it.
    pub fn vision(&self) -> Option<Arc<Vision>> {
        self.vision.as_ref().and_then(|v| v.get().cloned())
    }

    /// `clocks`: the one clock of the pipelines (frames, detection's schedule, gate ingest,
    /// alerts, retention); see xl_core::clock.
    async fn start_inner(
        config: Config,
        sink: Option<Arc<dyn FrameSink>>,
        clocks: Arc<dyn Clocks>,
    ) -> anyhow::Result<Hub> {
        let token = api_token(&config)?;
        let limits = config.server.limits()?;
        // Sockets, camera connections and files all draw on one descriptor limit: take the
        // hard limit, and let the HTTP server use at most half of it (`xl_api::server`).
        match xl_api::server::raise_nofile_limit() {
            Ok(nofile) => info!(nofile_limit = nofile, "descriptor limit"),
            Err(e) => warn!(error = %e, "cannot read or raise the descriptor limit"),
        }
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} ([server] listen)",
                    config.server.listen
                )
            })?;
        let addr = listener.local_addr()?;
        std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
            format!(
                "cannot create data directory {} ([server] data_dir)",
                config.server.data_dir.display()
            )
        })?;
        let store = open_store(&config).await?;
        let evidence_key = xl_evidence::HubKey::load_or_create(&config.server.data_dir)
            .context("cannot load or create the evidence signing key")?;
        // The config file's entries, then the store's topology is what runs.
        crate::topology::apply(&store, &config, clocks.realtime()).await?;
        // Its own token: the leases are released after everything else stopped.
        let cluster = match &config.cluster {
            Some(c) => Some(Arc::new(
                crate::cluster::join(c, CancellationToken::new()).await?,
            )),
            None => None,
        };
        // The public half, so that the district's packages verify against its keys
        // (`GET /api/v1/evidence/keys`); once the node's id is known (the host name by default).
        let node = cluster.as_ref().map_or("", |c| c.node());
        store
            .register_evidence_key(
                &evidence_key.key_id(),
                &evidence_key.public_key_base64(),
                node,
                clocks.realtime(),
            )
            .await
            .with_context(|| {
                format!(
                    "cannot register this node's evidence signing key {} ({}) in the store",
                    evidence_key.key_id(),
                    evidence_key.path().display()
                )
            })?;
        let shutdown = CancellationToken::new();
        if let Some(admin) = &config.admin {
            crate::users::ensure_admin(&store, admin).await?;
        }
        let (applied_tx, applied) = tokio::sync::watch::channel(Arc::default());
        let feed = TopologyFeed {
            applied,
            changed: Arc::default(),
        };
        let (health_tx, health_rx) = tokio::sync::mpsc::unbounded_channel();
        let (recordings, segment_events) = Recordings::new(
            config.recording.clone(),
            &config.server.data_dir,
            store.clone(),
            Arc::clone(&clocks),
            health_tx,
            cluster.clone(),
            feed.applied.clone(),
        );
        // Before any recorder starts: what a crash left open is repaired.
        recordings
            .recover()
            .await
            .context("cannot repair the recordings left by the last run")?;
        let index_done = CancellationToken::new();
        let index_task =
            tokio::spawn(Arc::clone(&recordings).run_index(segment_events, index_done.clone()));
        let rings = Arc::new(Rings::new(&config.evidence));
        let vision = (sink.is_none() && config.detect.enabled).then(|| {
            let recordings = Arc::clone(&recordings);
            Arc::new(LazyVision::new(
                config.detect.clone(),
                Arc::clone(&clocks),
                Arc::clone(&rings),
                Arc::new(move |camera, at| recordings.motion_seen(camera, at)),
            ))
        });
        let inner: Arc<dyn FrameSink> = match (&sink, &vision) {
            (Some(s), _) => Arc::clone(s),
            (None, Some(v)) => Arc::clone(v) as _,
            (None, None) => Arc::new(DiscardFrames),
        };
        let sink: Arc<dyn FrameSink> = Arc::new(EvidenceSink {
            rings: Arc::clone(&rings),
            inner,
        });
        let pool = DecodePool::new(&config.decode, sink, Arc::clone(&clocks))?;
        let cameras = Arc::new(CameraRegistry::default());
        let gate_registry: Arc<xl_core::gate_status::GateRegistry> = Arc::default();
        // Always running: gates may be added through the API at any time.
        let gates = {
            let dir = xl_gates::Gates::journal_dir(&config.server.data_dir);
            let window = Duration::from_secs(config.gate_ingest.dedup_window_secs);
            let sink = StoreSink::open(store.clone(), dir.clone(), window, clocks.realtime())
                .await
                .context("cannot read recent gate events from the store")?;
            let g = xl_gates::Gates::start_with_sink(
                config.running_gates_config(),
                Box::new(sink),
                dir,
                Arc::clone(&gate_registry),
                Arc::clone(&clocks),
            )
            .await
            .context("cannot start gate ingest")?;
            Arc::new(g)
        };
        let device_routes = gates.push_router();
        let (alerts, alerts_task) = xl_alerts::start(
            xl_alerts::Setup {
                store: store.clone(),
                rules: config.rules.clone(),
                evidence: config.evidence.clone(),
                rings: Some(Arc::clone(&rings)),
                snapshot_dir: config.server.data_dir.join("snapshots"),
                topology: feed.applied.clone(),
                clocks: Arc::clone(&clocks),
                clip_kept_after: config.recording.evidence_keep(),
            },
            xl_alerts::Sources {
                gate_events: Some(gates.subscribe()),
                vision: vision.as_ref().map(|v| v.subscribe()),
                cameras: Arc::clone(&cameras),
                gates: Arc::clone(&gate_registry),
                inputs: Some(health_rx),
                shard: cluster
                    .as_ref()
                    .map(|c| crate::cluster::shard_feed(c.held(), shutdown.child_token())),
            },
            shutdown.child_token(),
        )
        .await?;
        let alerts = Arc::new(alerts);
        let outbox = Arc::new(StoreOutbox(store.clone()));
        // In a district, one node publishes (the holder of the notify lease).
        let mut webhooks = None;
        let mut mqtt_out = None;
        let mut mqtt_task = None;
        if cluster.is_none() {
            webhooks = start_webhooks(&config.webhooks, &outbox, &alerts, shutdown.child_token())?;
            if let Some(cfg) = config.mqtt_out_config() {
                let (out, task) = xl_notify::MqttOut::start(
                    cfg,
                    Arc::clone(&outbox),
                    alerts.committed(),
                    shutdown.child_token(),
                )?;
                mqtt_out = Some(out);
                mqtt_task = Some(task);
            }
        }
        let decode_threads = pool.threads();
        let runtime_stats = Arc::new(runtime::RuntimeStats::default());
        let live = Arc::new(LiveStreams::new(Arc::new(|name: &str, output| {
            xl_decode::Transcoder::start(name, output)
                .map(|t| Arc::new(t) as Arc<dyn xl_core::frame::AccessUnitSink>)
                .map_err(|e| e.to_string())
        })));
        let mut runtime = Runtime::new(runtime::Parts {
            store: store.clone(),
            pool,
            cameras: Arc::clone(&cameras),
            vision: vision.clone(),
            rings,
            gates: Some(Arc::clone(&gates)),
            alerts: Arc::clone(&alerts),
            rtsp: config.rtsp.clone(),
            applied: applied_tx,
            stats: Arc::clone(&runtime_stats),
            live: Arc::clone(&live),
            recordings: Arc::clone(&recordings),
            cluster: cluster.as_ref().map(|c| runtime::Ownership {
                cluster: Arc::clone(c),
                held: c.held(),
            }),
        });
        // The first pass before the API answers: cameras start and gates are known.
        runtime.reload().await?;
        info!(cameras = cameras.len(), decode_threads, "cameras started");
        let mut hub = Hub {
            cameras: Arc::clone(&cameras),
            addr,
            shutdown: shutdown.clone(),
            tasks: vec![alerts_task],
            gates,
            gate_registry,
            vision: vision.clone(),
            store: store.clone(),
            alerts,
            webhooks,
            mqtt_out: mqtt_out.clone(),
            topology: feed.clone(),
            recordings: Arc::clone(&recordings),
            index: Some((index_task, index_done)),
            cluster: cluster.clone(),
        };
        hub.tasks.push(tokio::spawn(
            runtime.run(Arc::clone(&feed.changed), shutdown.child_token()),
        ));
        hub.tasks.extend(mqtt_task);
        if let Some(out) = mqtt_out {
            hub.tasks.push(tokio::spawn(publish_camera_status(
                Arc::clone(&cameras),
                out,
                Arc::clone(&clocks),
                shutdown.child_token(),
            )));
        }
        let retention = {
            let (store, clocks) = (store.clone(), Arc::clone(&clocks));
            let (policy, dir) = (
                config.retention.clone(),
                config.server.data_dir.join("snapshots"),
            );
            move |token| {
                retention_loop(
                    store.clone(),
                    Arc::clone(&clocks),
                    policy.clone(),
                    dir.clone(),
                    token,
                )
            }
        };
        let feed_metrics = Arc::new(crate::feeds::FeedMetrics::default());
        match &cluster {
            None => hub
                .tasks
                .push(tokio::spawn(retention(shutdown.child_token()))),
            Some(c) => {
                hub.tasks.push(tokio::spawn(crate::cluster::while_held(
                    c.held(),
                    crate::cluster::TASK_RETENTION,
                    shutdown.child_token(),
                    retention,
                )));
                hub.tasks.push(tokio::spawn(crate::cluster::while_held(
                    c.held(),
                    crate::cluster::TASK_NOTIFY,
                    shutdown.child_token(),
                    notify_job(
                        &config,
                        outbox,
                        &hub.alerts,
                        &hub.gates,
                        &cameras,
                        &clocks,
                        Arc::clone(&feed_metrics),
                    ),
                )));
                hub.tasks
                    .push(tokio::spawn(crate::cluster::post_camera_status(
                        Arc::clone(c),
                        Arc::clone(&cameras),
                        shutdown.child_token(),
                    )));
                hub.tasks.push(tokio::spawn(crate::cluster::share_commits(
                    Arc::clone(c),
                    Arc::clone(&hub.alerts),
                    store,
                    shutdown.child_token(),
                )));
            }
        }
        hub.tasks.push(tokio::spawn(
            Arc::clone(&recordings).run_maintenance(feed.applied.clone(), shutdown.child_token()),
        ));
        hub.tasks.push(tokio::spawn(sample_rates(
            Arc::clone(&cameras),
            shutdown.clone(),
        )));

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
                    .chain([
                        runtime_stats as Arc<dyn xl_core::metrics::MetricsSource>,
                        Arc::clone(live.stats()) as _,
                        Arc::clone(recordings.stats()) as _,
                    ])
                    .chain(hub.cluster.as_ref().map(|c| {
                        Arc::new(crate::cluster::ClusterMetrics(Arc::clone(c)))
                            as Arc<dyn xl_core::metrics::MetricsSource>
                    }))
                    .chain(
                        hub.cluster
                            .is_some()
                            .then_some(feed_metrics as Arc<dyn xl_core::metrics::MetricsSource>),
                    )
                    .chain(
                        recordings
                            .peer_stats()
                            .map(|s| Arc::clone(s) as Arc<dyn xl_core::metrics::MetricsSource>),
                    )
                    .collect(),
                backend: Arc::new(StoreBackend {
                    store: hub
                        .store
                        .clone()
                        .with_topology_check(runtime::gate_check(Arc::clone(hub.gates.ingest()))),
                    alerts: Arc::clone(&hub.alerts),
                    snapshot_dir: config.server.data_dir.join("snapshots"),
                    topology: feed,
                    live,
                    recordings,
                    evidence_key: Arc::new(evidence_key),
                    data_dir: config.server.data_dir.clone(),
                    cluster: hub.cluster.clone(),
                }),
                settings: xl_api::ApiSettings {
                    secure_cookies: config.server.secure_cookies,
                    trusted_proxies: limits.trusted_proxies.clone(),
                    ..xl_api::ApiSettings::default()
                },
                login_limiter: Arc::default(),
                looks: Arc::default(),
            },
            device_routes,
        );
        let stop = shutdown.clone();
        hub.tasks.push(tokio::spawn(async move {
            // Header timeout and connection bounds; each request carries the source address
            // (the login limiter, the audit log and the gate push allow-lists need it).
            let serve =
                xl_api::server::serve(listener, app, limits, stop.clone().cancelled_owned());
            // Graceful shutdown waits for open connections, and a console's SSE stream never
            // ends by itself: give requests in flight a moment, then close the rest.
            let drain = async {
                stop.cancelled().await;
                tokio::time::sleep(HTTP_DRAIN).await;
            };
            tokio::select! {
                () = serve => {}
                () = drain => info!("closing HTTP connections still open (live feeds) at shutdown"),
            }
        }));
        match &hub.cluster {
            None => ready.store(true, Ordering::Relaxed),
            // Ready once this node holds its share of the cameras (a rolling restart waits
            // for it before taking the next node down).
            Some(c) => {
                let (c, stop) = (Arc::clone(c), shutdown.clone());
                hub.tasks.push(tokio::spawn(async move {
                    tokio::select! {
                        () = c.settled() => {
                            info!("this node holds its share of the district");
                            ready.store(true, Ordering::Relaxed);
                        }
                        () = stop.cancelled() => {}
                    }
                }));
            }
        }
        info!(%addr, "API listening on http://{addr}");
        Ok(hub)
    }

    /// Stops every camera and the API, and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        // the runtime's task stops the cameras and drops its share of the gate ingest
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // The cameras are stopped: their recorders close their segments, then the index
        // writes what they reported.
        self.recordings.stop_all().await;
        if let Some((task, done)) = self.index.take() {
            done.cancel();
            let _ = task.await;
        }
        if let Some(c) = self.cluster.take() {
            // The API's backend and the recordings still hold clones, but nothing that uses
            // them runs now; stopping one clone stops the node for all, so the other nodes
            // take its cameras at once rather than when its leases expire.
            xl_cluster::Cluster::clone(&c).stop().await;
        }
        match Arc::try_unwrap(self.gates) {
            Ok(gates) => gates.stop().await,
            Err(_) => warn!("gate ingest still shared at shutdown; not waited for"),
        }
        if let Some(w) = self.webhooks.take() {
            w.join().await;
        }
        let vision = self.vision.take();
        let _ = tokio::task::spawn_blocking(move || {
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

/// The webhooks, when configured.
fn start_webhooks(
    webhooks: &[xl_notify::WebhookConfig],
    outbox: &Arc<StoreOutbox>,
    alerts: &Alerts,
    token: CancellationToken,
) -> anyhow::Result<Option<xl_notify::Webhooks>> {
    if webhooks.is_empty() {
        return Ok(None);
    }
    Ok(Some(xl_notify::Webhooks::start(
        webhooks.to_vec(),
        Arc::clone(outbox),
        alerts.committed(),
        token,
    )?))
}

/// A district's publishing, run by the node holding the notify lease: the alert changes, the
/// stored gate events and the stored vision events on JetStream (their figures in `metrics`
/// while it runs), webhooks, MQTT out and the camera status it publishes (of the cameras this
/// node runs).
fn notify_job(
    config: &Config,
    outbox: Arc<StoreOutbox>,
    alerts: &Arc<Alerts>,
    gates: &Arc<xl_gates::Gates>,
    cameras: &Arc<CameraRegistry>,
    clocks: &Arc<dyn Clocks>,
    metrics: Arc<crate::feeds::FeedMetrics>,
) -> impl FnMut(CancellationToken) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ use<> {
    let hooks = config.webhooks.clone();
    let mqtt_out = config.mqtt_out_config();
    let stream = config.cluster.as_ref().map(crate::cluster::alert_stream);
    let gate_events = Arc::new(crate::feeds::StoreGateEvents(outbox.0.clone()));
    let vision_events = Arc::new(crate::feeds::StoreVisionEvents(outbox.0.clone()));
    let (alerts, gates, cameras, clocks) = (
        Arc::clone(alerts),
        Arc::clone(gates),
        Arc::clone(cameras),
        Arc::clone(clocks),
    );
    move |token: CancellationToken| {
        let webhooks = start_webhooks(&hooks, &outbox, &alerts, token.child_token());
        let mqtt = mqtt_out.clone().map(|cfg| {
            xl_notify::MqttOut::start(
                cfg,
                Arc::clone(&outbox),
                alerts.committed(),
                token.child_token(),
            )
        });
        let jetstream = stream.clone().map(|cfg| {
            xl_notify::JetStreamOut::start(
                cfg,
                Arc::clone(&outbox),
                alerts.committed(),
                token.child_token(),
            )
        });
        // The event feeds poll the store every poll_interval_secs (events stored by other
        // nodes, vision events); gate events this node stores wake theirs at once.
        let (gate_wake, gate_woken) = tokio::sync::watch::channel(0);
        let gate_jetstream = stream.clone().map(|cfg| {
            let cfg = xl_notify::JetStreamOutConfig {
                feed: xl_notify::FeedKind::GateEvents,
                ..cfg
            };
            xl_notify::JetStreamOut::start(
                cfg,
                Arc::clone(&gate_events),
                gate_woken,
                token.child_token(),
            )
        });
        let vision_jetstream = stream.clone().map(|cfg| {
            let cfg = xl_notify::JetStreamOutConfig {
                feed: xl_notify::FeedKind::VisionEvents,
                ..cfg
            };
            // No sender: nothing but the poll wakes it.
            let (_, woken) = tokio::sync::watch::channel(0);
            xl_notify::JetStreamOut::start(
                cfg,
                Arc::clone(&vision_events),
                woken,
                token.child_token(),
            )
        });
        // The stream names, for the metrics (no stream: no [cluster], nothing started).
        let name = |feed| {
            stream
                .clone()
                .map(|cfg| xl_notify::JetStreamOutConfig { feed, ..cfg }.stream_name())
                .unwrap_or_default()
        };
        let feeds = [
            (
                jetstream,
                name(xl_notify::FeedKind::Alerts),
                "the alert stream",
            ),
            (
                gate_jetstream,
                name(xl_notify::FeedKind::GateEvents),
                "the gate event stream",
            ),
            (
                vision_jetstream,
                name(xl_notify::FeedKind::VisionEvents),
                "the vision event stream",
            ),
        ];
        let stored_gate_events = gates.subscribe();
        let (cameras, clocks, metrics) = (
            Arc::clone(&cameras),
            Arc::clone(&clocks),
            Arc::clone(&metrics),
        );
        Box::pin(async move {
            let webhooks = match webhooks {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot start the webhooks");
                    None
                }
            };
            let mut tasks = Vec::new();
            let mut running = Vec::new();
            for (started, name, what) in feeds {
                match started {
                    Some(Ok((out, task))) => {
                        tasks.push(task);
                        running.push((name, out));
                    }
                    Some(Err(e)) => warn!(error = %e, "cannot start {what} on JetStream"),
                    None => {}
                }
            }
            metrics.set(running);
            tasks.push(tokio::spawn(crate::feeds::wake_on_stored_gate_events(
                stored_gate_events,
                gate_wake,
                token.child_token(),
            )));
            match mqtt {
                Some(Ok((out, task))) => {
                    tasks.push(task);
                    tasks.push(tokio::spawn(publish_camera_status(
                        cameras,
                        out,
                        clocks,
                        token.child_token(),
                    )));
                }
                Some(Err(e)) => warn!(error = %e, "cannot start MQTT out"),
                None => {}
            }
            token.cancelled().await;
            for t in tasks {
                let _ = t.await;
            }
            // Another node publishes now.
            metrics.set(Vec::new());
            if let Some(w) = webhooks {
                w.join().await;
            }
        })
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

/// The configured store, or the SQLite file in the data directory.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = store_url(config)?;
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the store {}", xl_store::redact_url(&url)))?;
    Ok(store)
}

/// The store's URL: `[store] database_url`, or the SQLite file `<data_dir>/xueliang.db` (the
/// data directory made if missing).
pub fn store_url(config: &Config) -> anyhow::Result<String> {
    Ok(match &config.store.database_url {
        Some(u) => u.clone(),
        None => {
            let dir = &config.server.data_dir;
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create data directory {} ([server] data_dir)",
                    dir.display()
                )
            })?;
            // An absolute path: a relative one with `..` is not a valid sqlite:// URL.
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            format!("sqlite://{}", dir.join("xueliang.db").display())
        }
    })
}

/// The store as the publishers' outbox.
struct StoreOutbox(Store);

impl xl_notify::Outbox for StoreOutbox {
    async fn after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<xl_core::OutboxEntry>, xl_notify::OutboxError> {
        self.0.outbox_after(seq, limit).await.map_err(outbox_error)
    }

    // Publisher cursors are `outbox.<name>` in the store: retention keeps outbox rows until
    // every such cursor has passed them.
    async fn cursor(&self, name: &str) -> Result<i64, xl_notify::OutboxError> {
        self.0
            .cursor(&format!("outbox.{name}"))
            .await
            .map_err(outbox_error)
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), xl_notify::OutboxError> {
        self.0
            .set_cursor(&format!("outbox.{name}"), seq)
            .await
            .map_err(outbox_error)
    }
}

/// Deletes expired data once at start and then hourly.
async fn retention_loop(
    store: Store,
    clocks: Arc<dyn Clocks>,
    retention: xl_store::Retention,
    snapshot_dir: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match store
            .purge(clocks.realtime(), &retention, &snapshot_dir)
            .await
        {
            Ok(report) => info!(?report, "retention: expired data deleted"),
            Err(e) => warn!(error = %e, "retention job failed; next try in an hour"),
        }
    }
}

fn outbox_error(e: xl_store::StoreError) -> xl_notify::OutboxError {
    xl_notify::OutboxError::new(e.kind(), e)
}

/// Publishes each camera's status (retained) when it changes, and every camera's at start.
async fn publish_camera_status(
    cameras: Arc<CameraRegistry>,
    out: xl_notify::MqttOut,
    clocks: Arc<dyn Clocks>,
    shutdown: CancellationToken,
) {
    let mut last: std::collections::HashMap<xl_core::CameraId, &'static str> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for (info, stats) in cameras.snapshot() {
            let status = stats.status();
            if last.get(&info.id) == Some(&status.label()) {
                continue;
            }
            last.insert(info.id.clone(), status.label());
            let body = serde_json::json!({
                "camera": info.id,
                "community": info.community,
                "status": status,
                "at": clocks.realtime(),
            });
            if let Err(e) = out.publish_camera_status(&info.id, &body) {
                warn!(camera = %info.id, error = %e, "cannot publish camera status");
            }
        }
    }
}
