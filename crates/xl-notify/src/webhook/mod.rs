//! Webhooks: one task per `[[webhooks]]` entry, each with its own cursor `webhook:<name>`.
//!
//! Delivery is in `seq` order, at least once. Entries the webhook does not want (kinds,
//! severity, communities, changes) only advance its cursor. A failed delivery is retried,
//! the same entry again, with exponential backoff (`backoff_initial_secs` doubling to
//! `backoff_max_secs`, ±20% jitter):
//! - transient failures (no answer, timeout, HTTP 408, 429 and 5xx, a robot's rate-limit
//!   errcode) are retried for as long as they last: the webhook falls behind, nothing is lost;
//! - permanent failures (any other HTTP status, a robot's other non-zero errcodes, a 200 that
//!   is not the robot's JSON) are retried [`PERMANENT_RETRIES`] times (the endpoint may be
//!   being fixed), then the entry is logged at ERROR with its seq and alert id, counted in
//!   `skipped`, and passed over. One malformed or refused message must not stop every later
//!   alert; the store still has the alert and the API and MQTT still publish it.
//!
//! The cursor is stored after each delivered (or skipped) entry, so a restart resends at most
//! the entry that was in flight.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use xl_core::OutboxEntry;

use crate::backoff::{Backoff, jittered, secs, sleep_or_shutdown};
use crate::redact::redact_url;
use crate::{NotifyError, Outbox};

mod config;
mod format;

pub use config::{WebhookConfig, WebhookFormat, validate_webhooks};
pub use format::dingtalk_sign;

/// How many times an entry that failed permanently is retried before it is skipped (so it
/// is tried `1 + PERMANENT_RETRIES` times).
pub const PERMANENT_RETRIES: u32 = 5;

/// Entries read from the outbox at a time.
const BATCH: u32 = 100;

/// At most this much of an error answer's body goes into the error.
const MAX_BODY_IN_ERROR: usize = 200;

/// Live counters of one webhook.
#[derive(Debug)]
pub struct WebhookStats {
    name: String,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    skipped: AtomicU64,
    filtered: AtomicU64,
    cursor: AtomicI64,
    committed: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A copy of a webhook's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStatsSnapshot {
    pub name: String,
    /// Entries delivered.
    pub sent: u64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: u64,
    /// Entries given up after permanent failures.
    pub skipped: u64,
    /// Entries the webhook does not want (they only advance the cursor).
    pub filtered: u64,
    /// The last seq delivered, skipped or filtered.
    pub cursor: i64,
    /// Committed entries not yet handled: the last committed seq known minus `cursor`.
    pub lag: i64,
    /// The latest failure's message (URL redacted).
    pub last_error: Option<String>,
}

impl WebhookStats {
    fn new(name: &str) -> WebhookStats {
        WebhookStats {
            name: name.to_owned(),
            sent: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            cursor: AtomicI64::new(0),
            committed: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The webhook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters now.
    pub fn snapshot(&self) -> WebhookStatsSnapshot {
        let cursor = self.cursor.load(Relaxed);
        WebhookStatsSnapshot {
            name: self.name.clone(),
            sent: self.sent.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            cursor,
            lag: (self.committed.load(Relaxed) - cursor).max(0),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn note_committed(&self, seq: i64) {
        self.committed.fetch_max(seq, Relaxed);
    }

    fn set_last_error(&self, e: &NotifyError) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_string());
        }
    }
}

/// The running webhooks: their stats, and their tasks to wait for after shutdown.
pub struct Webhooks {
    stats: Vec<Arc<WebhookStats>>,
    tasks: JoinSet<()>,
}

impl Webhooks {
    /// Validates `configs` and starts one task per webhook on the current tokio runtime.
    /// Each is woken by `committed` (the last committed seq) or every `poll_interval_secs`,
    /// and stops on `shutdown`.
    pub fn start<O: Outbox>(
        configs: Vec<WebhookConfig>,
        outbox: Arc<O>,
        committed: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) -> Result<Webhooks, NotifyError> {
        validate_webhooks(&configs)?;
        let mut prepared = Vec::with_capacity(configs.len());
        for (i, cfg) in configs.into_iter().enumerate() {
            let key = format!("webhooks[{i}]");
            prepared.push(Sender::new(cfg, &key)?);
        }
        let mut tasks = JoinSet::new();
        let mut stats = Vec::with_capacity(prepared.len());
        for sender in prepared {
            let st = Arc::new(WebhookStats::new(&sender.cfg.name));
            stats.push(Arc::clone(&st));
            let span = info_span!("webhook", name = %sender.cfg.name, url = %sender.redacted);
            tasks.spawn(
                run(
                    sender,
                    Arc::clone(&outbox),
                    committed.clone(),
                    shutdown.clone(),
                    st,
                )
                .instrument(span),
            );
        }
        Ok(Webhooks { stats, tasks })
    }

    /// Every webhook's live counters, in config order.
    pub fn stats(&self) -> &[Arc<WebhookStats>] {
        &self.stats
    }

