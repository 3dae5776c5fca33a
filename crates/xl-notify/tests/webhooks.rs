//! Webhooks against a real HTTP server (axum on 127.0.0.1:0).

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use xl_core::alert::AlertChange;
use xl_core::{AlertKind, OutboxEntry, Severity};
use xl_notify::{WebhookConfig, Webhooks};

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// A webhook with fast retries for tests.
fn hook(name: &str, url: &str, extra: &str) -> WebhookConfig {
    toml::from_str(&format!(
        "name = \"{name}\"\nurl = \"{url}\"\n\
         backoff_initial_secs = 0.01\nbackoff_max_secs = 0.05\npoll_interval_secs = 0.2\n{extra}"
    ))
    .unwrap()
}

fn start(hooks: Vec<WebhookConfig>, outbox: &Arc<MemOutbox>) -> (Webhooks, CancellationToken) {
    let shutdown = CancellationToken::new();
    let w = Webhooks::start(hooks, Arc::clone(outbox), outbox.watch(), shutdown.clone()).unwrap();
    (w, shutdown)
}

fn push(outbox: &MemOutbox, severity: Severity, n: u64) -> i64 {
    outbox.push(
        AlertChange::Raised,
        alert("xingfu", AlertKind::GateForcedOpen, severity, n),
    )
}

#[tokio::test]
async fn json_dingtalk_and_wecom_bodies_reach_a_real_server() {
    init_logs();
    let server = HookServer::start().await;
    let outbox = MemOutbox::new();
    let secret = "SECtest0123456789abcdef";
    let hooks = vec![
        hook("generic", &server.url("generic"), "format = \"json\""),
        hook(
            "duty-dingtalk",
            &format!("{}?access_token=tok-d", server.url("dingtalk")),
            &format!("format = \"dingtalk\"\nsecret = \"{secret}\"\nmin_severity = \"major\""),
        ),
        hook(
            "duty-wecom",
            &format!("{}?key=tok-w", server.url("wecom")),
            "format = \"wecom\"",
        ),
    ];
    let (w, shutdown) = start(hooks, &outbox);
    push(&outbox, Severity::Major, 1);
    push(&outbox, Severity::Minor, 2); // below DingTalk's min_severity
    push(&outbox, Severity::Critical, 3);

    let generic = server.wait_delivered("generic", 3, WAIT).await;
    let json: Vec<OutboxEntry> = generic
        .iter()
        .map(|h| serde_json::from_value(h.body.clone()).unwrap())
        .collect();
    assert_eq!(json, [outbox.entry(1), outbox.entry(2), outbox.entry(3)]);

    let ding = server.wait_delivered("dingtalk", 2, WAIT).await;
    assert_eq!(ding.len(), 2, "{ding:?}");
    for (hit, n) in ding.iter().zip([1, 3]) {
        assert_eq!(hit.body["msgtype"], "markdown");
        let text = hit.body["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("强行开门 gate.forced_open"), "{text}");
        assert!(text.contains(&format!("#{n}")), "{text}");
        // The signature, computed here independently of the crate.
        let query = hit.query.as_deref().unwrap();
        let pairs: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(pairs["access_token"], "tok-d");
        let ts: i64 = pairs["timestamp"].parse().unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}\n{secret}").as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(pairs["sign"], want);
        assert!(
            !query.contains('/') && !query.contains("+"),
            "sign not URL-encoded: {query}"
        );
    }

    let wecom = server.wait_delivered("wecom", 3, WAIT).await;
    assert_eq!(wecom.len(), 3);
    assert_eq!(wecom[0].query.as_deref(), Some("key=tok-w"));
    assert_eq!(wecom[0].body["msgtype"], "markdown");
    let content = wecom[2].body["markdown"]["content"].as_str().unwrap();
    assert!(
        content.contains("紧急 critical") && content.contains("#3"),
        "{content}"
    );

    // The filtered entry advanced DingTalk's cursor too.
    assert_eq!(
        outbox.wait_cursor("webhook:duty-dingtalk", 3, WAIT).await,
        3
    );
    let s = w.stats()[1].snapshot();
    assert_eq!((s.sent, s.filtered, s.cursor, s.lag), (2, 1, 3, 0));
    shutdown.cancel();
    w.join().await;
}

#[tokio::test]
async fn a_webhook_failing_its_first_three_attempts_delivers_everything_in_order() {
    init_logs();
    let server = HookServer::start().await;
    server.set("flaky", Behaviour::FailFirst { n: 3, status: 500 });
    let outbox = MemOutbox::new();
    let (w, shutdown) = start(vec![hook("flaky", &server.url("flaky"), "")], &outbox);
    for n in 1..=5 {
        push(&outbox, Severity::Major, n);
    }
    let got = server.wait_delivered("flaky", 5, WAIT).await;
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5]);
    assert_eq!(outbox.wait_cursor("webhook:flaky", 5, WAIT).await, 5);
    let s = w.stats()[0].snapshot();
    assert_eq!((s.sent, s.failed_attempts, s.skipped), (5, 3, 0));
    assert!(s.last_error.unwrap().contains("HTTP 500"));
    assert_eq!(server.attempts("flaky"), 8);
    shutdown.cancel();
    w.join().await;
}

