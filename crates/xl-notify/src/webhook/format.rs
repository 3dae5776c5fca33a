//! Webhook bodies (generic JSON, DingTalk and WeCom robot markdown), the DingTalk signature,
//! and reading the robots' `{"errcode":..}` answers.

use base64::Engine;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use jiff::tz::{TimeZone, offset};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use xl_core::alert::AlertChange;
use xl_core::{AlertKind, AlertState, OutboxEntry, Severity};

use super::WebhookFormat;

/// The DingTalk robot signature ("加签"): HMAC-SHA256 keyed with `secret` over
/// `"{timestamp_ms}\n{secret}"`, in standard base64. It goes in the query as `sign`
/// (URL-encoded) beside `timestamp`; DingTalk refuses a timestamp more than an hour off.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let to_sign = format!("{timestamp_ms}\n{secret}");
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The request body for `entry` in `format`.
pub(crate) fn body(
    format: WebhookFormat,
    entry: &OutboxEntry,
) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        WebhookFormat::Json => serde_json::to_vec(entry),
        WebhookFormat::Dingtalk => serde_json::to_vec(&json!({
            "msgtype": "markdown",
            "markdown": { "title": title(entry), "text": dingtalk_text(entry) },
        })),
        WebhookFormat::Wecom => serde_json::to_vec(&json!({
            "msgtype": "markdown",
            "markdown": { "content": wecom_text(entry) },
        })),
    }
}

/// The robots' answer: `{"errcode":0,"errmsg":"ok"}` on success.
#[derive(Debug, Deserialize)]
pub(crate) struct RobotAnswer {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

/// Whether a robot's non-zero `errcode` means "too many messages, try later": DingTalk
/// 130101 (more than 20 messages a minute) and 130102; WeCom 45009 (API frequency), 45033
/// (concurrency) and -1 (system busy).
pub(crate) fn is_rate_limited(format: WebhookFormat, errcode: i64) -> bool {
    match format {
        WebhookFormat::Dingtalk => matches!(errcode, 130101 | 130102),
        WebhookFormat::Wecom => matches!(errcode, 45009 | 45033 | -1),
        WebhookFormat::Json => false,
    }
}

fn kind_zh(k: AlertKind) -> &'static str {
    match k {
        AlertKind::GateForcedOpen => "强行开门",
        AlertKind::GateHeldOpen => "门长时间未关",
        AlertKind::GateDuress => "胁迫开门",
        AlertKind::GateTamper => "门禁防拆",
        AlertKind::GateBlacklist => "黑名单",
        AlertKind::GateDeniedBurst => "连续拒绝开门",
        AlertKind::GateOffline => "门禁离线",
        AlertKind::CameraOffline => "摄像机离线",
        AlertKind::RecordingFailed => "录像中断",
        AlertKind::PersonIntrusion => "区域入侵",
        AlertKind::PersonLoitering => "人员徘徊",
        AlertKind::CrowdGathering => "人员聚集",
    }
}

fn severity_zh(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "紧急",
        Severity::Major => "重要",
        Severity::Minor => "次要",
        Severity::Info => "提示",
    }
}

fn state_zh(s: AlertState) -> &'static str {
    match s {
        AlertState::Open => "未处理",
        AlertState::Acknowledged => "已确认",
        AlertState::Escalated => "已升级",
        AlertState::Resolved => "已解决",
    }
}

fn change_zh(c: AlertChange) -> &'static str {
    match c {
        AlertChange::Raised => "新告警",
        AlertChange::Repeated => "重复",
        AlertChange::Acknowledged => "已确认",
        AlertChange::Escalated => "升级",
        AlertChange::Resolved => "已解决",
        AlertChange::Noted => "备注",
    }
}

/// China Standard Time (UTC+8, no daylight saving) and UTC:
/// `2026-03-01 20:15:07 +08:00 (2026-03-01T12:15:07Z)`.
fn both_times(t: Timestamp) -> String {
    let local = t.to_zoned(TimeZone::fixed(offset(8)));
    format!(
        "{} ({})",
        local.strftime("%Y-%m-%d %H:%M:%S %:z"),
        t.round(jiff::Unit::Second).unwrap_or(t)
    )
}

/// The notification title: `[重要 major] 强行开门 gate.forced_open · xingfu`.
fn title(e: &OutboxEntry) -> String {
    let a = &e.alert;
    format!(
        "[{} {}] {} {} · {}",
        severity_zh(a.severity),
        a.severity,
        kind_zh(a.kind),
        a.kind,
        a.community
    )
}

