//! JetStream out (async-nats): a [`Feed`] on NATS JetStream subjects named by community and
//! kind, for the other nodes and systems of a district. Three feeds ([`FeedKind`]), each its
//! own publisher, stream, message ids and cursor:
//!
//! | feed | stream | subjects | `Nats-Msg-Id` | cursor |
//! |---|---|---|---|---|
//! | alert changes (the outbox) | `{prefix}-alerts` | `{prefix}.alerts.{community}.{kind}` | `{prefix}-outbox-{seq}` | `jetstream` |
//! | stored gate events | `{prefix}-gate-events` | `{prefix}.gate.{community}.{kind}` | `{prefix}-gate-{seq}` | `jetstream.gate` |
//! | stored vision events | `{prefix}-vision-events` | `{prefix}.vision.{community}.{kind}` | `{prefix}-vision-{seq}` | `jetstream.vision` |
//!
//! - The stream (subjects `{prefix}.{alerts,gate,vision}.>`, file storage, `max_age` of
//!   `max_age_days`, a [`DUPLICATE_WINDOW`] of 2 minutes) is created, or opened when another
//!   node made it first. An existing stream keeps its other settings (replicas, limits an
//!   operator set); its `max_age` and duplicate window are brought to this config's.
//! - Every entry is published on its subject with the feed's payload (alerts: the
//!   `OutboxEntry` JSON, the same as the SSE stream and MQTT out). A NATS subject token may not
//!   contain `.`, so the kind's dots become `_` (`gate.forced_open` ->
//!   `xl.alerts.xingfu.gate_forced_open`); anything outside `A-Z a-z 0-9 _ -` in either token
//!   becomes `_` too.
//! - One entry is in flight at a time: the next is published only once the server has
//!   acknowledged the last (stored, or dropped as a duplicate). That keeps the stream in `seq`
//!   order even across connection losses: with several in flight, a lost middle would be
//!   republished after later entries that async-nats still held and sent on reconnecting. A
//!   district's alerts and gate events are a few a second; one round trip per entry is cheap
//!   next to that guarantee.
//! - The cursor moves only past acknowledged entries. A publisher that resumes from an older
//!   cursor (after a crash, or on another node that took the notify lease) republishes with
//!   the same message ids, and the server drops what it already has: exactly once within the
//!   duplicate window, at least once beyond it. Message ids are built from the store's `seq`,
//!   so every node of a district must publish from the same store.
//! - Credentials ([`NatsAuth`]: a user and password, a token or a `.creds` file) are their own
//!   setting: async-nats never sends a URL's `user:password@`, so such URLs are refused. A
//!   server that refuses them is logged as such and retried with the backoff below.
//! - NATS down, JetStream not ready or an ack not coming: the publisher backs off
//!   (`backoff_initial_secs` doubling to `backoff_max_secs`, ±20% jitter) and resumes from its
//!   cursor; no entry is skipped. async-nats reconnects by itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, trace, warn};
use xl_core::nats::subject_token;

use crate::backoff::{Backoff, jittered, secs, sleep_or_shutdown};
use crate::redact::redact_url;
use crate::{Feed, FeedEntry, NotifyError};

/// The cursor name of the alert stream in the outbox.
pub const CURSOR: &str = "jetstream";

/// What a JetStream out publishes; names its stream, subjects, message ids and cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FeedKind {
    /// The alert changes (the outbox). The default.
    #[default]
    Alerts,
    /// The stored gate events.
    GateEvents,
    /// The stored vision events.
    VisionEvents,
}

impl FeedKind {
    /// Every feed, in the order the hub starts them.
    pub const ALL: [FeedKind; 3] = [
        FeedKind::Alerts,
        FeedKind::GateEvents,
        FeedKind::VisionEvents,
    ];