    /// Waits until every task has stopped (after `shutdown` was cancelled).
    pub async fn join(mut self) {
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r
                && e.is_panic()
            {
                error!(error = %e, "a webhook task panicked");
            }
        }
    }
}

/// One webhook's HTTP side.
struct Sender {
    cfg: WebhookConfig,
    url: url::Url,
    redacted: String,
    client: reqwest::Client,
}

impl Sender {
    fn new(cfg: WebhookConfig, key: &str) -> Result<Sender, NotifyError> {
        let url = cfg.parsed_url(key)?;
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("xueliang-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config {
                key: key.to_owned(),
                message: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(Sender {
            redacted: redact_url(&cfg.url),
            url,
            cfg,
            client,
        })
    }

    /// The URL to POST to now (DingTalk signs each request with the current time).
    fn request_url(&self) -> url::Url {
        let mut u = self.url.clone();
        if let (WebhookFormat::Dingtalk, Some(secret)) = (self.cfg.format, &self.cfg.secret) {
            let ts = jiff::Timestamp::now().as_millisecond();
            let sign = dingtalk_sign(secret, ts);
            u.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &sign);
        }
        u
    }

    /// One attempt at delivering `entry`.
    async fn send(&self, entry: &OutboxEntry) -> Result<(), NotifyError> {
        let body = format::body(self.cfg.format, entry).map_err(|source| NotifyError::Encode {
            what: "a webhook body",
            source,
        })?;
        let resp = self
            .client
            .post(self.request_url())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.request_error(e))?;
        if !status.is_success() {
            return Err(NotifyError::Status {
                webhook: self.cfg.name.clone(),
                url: self.redacted.clone(),
                status: status.as_u16(),
                body: truncate(&text),
            });
        }
        if self.cfg.format == WebhookFormat::Json {
            return Ok(());
        }
        match serde_json::from_str::<format::RobotAnswer>(&text) {
            Ok(a) if a.errcode == 0 => Ok(()),
            Ok(a) => Err(NotifyError::Refused {
                webhook: self.cfg.name.clone(),
                url: self.redacted.clone(),
                rate_limited: format::is_rate_limited(self.cfg.format, a.errcode),
                errcode: a.errcode,
                errmsg: truncate(&a.errmsg),
            }),
            Err(_) => Err(NotifyError::BadResponse {
                webhook: self.cfg.name.clone(),
                url: self.redacted.clone(),
                body: truncate(&text),
            }),
        }
    }

    /// A reqwest error without its URL (which holds the token), with its causes.
    fn request_error(&self, e: reqwest::Error) -> NotifyError {
        let timeout = e.is_timeout();
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        NotifyError::Request {
            webhook: self.cfg.name.clone(),
            url: self.redacted.clone(),
            message,
            timeout,
        }
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

enum Delivery {
    Sent,
    Skipped,
    Stopped,
}

/// The webhook's loop: read after the cursor, deliver in order, store the cursor.
async fn run<O: Outbox>(
    sender: Sender,
    outbox: Arc<O>,
    mut committed: watch::Receiver<i64>,
    shutdown: CancellationToken,
    stats: Arc<WebhookStats>,
) {
    let cfg = &sender.cfg;
    let cursor_name = format!("webhook:{}", cfg.name);
    let poll = secs(cfg.poll_interval_secs);
    let mut delivery_backoff =
        Backoff::new(secs(cfg.backoff_initial_secs), secs(cfg.backoff_max_secs));
    let mut read_backoff = Backoff::new(secs(cfg.backoff_initial_secs), secs(cfg.backoff_max_secs));
    let mut cursor = loop {
        match outbox.cursor(&cursor_name).await {
            Ok(c) => break c,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook's cursor; retrying");
                if sleep_or_shutdown(jittered(&mut read_backoff), &shutdown).await {
                    return;
                }
            }
        }
    };
    read_backoff.reset();
    stats.cursor.store(cursor, Relaxed);
    info!(cursor, "webhook started");
    let mut stored = cursor;
    let mut watch_open = true;
    'outer: while !shutdown.is_cancelled() {
        stats.note_committed(*committed.borrow_and_update());
        let batch = match outbox.after(cursor, BATCH).await {
            Ok(b) => {
                read_backoff.reset();
                b
            }
            Err(e) => {
                warn!(error = %e, cursor, "cannot read the outbox; retrying");
                if sleep_or_shutdown(jittered(&mut read_backoff), &shutdown).await {
                    break;
                }
                continue;
            }
        };
        if batch.is_empty() {
            if stored != cursor {
                stored = store_cursor(&*outbox, &cursor_name, cursor, stored).await;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = committed.changed(), if watch_open => {
                    if r.is_err() {
                        // The hub dropped the sender: the poll is all that is left.
                        watch_open = false;
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        for entry in batch {
            stats.note_committed(entry.seq);
            let wanted = cfg.wants(&entry);
            if wanted {
                match deliver(&sender, &entry, &mut delivery_backoff, &shutdown, &stats).await {
                    Delivery::Stopped => break 'outer,
                    Delivery::Sent | Delivery::Skipped => {}
                }
            } else {
                stats.filtered.fetch_add(1, Relaxed);
            }
            cursor = entry.seq;
            stats.cursor.store(cursor, Relaxed);
            // Filtered entries are stored with the next delivery or when the outbox is
            // drained: one write per delivered alert, not per entry.
            if wanted {
                stored = store_cursor(&*outbox, &cursor_name, cursor, stored).await;
            }
        }
    }
    if stored != cursor {
        store_cursor(&*outbox, &cursor_name, cursor, stored).await;
    }
    info!(cursor, "webhook stopped");
}

/// Stores `cursor`; returns what is stored now (`stored` when it failed: a restart then
/// resends from there, which at-least-once allows).
async fn store_cursor<O: Outbox>(outbox: &O, name: &str, cursor: i64, stored: i64) -> i64 {
    match outbox.set_cursor(name, cursor).await {
        Ok(()) => cursor,
        Err(e) => {
            warn!(error = %e, cursor, "cannot store the webhook's cursor");
            stored
        }
    }
}

/// Delivers `entry`, retrying as the module documentation says.
async fn deliver(
    sender: &Sender,
    entry: &OutboxEntry,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
    stats: &WebhookStats,
) -> Delivery {
    let mut permanent_failures = 0;
    loop {
        let result = tokio::select! {
            r = sender.send(entry) => r,
            // The entry in flight is sent again after a restart.
            () = shutdown.cancelled() => return Delivery::Stopped,
        };
        let e = match result {
            Ok(()) => {
                stats.sent.fetch_add(1, Relaxed);
                backoff.reset();
                debug!(seq = entry.seq, alert = %entry.alert.id, "delivered");
                return Delivery::Sent;
            }
            Err(e) => e,
        };
        stats.failed_attempts.fetch_add(1, Relaxed);
        stats.set_last_error(&e);
        if !e.kind().is_transient() {
            permanent_failures += 1;
            if permanent_failures > PERMANENT_RETRIES {
                error!(
                    seq = entry.seq,
                    alert = %entry.alert.id,
                    attempts = permanent_failures,
                    error = %e,
                    "webhook refused the alert every time; skipped"
                );
                stats.skipped.fetch_add(1, Relaxed);
                backoff.reset();
                return Delivery::Skipped;
            }
        }
        let delay = jittered(backoff);
        warn!(
            seq = entry.seq,
            alert = %entry.alert.id,
            error = %e,
            retry_in_ms = delay.as_millis() as u64,
            "webhook delivery failed"
        );
        if sleep_or_shutdown(delay, shutdown).await {
            return Delivery::Stopped;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use jiff::Timestamp;
    use xl_core::alert::{AlertChange, AlertId};
    use xl_core::{Alert, AlertKind, AlertState, CameraId, CommunityId, GateId, Role, Severity};

    use super::*;

    /// A raised `gate.forced_open` (major) in `xingfu` at gate-1 / cam-1.
    pub(crate) fn sample_entry(seq: i64) -> OutboxEntry {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        OutboxEntry {
            seq,
            at,
            change: AlertChange::Raised,
            alert: Alert {
                id: AlertId::new(at, 42),
                kind: AlertKind::GateForcedOpen,
                severity: Severity::Major,
                state: AlertState::Open,
                community: CommunityId::new("xingfu").unwrap(),
                camera: Some(CameraId::new("cam-1").unwrap()),
                gate: Some(GateId::new("gate-1").unwrap()),
                zone: None,
                title: "东门被强行打开 East door forced open".into(),
                raised_at: at,
                last_seen_at: at,
                count: 1,
                ack_deadline: None,
                acknowledged_at: None,
                escalated_at: None,
                resolved_at: None,
                roles: vec![Role::Duty],
                source_event: None,
                snapshot: None,
            },
        }
    }

    fn hook(extra: &str) -> WebhookConfig {
        toml::from_str(&format!("name = \"a\"\nurl = \"http://h/\"\n{extra}")).unwrap()
    }

    #[test]
    fn filters_by_kind_severity_community_and_change() {
        let e = sample_entry(1); // gate.forced_open, major, xingfu, raised
        let cases = [
            ("", true),
            ("kinds = [\"gate.forced_open\", \"gate.duress\"]", true),
            ("kinds = [\"camera.offline\"]", false),
            ("min_severity = \"major\"", true),
            ("min_severity = \"minor\"", true),
            ("min_severity = \"critical\"", false),
            ("communities = [\"xingfu\"]", true),
            ("communities = [\"other\"]", false),
            ("changes = [\"raised\"]", true),
            ("changes = [\"resolved\", \"escalated\"]", false),
        ];
        for (extra, want) in cases {
            assert_eq!(hook(extra).wants(&e), want, "{extra}");
        }
        let mut repeated = sample_entry(2);
        repeated.change = AlertChange::Repeated;
        assert!(
            !hook("").wants(&repeated),
            "repeats are not sent by default"
        );
    }

    #[test]
    fn error_bodies_are_cut() {
        assert_eq!(truncate("short"), "short");
        let long = "错".repeat(500);
        assert_eq!(truncate(&long).chars().count(), MAX_BODY_IN_ERROR + 1);
    }
}