#[tokio::test]
async fn a_broken_webhook_does_not_delay_a_healthy_one() {
    init_logs();
    let server = HookServer::start().await;
    server.set("broken", Behaviour::Always(404));
    let outbox = MemOutbox::new();
    // Slow retries for the broken one: it is still on its first entry when the healthy
    // one is done.
    let broken = toml::from_str(&format!(
        "name = \"broken\"\nurl = \"{}?access_token=secret-token\"\nbackoff_initial_secs = 5.0",
        server.url("broken")
    ))
    .unwrap();
    let (w, shutdown) = start(
        vec![broken, hook("healthy", &server.url("healthy"), "")],
        &outbox,
    );
    for n in 1..=3 {
        push(&outbox, Severity::Major, n);
    }
    let got = server.wait_delivered("healthy", 3, WAIT).await;
    assert_eq!(seqs(&got), [1, 2, 3]);
    let b = w.stats()[0].snapshot();
    assert_eq!((b.sent, b.skipped, b.cursor, b.lag), (0, 0, 0, 3));
    assert!(b.failed_attempts >= 1);
    let err = b.last_error.unwrap();
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(!err.contains("secret-token"), "the token leaked: {err}");
    shutdown.cancel();
    w.join().await;
}

#[tokio::test]
async fn a_permanently_refused_entry_is_skipped_after_five_retries() {
    init_logs();
    let server = HookServer::start().await;
    // DingTalk's "keywords not in content": refused whatever we do.
    server.set("refusing", Behaviour::Errcode(310000));
    let outbox = MemOutbox::new();
    let (w, shutdown) = start(
        vec![hook(
            "refusing",
            &server.url("refusing"),
            "format = \"dingtalk\"",
        )],
        &outbox,
    );
    push(&outbox, Severity::Major, 1);
    push(&outbox, Severity::Major, 2);
    assert_eq!(outbox.wait_cursor("webhook:refusing", 2, WAIT).await, 2);
    let s = w.stats()[0].snapshot();
    assert_eq!((s.sent, s.skipped, s.failed_attempts), (0, 2, 12));
    assert!(s.last_error.unwrap().contains("errcode 310000"));
    assert_eq!(server.attempts("refusing"), 12);
    shutdown.cancel();
    w.join().await;
}

#[tokio::test]
async fn a_rate_limited_robot_is_retried_not_skipped() {
    init_logs();
    let server = HookServer::start().await;
    // WeCom 45009: API frequency out of limit. 7 refusals: more than a permanent failure
    // gets, so a skip would show.
    server.set("busy", Behaviour::Errcode(45009));
    let outbox = MemOutbox::new();
    let (w, shutdown) = start(
        vec![hook("busy", &server.url("busy"), "format = \"wecom\"")],
        &outbox,
    );
    push(&outbox, Severity::Major, 1);
    let deadline = std::time::Instant::now() + WAIT;
    while server.attempts("busy") < 8 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.attempts("busy") >= 8);
    assert_eq!(w.stats()[0].snapshot().skipped, 0);
    server.set("busy", Behaviour::Ok);
    let got = server.wait_delivered("busy", 1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(outbox.wait_cursor("webhook:busy", 1, WAIT).await, 1);
    shutdown.cancel();
    w.join().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_cursor() {
    init_logs();
    let server = HookServer::start().await;
    let outbox = MemOutbox::new();
    let cfg = hook("resume", &server.url("resume"), "");

    let (w, shutdown) = start(vec![cfg.clone()], &outbox);
    push(&outbox, Severity::Major, 1);
    push(&outbox, Severity::Major, 2);
    assert_eq!(server.wait_delivered("resume", 2, WAIT).await.len(), 2);
    // Entry 3 fails until after the restart: it is in flight when the hub stops.
    server.set("resume", Behaviour::Always(503));
    push(&outbox, Severity::Major, 3);
    let deadline = std::time::Instant::now() + WAIT;
    while server.attempts("resume") < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    w.join().await;
    assert_eq!(outbox.stored_cursor("webhook:resume"), 2);

    // Committed while the hub was down.
    push(&outbox, Severity::Major, 4);
    push(&outbox, Severity::Major, 5);
    server.set("resume", Behaviour::Ok);
    let (w, shutdown) = start(vec![cfg], &outbox);
    let got = server.wait_delivered("resume", 5, WAIT).await;
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5]);
    assert_eq!(outbox.wait_cursor("webhook:resume", 5, WAIT).await, 5);
    shutdown.cancel();
    w.join().await;
}