    /// The cursor the feed's publisher keeps: `jetstream`, `jetstream.gate`,
    /// `jetstream.vision`.
    pub fn cursor(self) -> &'static str {
        match self {
            FeedKind::Alerts => CURSOR,
            FeedKind::GateEvents => "jetstream.gate",
            FeedKind::VisionEvents => "jetstream.vision",
        }
    }

    /// After `{prefix}-` in the stream's name.
    fn stream_suffix(self) -> &'static str {
        match self {
            FeedKind::Alerts => "alerts",
            FeedKind::GateEvents => "gate-events",
            FeedKind::VisionEvents => "vision-events",
        }
    }

    /// After `{prefix}.` in the subjects.
    fn subject_token(self) -> &'static str {
        match self {
            FeedKind::Alerts => "alerts",
            FeedKind::GateEvents => "gate",
            FeedKind::VisionEvents => "vision",
        }
    }

    /// Between `{prefix}-` and `-{seq}` in the message ids (`outbox` for the alerts: the ids
    /// they had before there were other feeds, so an upgrade republishes nothing twice).
    fn id_token(self) -> &'static str {
        match self {
            FeedKind::Alerts => "outbox",
            FeedKind::GateEvents => "gate",
            FeedKind::VisionEvents => "vision",
        }
    }

    /// What the stream holds, for its description and logs.
    fn what(self) -> &'static str {
        match self {
            FeedKind::Alerts => "alert changes",
            FeedKind::GateEvents => "gate events",
            FeedKind::VisionEvents => "vision events",
        }
    }
}

/// How long the server remembers a message id: a republish within it is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a JetStream request (stream info, create, update) or a publish ack may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between async-nats' own reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Entries read from the outbox at a time.
const BATCH: u32 = 100;
/// Longest accepted `max_age_days` (ten years).
const MAX_AGE_DAYS_LIMIT: u32 = 3650;

/// JetStream out: the NATS servers, and the feed and stream it publishes. The hub builds one
/// per feed from its `[cluster]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamOutConfig {
    /// NATS server URLs (`nats://host:4222`). At least one; JetStream must be enabled. A URL
    /// with `user:password@` is refused: credentials go in `auth`.
    pub urls: Vec<String>,
    /// The credentials sent to NATS. Not read from TOML: the hub sets its `[cluster]` ones.
    /// Default none.
    #[serde(skip)]
    pub auth: NatsAuth,
    /// What is published. Not read from TOML: the hub starts one JetStream out per feed.
    /// Default the alerts.
    #[serde(skip)]
    pub feed: FeedKind,
    /// Names the stream (`{prefix}-alerts`), its subjects (`{prefix}.alerts.>`) and the
    /// message ids (`{prefix}-outbox-{seq}`); see [`FeedKind`]. 1 to 32 of `A-Z a-z 0-9 _ -`.
    /// Default `xl`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long the stream keeps a message, in days: 1 to 3650. Default 7.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// First retry delay after a failure; doubles up to `backoff_max_secs`. Default 0.5.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Default 30.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
    /// How often the feed is read when nothing woke the publisher. Default 5.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: f64,
    /// Copies of the stream the NATS cluster keeps (JetStream replicas, set when the stream
    /// is made). Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

/// The credentials JetStream out sends to NATS: the cluster's, which the hub fills from the
/// same `[cluster]` keys.
pub use xl_core::nats::NatsAuth;

fn default_replicas() -> usize {
    1
}

fn default_prefix() -> String {
    "xl".into()
}
fn default_max_age_days() -> u32 {
    7
}
fn default_backoff_initial() -> f64 {
    0.5
}
fn default_backoff_max() -> f64 {
    30.0
}
fn default_poll_interval() -> f64 {
    5.0
}