/// `(label, value)` lines shared by both robots.
fn lines(e: &OutboxEntry) -> Vec<(&'static str, String)> {
    let a = &e.alert;
    let mut v = vec![
        (
            "变化 Change",
            format!("{} {}", change_zh(e.change), e.change),
        ),
        ("状态 State", format!("{} {}", state_zh(a.state), a.state)),
        (
            "级别 Severity",
            format!("{} {}", severity_zh(a.severity), a.severity),
        ),
        ("小区 Community", a.community.to_string()),
    ];
    if let Some(g) = &a.gate {
        v.push(("门禁 Gate", g.to_string()));
    }
    if let Some(c) = &a.camera {
        v.push(("摄像机 Camera", c.to_string()));
    }
    if let Some(z) = &a.zone {
        v.push(("区域 Zone", z.clone()));
    }
    v.push(("次数 Count", a.count.to_string()));
    v.push(("发生时间 Raised", both_times(a.raised_at)));
    if a.count > 1 {
        v.push(("最近 Last seen", both_times(a.last_seen_at)));
    }
    v.push(("告警编号 Alert", format!("{} (seq {})", a.id, e.seq)));
    v
}

fn dingtalk_text(e: &OutboxEntry) -> String {
    let a = &e.alert;
    let mut s = format!(
        "#### [{} {}] {} {}\n\n{}\n\n",
        severity_zh(a.severity),
        a.severity,
        kind_zh(a.kind),
        a.kind,
        a.title
    );
    for (label, value) in lines(e) {
        s.push_str(&format!("- **{label}**: {value}\n"));
    }
    s
}

fn wecom_text(e: &OutboxEntry) -> String {
    let a = &e.alert;
    // WeCom markdown knows three colours: info (green), comment (grey), warning (orange).
    let colour = match (a.state, a.severity) {
        (AlertState::Resolved, _) => "info",
        (_, Severity::Critical | Severity::Major) => "warning",
        _ => "comment",
    };
    let mut s = format!(
        "**<font color=\"{colour}\">[{} {}] {} {}</font>**\n{}\n",
        severity_zh(a.severity),
        a.severity,
        kind_zh(a.kind),
        a.kind,
        a.title
    );
    for (label, value) in lines(e) {
        s.push_str(&format!("> {label}: {value}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::tests::sample_entry;

    #[test]
    fn dingtalk_signature_matches_an_independent_computation() {
        // python3 -c 'import hmac,hashlib,base64; s="SECtest0123456789abcdef"; t=1700000000000;
        //   print(base64.b64encode(hmac.new(s.encode(), f"{t}\n{s}".encode(),
        //   hashlib.sha256).digest()).decode())'
        assert_eq!(
            dingtalk_sign("SECtest0123456789abcdef", 1_700_000_000_000),
            "/lfnxUUu80FwVTsIlv2F1cMGBb+PxEKAwYh/bsRxXcc="
        );
    }

    #[test]
    fn json_body_is_the_outbox_entry() {
        let e = sample_entry(7);
        let b = body(WebhookFormat::Json, &e).unwrap();
        let back: OutboxEntry = serde_json::from_slice(&b).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn robot_bodies_say_what_where_and_when_in_both_languages() {
        let e = sample_entry(7);
        let d: serde_json::Value =
            serde_json::from_slice(&body(WebhookFormat::Dingtalk, &e).unwrap()).unwrap();
        assert_eq!(d["msgtype"], "markdown");
        let title = d["markdown"]["title"].as_str().unwrap();
        assert_eq!(title, "[重要 major] 强行开门 gate.forced_open · xingfu");
        let text = d["markdown"]["text"].as_str().unwrap();
        let w: serde_json::Value =
            serde_json::from_slice(&body(WebhookFormat::Wecom, &e).unwrap()).unwrap();
        assert_eq!(w["msgtype"], "markdown");
        let content = w["markdown"]["content"].as_str().unwrap();
        for t in [text, content] {
            for want in [
                "强行开门 gate.forced_open",
                "新告警 raised",
                "未处理 open",
                "xingfu",
                "gate-1",
                "cam-1",
                // 2023-11-14T22:13:20Z is 06:13:20 the next day in Beijing.
                "2023-11-15 06:13:20 +08:00 (2023-11-14T22:13:20Z)",
                "seq 7",
            ] {
                assert!(t.contains(want), "{want:?} missing in {t}");
            }
        }
        assert!(content.contains("<font color=\"warning\">"), "{content}");
    }

    #[test]
    fn every_kind_has_its_own_chinese_name() {
        let mut names: Vec<&str> = AlertKind::ALL.iter().map(|k| kind_zh(*k)).collect();
        assert_eq!(kind_zh(AlertKind::RecordingFailed), "录像中断");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AlertKind::ALL.len());
    }

    #[test]
    fn rate_limit_codes_per_robot() {
        assert!(is_rate_limited(WebhookFormat::Dingtalk, 130101));
        assert!(!is_rate_limited(WebhookFormat::Dingtalk, 310000));
        assert!(is_rate_limited(WebhookFormat::Wecom, 45009));
        assert!(!is_rate_limited(WebhookFormat::Wecom, 93000));
    }
}
