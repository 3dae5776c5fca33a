//! MQTT ingest (rumqttc): one persistent session (fixed client id, `clean_session = false`),
//! QoS 1 subscriptions, manual acknowledgements.
//!
//! A message is acknowledged only after its events (or its dead letter) are durable, so a
//! crash between receipt and storage makes the broker deliver it again; a crash between
//! storage and acknowledgement delivers it again too, and dedup recognises it. Acks go out in
//! the order the messages came in (the writer completes jobs in order), as MQTT 3.1.1 wants.
//! An ack for a message of an earlier connection is never sent: the broker redelivers such
//! messages on the new connection (possibly under a packet id now used by another message).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, trace, warn};
use xl_core::GateId;
use xl_core::backoff::Backoff;
use xl_core::gate::PayloadMeta;
use xl_core::throttle::{LogThrottle, WARN_EVERY};

use crate::config::{MqttConfig, SubscriptionConfig};
use crate::ingest::{GateHint, GateSet, Incoming, Ingest};
use crate::journal::TransportKind;
use crate::writer::Outcome;

/// Whether `filter` is a valid MQTT topic filter.
pub fn topic_filter_is_valid(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > 65535 || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 rules; `$`-topics only match filters that
/// start with `$`).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The MQTT connection's state, for `/metrics` and logs. With the embedded broker: connected
/// while it listens, connections accepted from clients, gate messages ingested.
#[derive(Debug, Default)]
pub struct MqttStatus {
    pub connected: AtomicBool,
    /// Connections made (the first included).
    pub connections: AtomicU64,
    pub messages: AtomicU64,
    /// Refused by the access rules: CONNECTs (bad credentials, anonymous, a client id of
    /// another account's), PUBLISHes not stored or not passed on (a gate not the sender's, a
    /// gate that takes HTTP push only, a topic the account may not write), and topic filters
    /// of SUBSCRIBEs (answered 0x80).
    pub refused_connects: AtomicU64,
    pub refused_publishes: AtomicU64,
    pub refused_subscriptions: AtomicU64,
    /// Embedded broker: connections closed at once, over the bound on open connections in
    /// all or from one address.
    pub shed_connections: AtomicU64,
}

fn options(cfg: &MqttConfig) -> Result<MqttOptions, String> {
    let broker = cfg.broker()?;
    let mut o = MqttOptions::new(cfg.client_id.clone(), broker.host, broker.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(cfg.keep_alive_secs.max(5)))
        .set_max_packet_size(cfg.max_payload_bytes + 65536, 65536)
        .set_inflight(100);
    if let Some(user) = &cfg.username {
        o.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    if broker.tls {
        let tls = match cfg.ca_pem()? {
            Some(ca) => rumqttc::TlsConfiguration::SimpleNative {
                ca,
                client_auth: None,
            },
            None => rumqttc::TlsConfiguration::Native,
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    Ok(o)
}

/// Runs the MQTT ingest until `shutdown`: connects, subscribes, reconnects with backoff.
pub(crate) async fn run(
    ingest: Arc<Ingest>,
    cfg: MqttConfig,
    status: Arc<MqttStatus>,
    shutdown: CancellationToken,
) {
    let opts = match options(&cfg) {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "MQTT ingest not started");
            return;
        }
    };
    let span = info_span!("mqtt", client_id = %cfg.client_id, broker = %broker_text(&cfg));
    run_session(ingest, cfg, opts, status, shutdown)
        .instrument(span)
        .await;
}

fn broker_text(cfg: &MqttConfig) -> String {
    match cfg.broker() {
        Ok(b) => format!(
            "{}://{}:{}",
            if b.tls { "mqtts" } else { "mqtt" },
            b.host,
            b.port
        ),
        Err(_) => "?".into(),
    }
}

type Done = (u64, Outcome, Publish);

async fn run_session(
    ingest: Arc<Ingest>,
    cfg: MqttConfig,
    opts: MqttOptions,
    status: Arc<MqttStatus>,
    shutdown: CancellationToken,
) {
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut backoff = Backoff::new(
        Duration::from_secs_f64(cfg.backoff_initial_secs),
        Duration::from_secs_f64(cfg.backoff_max_secs),
    );
    // Incremented on every ConnAck; acks are sent only for messages of the current connection.
    let mut generation: u64 = 0;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some((gen_of, outcome, publish)) = done_rx.recv() => match outcome {
                Ok(()) if gen_of == generation => {
                    if let Err(e) = client.try_ack(&publish) {
                        debug!(error = %e, "cannot queue an ack; the broker will redeliver");
                    }
                }
                Ok(()) => trace!(pkid = publish.pkid, "ack of an earlier connection dropped"),
                Err(e) => {
                    // Not stored: drop the connection so the broker redelivers everything
                    // unacknowledged, after a pause.
                    warn!(error = %e, topic = %publish.topic, "cannot store gate events; reconnecting");
                    generation += 1;
                    eventloop.clean();
                    status.connected.store(false, Relaxed);
                    if sleep_or_shutdown(backoff.next_delay(rand::random()), &shutdown).await {
                        break;
                    }
                }
            },
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    generation += 1;
                    backoff.reset();
                    status.connected.store(true, Relaxed);
                    status.connections.fetch_add(1, Relaxed);
                    info!(session_present = ack.session_present, "MQTT connected");
                    for s in &cfg.subscriptions {
                        if let Err(e) = client.try_subscribe(s.filter.clone(), QoS::AtLeastOnce) {
                            warn!(filter = %s.filter, error = %e, "cannot subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        warn!(pkid = ack.pkid, "the broker refused a subscription (check its ACL)");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    status.messages.fetch_add(1, Relaxed);
                    handle(&ingest, &cfg, &status, p, generation, &done_tx);
                }
                Ok(_) => {}
                Err(e) => {
                    // Messages of the lost connection are redelivered on the next one.
                    generation += 1;
                    status.connected.store(false, Relaxed);
                    let delay = backoff.next_delay(rand::random());
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost");
                    if sleep_or_shutdown(delay, &shutdown).await {
                        break;
                    }
                }
            },
        }
    }
    // A clean DISCONNECT; the session (subscriptions, queued messages) stays on the broker.
    status.connected.store(false, Relaxed);
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    info!("MQTT ingest stopped");
}

/// True when shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}

fn handle(
    ingest: &Arc<Ingest>,
    cfg: &MqttConfig,
    status: &MqttStatus,
    p: Publish,
    generation: u64,
    done_tx: &mpsc::UnboundedSender<Done>,
) {
    // None: a retained or session message of a filter no longer configured (a dead letter).
    let sub = cfg
        .subscriptions
        .iter()
        .find(|s| topic_matches(&s.filter, &p.topic));
    let tx = done_tx.clone();
    let (topic, payload) = (p.topic.clone(), p.payload.clone());
    let refused = ingest_message(
        ingest,
        sub,
        &topic,
        &payload,
        p.dup,
        None,
        None,
        move |outcome| {
            let _ = tx.send((generation, outcome, p));
        },
    );
    if !refused.is_empty() {
        status.refused_publishes.fetch_add(1, Relaxed);
        // Acknowledged and not stored: the broker's ACL let it through, the gate's config
        // does not (it takes HTTP push only). Said at most every 10 s.
        if let Some(suppressed) = warn_now(&REFUSED_WARNING) {
            warn!(%topic, gates = ?refused, suppressed, "MQTT payload for a gate that takes HTTP push only: not stored");
        }
    }
}

/// Warnings about payloads for HTTP-push-only gates, at most one every 10 s.
static REFUSED_WARNING: Mutex<LogThrottle> = Mutex::new(LogThrottle::new(WARN_EVERY));

/// Whether a warning that `throttle` limits may be said now: `Some(n)`, with `n` held back
/// since the last one. For warnings a remote party can cause at will, shared by all tasks.
pub(crate) fn warn_now(throttle: &Mutex<LogThrottle>) -> Option<u64> {
    throttle
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(Instant::now())
}

/// Decodes one MQTT message as its subscription says (firmware, where the gate id is) and
/// hands it to the writer; `done` runs once its events or dead letter are durable, or could
/// not be stored. A sender that may report only for the gates in `allowed` (an account of
/// the embedded broker) has the events of other gates left out; so has every sender for a
/// gate that takes HTTP push only. Returns the gates of the events left out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest_message(
    ingest: &Arc<Ingest>,
    sub: Option<&SubscriptionConfig>,
    topic: &str,
    payload: &[u8],
    redelivered: bool,
    peer: Option<SocketAddr>,
    allowed: Option<&GateSet>,
    done: impl FnOnce(Outcome) + Send + 'static,
) -> Vec<GateId> {
    // Latency is measured on real time; what the payload's events are stamped with comes from
    // the ingest's clocks.
    let arrived = Instant::now();
    let received_at = ingest.clocks().realtime();
    let default_from = crate::config::GateFrom::DeviceId;
    let (firmware, gate_from) = match sub {
        Some(s) => (s.firmware.as_str(), &s.gate_from),
        None => ("unknown", &default_from),
    };
    let inc = Incoming {
        transport: TransportKind::Mqtt,
        firmware,
        meta: PayloadMeta::new(received_at).with_topic(topic),
        payload,
        gate: GateHint::From(gate_from),
        redelivered,
        peer,
        arrived,
    };
    let mut prepared = ingest.prepare_from(&inc, allowed);
    trace!(
        topic,
        events = prepared.events(),
        dead_letters = prepared.dead_letters(),
        duplicates = prepared.duplicates,
        refused = prepared.refused.len(),
        "message"
    );
    let refused = std::mem::take(&mut prepared.refused);
    ingest.submit(prepared, arrived, done);
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_mqtt_says() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("#", "$SYS/x", false),
            ("+/b", "/b", true),
            ("DahuaVTO/+/Event", "DahuaVTO/AccessControl/Event", true),
            ("DahuaVTO/+/Event", "DahuaVTO/AccessControl/State", false),
            ("a/b", "a/b/", false),
        ];
        for (f, t, want) in cases {
            assert_eq!(topic_matches(f, t), want, "{f} vs {t}");
        }
        for ok in ["a", "a/+/b", "#", "+", "a/#", "/"] {
            assert!(topic_filter_is_valid(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "a/b#", "x\0"] {
            assert!(!topic_filter_is_valid(bad), "{bad:?}");
        }
    }
}