impl fmt::Debug for JetStreamOutConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamOutConfig")
            .field("feed", &self.feed)
            .field("urls", &self.urls_for_log())
            .field("prefix", &self.prefix)
            .field("max_age_days", &self.max_age_days)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl JetStreamOutConfig {
    /// A configuration for the servers at `urls` with every other field at its default.
    pub fn new(urls: Vec<String>) -> JetStreamOutConfig {
        JetStreamOutConfig {
            urls,
            auth: NatsAuth::None,
            feed: FeedKind::Alerts,
            prefix: default_prefix(),
            max_age_days: default_max_age_days(),
            backoff_initial_secs: default_backoff_initial(),
            backoff_max_secs: default_backoff_max(),
            poll_interval_secs: default_poll_interval(),
            replicas: default_replicas(),
        }
    }

    fn err(key: &str, message: impl Into<String>) -> NotifyError {
        NotifyError::Config {
            key: format!("jetstream_out.{key}"),
            message: message.into(),
        }
    }

    /// Checks the config without connecting.
    pub fn validate(&self) -> Result<(), NotifyError> {
        if self.urls.is_empty() {
            return Err(Self::err("urls", "no NATS server URL"));
        }
        for url in &self.urls {
            match url.parse::<async_nats::ServerAddr>() {
                Err(e) => return Err(Self::err("urls", format!("{}: {e}", redact_url(url)))),
                Ok(addr) if addr.has_user_pass() => {
                    return Err(Self::err(
                        "urls",
                        format!(
                            "{}: credentials in the URL are not sent to the server; give them \
                             as auth instead",
                            redact_url(url)
                        ),
                    ));
                }
                Ok(_) => {}
            }
        }
        if let Some(problem) = self.auth.problem() {
            return Err(Self::err("auth", problem));
        }
        let p = &self.prefix;
        if p.is_empty()
            || p.len() > 32
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Self::err(
                "prefix",
                format!("{p:?} must be 1 to 32 of A-Z a-z 0-9 _ -"),
            ));
        }
        if !(1..=MAX_AGE_DAYS_LIMIT).contains(&self.max_age_days) {
            return Err(Self::err(
                "max_age_days",
                format!("must be 1 to {MAX_AGE_DAYS_LIMIT}"),
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.backoff_initial_secs) {
            return Err(Self::err("backoff_initial_secs", "must be more than 0"));
        }
        if !positive(self.backoff_max_secs) || self.backoff_max_secs < self.backoff_initial_secs {
            return Err(Self::err(
                "backoff_max_secs",
                "must be at least backoff_initial_secs",
            ));
        }
        if !positive(self.poll_interval_secs) {
            return Err(Self::err("poll_interval_secs", "must be more than 0"));
        }
        Ok(())
    }

    /// The feed's stream: `{prefix}-alerts`, `{prefix}-gate-events`, `{prefix}-vision-events`.
    pub fn stream_name(&self) -> String {
        format!("{}-{}", self.prefix, self.feed.stream_suffix())
    }

    /// The stream's subjects: `{prefix}.alerts.>`, `{prefix}.gate.>`, `{prefix}.vision.>`.
    pub fn subjects(&self) -> String {
        format!("{}.{}.>", self.prefix, self.feed.subject_token())
    }

    /// `{prefix}.alerts.{community}.{kind}` (`gate`, `vision` for those feeds), each token
    /// with `.` and anything outside `A-Z a-z 0-9 _ -` replaced by `_`
    /// (`xl.alerts.xingfu.gate_forced_open`).
    pub fn subject(&self, community: &str, kind: &str) -> String {
        format!(
            "{}.{}.{}.{}",
            self.prefix,
            self.feed.subject_token(),
            subject_token(community),
            subject_token(kind)
        )
    }

    /// The `Nats-Msg-Id` of the entry `seq`: `{prefix}-outbox-{seq}`, `{prefix}-gate-{seq}`,
    /// `{prefix}-vision-{seq}`.
    pub fn message_id(&self, seq: i64) -> String {
        format!("{}-{}-{seq}", self.prefix, self.feed.id_token())
    }

    /// The stream this config asks for.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name(),
            description: Some(format!(
                "Xueliang {} (xl-notify JetStream out)",
                self.feed.what()
            )),
            subjects: vec![self.subjects()],
            // Not memory: what is published must survive a NATS restart.
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(u64::from(self.max_age_days) * 86_400),
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    fn urls_for_log(&self) -> String {
        self.urls
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// JetStream out's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOutStats {
    /// Connected to a NATS server now.
    pub connected: bool,
    /// Entries the server stored.
    pub published: u64,
    /// Entries the server acknowledged as duplicates (it had them already: a republish after
    /// a crash, a lease move or a lost ack) and did not store again.
    pub duplicates: u64,
    /// Publish attempts that failed (no ack in time, no JetStream, connection lost); each is
    /// retried.
    pub failures: u64,
    /// The last seq acknowledged with all before it.
    pub cursor: i64,
    /// The last seq known to be committed (told by the wake-up watch, or read from the feed)
    /// minus `cursor`.
    pub lag: i64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    published: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
    cursor: AtomicI64,
    committed: AtomicI64,
}

/// The handle of a running JetStream out: its stats. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamOut {
    counters: Arc<Counters>,
}

impl JetStreamOut {
    /// Validates `cfg` and spawns the publisher of `feed` (of the kind `cfg.feed` names) on
    /// the current tokio runtime. It connects (retrying with backoff while no server
    /// answers), creates or opens the stream, and publishes the feed from the feed's cursor,
    /// woken by `committed` (the last committed seq; a feed without one may send any value,
    /// or `send_modify` the same one, just to wake it) or every `poll_interval_secs`. It
    /// stops on `shutdown`, storing its cursor first. Any [`crate::Outbox`] is the alerts'
    /// feed.
    pub fn start<F: Feed>(
        cfg: JetStreamOutConfig,
        feed: Arc<F>,
        committed: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) -> Result<(JetStreamOut, JoinHandle<()>), NotifyError> {
        cfg.validate()?;
        let counters = Arc::new(Counters::default());
        let span =
            info_span!("jetstream_out", stream = %cfg.stream_name(), urls = %cfg.urls_for_log());
        let publisher = Publisher {
            backoff: Backoff::new(secs(cfg.backoff_initial_secs), secs(cfg.backoff_max_secs)),
            cfg,
            counters: Arc::clone(&counters),
            cursor: 0,
            stored: 0,
        };
        let task = tokio::spawn(publisher.run(feed, committed, shutdown).instrument(span));
        Ok((JetStreamOut { counters }, task))
    }

    /// The counters now.
    pub fn stats(&self) -> JetStreamOutStats {
        let c = &self.counters;
        let cursor = c.cursor.load(Relaxed);
        JetStreamOutStats {
            connected: c.connected.load(Relaxed),
            published: c.published.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            failures: c.failures.load(Relaxed),
            cursor,
            lag: (c.committed.load(Relaxed) - cursor).max(0),
        }
    }
}

/// Why a publishing round ended.
enum Stop {
    Shutdown,
    Failed(NotifyError),
}

struct Publisher {
    cfg: JetStreamOutConfig,
    counters: Arc<Counters>,
    backoff: Backoff,
    /// The last seq acknowledged together with every seq before it.
    cursor: i64,
    /// The cursor as last stored in the feed.
    stored: i64,
}

impl Publisher {
    async fn run<F: Feed>(
        mut self,
        feed: Arc<F>,
        mut committed: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) {
        self.cursor = loop {
            match feed.cursor(self.cfg.feed.cursor()).await {
                Ok(c) => break c,
                Err(e) => {
                    warn!(error = %e, "cannot read the JetStream cursor; retrying");
                    if self.back_off(&shutdown).await {
                        return;
                    }
                }
            }
        };
        self.backoff.reset();
        self.stored = self.cursor;
        self.counters.cursor.store(self.cursor, Relaxed);

        let js = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            js = self.connect_until_up(&shutdown) => js,
        };
        if let Some(js) = js {
            let mut stream_ready = false;
            loop {
                let round = async {
                    if !stream_ready {
                        if let Err(e) = self.ensure_stream(&js).await {
                            return Stop::Failed(e);
                        }
                        stream_ready = true;
                    }
                    self.publish_round(&js, &*feed, &mut committed, &shutdown)
                        .await
                };
                let e = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    stop = round => match stop {
                        Stop::Shutdown => break,
                        Stop::Failed(e) => e,
                    },
                };
                // The stream may be gone or JetStream restarting: check it again.
                stream_ready = false;
                self.counters.failures.fetch_add(1, Relaxed);
                let delay = jittered(&mut self.backoff);
                warn!(error = %e, cursor = self.cursor, retry_in_ms = delay.as_millis() as u64, "JetStream out: retrying from the cursor");
                if sleep_or_shutdown(delay, &shutdown).await {
                    break;
                }
            }
        }
        self.store_cursor(&*feed).await;
        self.counters.connected.store(false, Relaxed);
        info!(cursor = self.cursor, "JetStream out stopped");
    }

    /// Sleeps the next backoff delay; true when shutdown came first.
    async fn back_off(&mut self, shutdown: &CancellationToken) -> bool {
        sleep_or_shutdown(jittered(&mut self.backoff), shutdown).await
    }

    /// Connects, retrying with backoff until a server answers; `None` on shutdown.
    async fn connect_until_up(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Option<jetstream::Context> {
        loop {
            match self.connect().await {
                Ok(client) => {
                    self.backoff.reset();
                    self.counters.connected.store(true, Relaxed);
                    info!(cursor = self.cursor, "JetStream out connected");
                    return Some(
                        jetstream::ContextBuilder::new()
                            .timeout(REQUEST_TIMEOUT)
                            .build(client),
                    );
                }
                Err(e) => {
                    warn!(error = %e, "JetStream out cannot connect; retrying");
                    if self.back_off(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<async_nats::Client, NotifyError> {
        let addrs = self
            .cfg
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| JetStreamOutConfig::err("urls", e.to_string()))?;
        let counters = Arc::clone(&self.counters);
        // async-nats runs the callback on its own task, outside this publisher's span.
        let stream = self.cfg.stream_name();
        let options = match &self.cfg.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
            // The error names the file and what is wrong with it, never its contents.
            NatsAuth::CredentialsFile(path) => async_nats::ConnectOptions::new()
                .credentials_file(path)
                .await
                .map_err(|e| {
                    self.nats_err(
                        "connecting",
                        format!("NATS credentials file {}: {e}", path.display()),
                    )
                })?,
        };
        let options = options
            .name("xueliang-jetstream-out")
            .connection_timeout(CONNECT_TIMEOUT)
            .reconnect_delay_callback(|attempts| {
                let ms = 100u64.saturating_mul(attempts as u64);
                Duration::from_millis(ms).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(move |event| {
                let counters = Arc::clone(&counters);
                let stream = stream.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            counters.connected.store(true, Relaxed);
                            info!(%stream, "JetStream out: connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            counters.connected.store(false, Relaxed);
                            warn!(%stream, "JetStream out: disconnected from NATS");
                        }
                        async_nats::Event::ServerError(e) => {
                            warn!(%stream, error = %e, "JetStream out: NATS server error");
                        }
                        other => debug!(%stream, event = %other, "NATS client event"),
                    }
                }
            });
        match tokio::time::timeout(
            CONNECT_TIMEOUT + Duration::from_secs(1),
            options.connect(addrs),
        )
        .await
        {
            Ok(Ok(client)) => Ok(client),
            // The server answered and refused the CONNECT, or the credentials file could not
            // sign its nonce.
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    async_nats::ConnectErrorKind::AuthorizationViolation
                        | async_nats::ConnectErrorKind::Authentication
                ) =>
            {
                Err(self.nats_err(
                    "connecting",
                    format!(
                        "the server refused the credentials ({}): {e}",
                        self.cfg.auth
                    ),
                ))
            }
            Ok(Err(e)) => Err(self.nats_err("connecting", e)),
            Err(_) => Err(self.nats_err(
                "connecting",
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )),
        }
    }

    fn nats_err(&self, op: impl Into<String>, e: impl fmt::Display) -> NotifyError {
        NotifyError::Nats {
            urls: self.cfg.urls_for_log(),
            op: op.into(),
            message: e.to_string(),
        }
    }

    /// Creates the stream, or opens it when it exists (another node may have made it, perhaps
    /// at the same moment: the loser's create fails and the retry opens it). An existing
    /// stream must carry the subjects; its `max_age` and duplicate window are updated to this
    /// config's, its other settings left as they are.
    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), NotifyError> {
        let want = self.cfg.stream_config();
        let op = format!("creating or opening stream {}", want.name);
        let stream = js
            .get_or_create_stream(want.clone())
            .await
            .map_err(|e| self.nats_err(&op, e))?;
        let have = &stream.cached_info().config;
        let filter = self.cfg.subjects();
        if !have.subjects.contains(&filter) {
            return Err(self.nats_err(
                op,
                format!(
                    "the stream exists with subjects {:?}, without {filter}",
                    have.subjects
                ),
            ));
        }
        if have.storage != stream::StorageType::File {
            warn!(stream = %want.name, what = self.cfg.feed.what(), "the stream keeps its messages in memory: a NATS restart loses them");
        }
        if have.max_age != want.max_age || have.duplicate_window != want.duplicate_window {
            let mut update = have.clone();
            update.max_age = want.max_age;
            update.duplicate_window = want.duplicate_window;
            js.update_stream(&update)
                .await
                .map_err(|e| self.nats_err(format!("updating stream {}", want.name), e))?;
            info!(
                stream = %want.name,
                max_age_secs = want.max_age.as_secs(),
                was_max_age_secs = have.max_age.as_secs(),
                duplicate_window_secs = want.duplicate_window.as_secs(),
                was_duplicate_window_secs = have.duplicate_window.as_secs(),
                "stream settings updated"
            );
        }
        debug!(stream = %want.name, "stream ready");
        Ok(())
    }

    /// Publishes the feed from the cursor until shutdown or a failure.
    async fn publish_round<F: Feed>(
        &mut self,
        js: &jetstream::Context,
        feed: &F,
        committed: &mut watch::Receiver<i64>,
        shutdown: &CancellationToken,
    ) -> Stop {
        let mut tick = tokio::time::interval(secs(self.cfg.poll_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        let mut want_fetch = true;
        let mut watch_open = true;
        loop {
            if want_fetch {
                self.counters
                    .committed
                    .fetch_max(*committed.borrow_and_update(), Relaxed);
                let entries = match feed.after(self.cursor, BATCH).await {
                    Ok(e) => e,
                    Err(e) => {
                        // Read again at the next poll tick.
                        warn!(error = %e, after = self.cursor, what = self.cfg.feed.what(), "cannot read the feed");
                        Vec::new()
                    }
                };
                if let Some(last) = entries.last() {
                    // Counts the backlog of a feed whose watch does not tell its seq.
                    self.counters.committed.fetch_max(last.seq, Relaxed);
                }
                want_fetch = entries.len() >= BATCH as usize;
                for entry in entries {
                    if let Err(e) = self.publish(js, entry).await {
                        return Stop::Failed(e);
                    }
                }
                // After each batch, not at the next wake-up: a publisher that dies while
                // idle leaves nothing to republish.
                self.store_cursor(feed).await;
                if want_fetch {
                    continue;
                }
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Stop::Shutdown,
                r = committed.changed(), if watch_open => {
                    if r.is_err() {
                        // The hub dropped the sender: the poll is all that is left.
                        watch_open = false;
                    } else {
                        want_fetch = true;
                    }
                }
                _ = tick.tick() => want_fetch = true,
            }
        }
    }

    /// Publishes one entry and waits for the server's ack; moves the cursor past it.
    async fn publish(
        &mut self,
        js: &jetstream::Context,
        entry: FeedEntry,
    ) -> Result<(), NotifyError> {
        let FeedEntry {
            seq,
            community,
            kind,
            payload,
        } = entry;
        let subject = self.cfg.subject(&community, &kind);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(self.cfg.message_id(seq));
        let op = || format!("publishing seq {seq} on {subject}");
        let ack = js
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| self.nats_err(op(), e))?
            .await
            .map_err(|e| self.nats_err(op(), e))?;
        if ack.duplicate {
            self.counters.duplicates.fetch_add(1, Relaxed);
            debug!(seq, stream_seq = ack.sequence, "already in the stream");
        } else {
            self.counters.published.fetch_add(1, Relaxed);
            trace!(seq, stream_seq = ack.sequence, %subject, "published");
        }
        self.backoff.reset();
        self.cursor = seq;
        self.counters.cursor.store(seq, Relaxed);
        self.counters.committed.fetch_max(seq, Relaxed);
        Ok(())
    }

    /// Stores the cursor when it moved; a failure is logged and retried next time.
    async fn store_cursor<F: Feed>(&mut self, feed: &F) {
        if self.stored == self.cursor {
            return;
        }
        match feed.set_cursor(self.cfg.feed.cursor(), self.cursor).await {
            Ok(()) => self.stored = self.cursor,
            Err(e) => warn!(error = %e, cursor = self.cursor, "cannot store the JetStream cursor"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<JetStreamOutConfig, String> {
        toml::from_str(&format!("urls = [\"nats://127.0.0.1:4222\"]\n{extra}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_names_and_stream_config() {
        let c = cfg("").unwrap();
        c.validate().unwrap();
        assert_eq!((c.prefix.as_str(), c.max_age_days), ("xl", 7));
        assert_eq!(c.stream_name(), "xl-alerts");
        assert_eq!(c.subjects(), "xl.alerts.>");
        assert_eq!(c.message_id(42), "xl-outbox-42");
        let s = c.stream_config();
        assert_eq!(s.subjects, vec!["xl.alerts.>".to_owned()]);
        assert_eq!(s.storage, stream::StorageType::File);
        assert_eq!(s.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(s.duplicate_window, Duration::from_secs(120));
        let e = crate::webhook::tests::sample_entry(3);
        assert_eq!(
            c.subject(e.alert.community.as_str(), e.alert.kind.as_str()),
            "xl.alerts.xingfu.gate_forced_open"
        );
        assert_eq!(c.feed.cursor(), "jetstream");
        assert!(cfg("colour = 1").unwrap_err().contains("colour"));
        let n = JetStreamOutConfig::new(vec!["nats://h:4222".into()]);
        assert_eq!((n.prefix.as_str(), n.max_age_days), ("xl", 7));
    }

    #[test]
    fn each_feed_has_its_own_stream_subjects_ids_and_cursor() {
        let base = cfg("prefix = \"d1\"").unwrap();
        let cases = [
            (
                FeedKind::Alerts,
                "d1-alerts",
                "d1.alerts.>",
                "d1.alerts.xingfu.gate_forced_open",
                "d1-outbox-7",
                "jetstream",
            ),
            (
                FeedKind::GateEvents,
                "d1-gate-events",
                "d1.gate.>",
                "d1.gate.xingfu.gate_forced_open",
                "d1-gate-7",
                "jetstream.gate",
            ),
            (
                FeedKind::VisionEvents,
                "d1-vision-events",
                "d1.vision.>",
                "d1.vision.xingfu.gate_forced_open",
                "d1-vision-7",
                "jetstream.vision",
            ),
        ];
        for (feed, stream, subjects, subject, id, cursor) in cases {
            let c = JetStreamOutConfig {
                feed,
                ..base.clone()
            };
            c.validate().unwrap();
            assert_eq!(c.stream_name(), stream);
            assert_eq!(c.subjects(), subjects);
            assert_eq!(c.subject("xingfu", "gate.forced_open"), subject);
            assert_eq!(c.message_id(7), id);
            assert_eq!(feed.cursor(), cursor);
            let s = c.stream_config();
            assert_eq!(
                (s.name.as_str(), s.subjects),
                (stream, vec![subjects.to_owned()])
            );
            assert_eq!(s.storage, stream::StorageType::File);
        }
        // The feed is the hub's to set, not a TOML key.
        assert!(cfg("feed = \"gate\"").is_err());
        assert_eq!(FeedKind::ALL.len(), 3);
    }

    #[test]
    fn subject_tokens_have_no_dots_wildcards_or_spaces() {
        let cases = [
            ("gate.forced_open", "gate_forced_open"),
            ("xingfu-1_b", "xingfu-1_b"),
            ("a b*c>d.e", "a_b_c_d_e"),
            ("幸福", "__"),
            ("", "_"),
        ];
        for (s, want) in cases {
            assert_eq!(subject_token(s), want, "{s:?}");
        }
    }

    #[test]
    fn bad_configs_name_the_key_and_hide_credentials() {
        let bad = [
            ("urls = []", "jetstream_out.urls"),
            ("urls = [\"nats://u:hunter2@h:x\"]", "jetstream_out.urls"),
            ("urls = [\"nats://u:hunter2@h:4222\"]", "jetstream_out.urls"),
            ("prefix = \"a.b\"", "jetstream_out.prefix"),
            ("prefix = \"\"", "jetstream_out.prefix"),
            ("max_age_days = 0", "jetstream_out.max_age_days"),
            (
                "backoff_initial_secs = 0",
                "jetstream_out.backoff_initial_secs",
            ),
            ("backoff_max_secs = 0.1", "jetstream_out.backoff_max_secs"),
            (
                "poll_interval_secs = -1",
                "jetstream_out.poll_interval_secs",
            ),
        ];
        for (line, key) in bad {
            let text = if line.starts_with("urls") {
                line.to_owned()
            } else {
                format!("urls = [\"nats://h:4222\"]\n{line}")
            };
            let c: JetStreamOutConfig = toml::from_str(&text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let mut c: JetStreamOutConfig =
            toml::from_str("urls = [\"nats://10.0.0.5:4222\"]").unwrap();
        for auth in [
            NatsAuth::UserPassword {
                user: "hub".into(),
                password: "hunter2".into(),
            },
            NatsAuth::Token("hunter2".into()),
        ] {
            c.auth = auth;
            c.validate().unwrap();
            let dbg = format!("{c:?} {}", c.auth);
            assert!(
                !dbg.contains("hunter2") && dbg.contains("10.0.0.5"),
                "{dbg}"
            );
        }
        c.auth = NatsAuth::UserPassword {
            user: "hub".into(),
            password: String::new(),
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("jetstream_out.auth"), "{e}");
        // Not a TOML key: the hub sets it.
        assert!(
            toml::from_str::<JetStreamOutConfig>("urls = [\"nats://h:4222\"]\nauth = 1").is_err()
        );
    }
}
