//! `[[webhooks]]`: where alerts are POSTed, in which format, and which alerts.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use xl_core::alert::AlertChange;
use xl_core::{AlertKind, CommunityId, OutboxEntry, Severity};

use crate::NotifyError;
use crate::redact::redact_url;

/// One webhook (`[[webhooks]]` in the hub's config). The URL and the secret are never
/// logged nor shown by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name: letters, digits, `_`, `-`, `.`. Its cursor is stored as `webhook:<name>`,
    /// so renaming a webhook makes it start again from the beginning of the outbox.
    pub name: String,
    /// `http://` or `https://` URL to POST to. It usually carries a token (DingTalk
    /// `access_token=`, WeCom `key=`): it is treated as a secret.
    pub url: String,
    /// Body format: `json` (the outbox entry as is), `dingtalk` or `wecom` (group robot
    /// markdown messages). Default `json`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// DingTalk only: the robot's "加签" signing secret (`SEC...`). When set, each request
    /// carries `timestamp` and `sign`. Default none.
    #[serde(default)]
    pub secret: Option<String>,
    /// Alert kinds to send (`gate.forced_open`, ...). Default empty: all kinds.
    #[serde(default)]
    pub kinds: Vec<AlertKind>,
    /// Least urgent severity sent (`critical`, `major`, `minor`, `info`). Default `info`:
    /// all.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Communities whose alerts are sent. Default empty: all.
    #[serde(default)]
    pub communities: Vec<CommunityId>,
    /// Which changes are sent (`raised`, `repeated`, `acknowledged`, `escalated`,
    /// `resolved`, `noted`). Default `["raised", "escalated", "resolved"]`.
    #[serde(default = "default_changes")]
    pub changes: Vec<AlertChange>,
    /// Time limit of one request, connect included. Default 5.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// First delay before retrying a failed delivery; doubles up to `backoff_max_secs`.
    /// Default 1.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Longest delay between two attempts. Default 300.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
    /// How often the outbox is read when nothing woke the webhook (a safety net). Default 5.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: f64,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_changes() -> Vec<AlertChange> {
    vec![
        AlertChange::Raised,
        AlertChange::Escalated,
        AlertChange::Resolved,
    ]
}
fn default_timeout() -> u64 {
    5
}
fn default_backoff_initial() -> f64 {
    1.0
}
fn default_backoff_max() -> f64 {
    300.0
}
fn default_poll_interval() -> f64 {
    5.0
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The [`OutboxEntry`] as JSON; any 2xx answer is success.
    #[default]
    Json,
    /// DingTalk group robot: `{"msgtype":"markdown",...}`; success is `{"errcode":0}`.
    Dingtalk,
    /// WeCom (企业微信) group robot: `{"msgtype":"markdown",...}`; success is
    /// `{"errcode":0}`.
    Wecom,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("kinds", &self.kinds)
            .field("min_severity", &self.min_severity)
            .field("communities", &self.communities)
            .field("changes", &self.changes)
            .field("timeout_secs", &self.timeout_secs)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Whether `entry` is to be sent to this webhook.
    pub fn wants(&self, entry: &OutboxEntry) -> bool {
        let a = &entry.alert;
        (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && a.severity <= self.min_severity
            && (self.communities.is_empty() || self.communities.contains(&a.community))
            && self.changes.contains(&entry.change)
    }

    /// The parsed URL, or an error naming `key` and the fix.
    pub(crate) fn parsed_url(&self, key: &str) -> Result<url::Url, NotifyError> {
        let err = |message: String| NotifyError::Config {
            key: format!("{key}.url"),
            message,
        };
        let u = url::Url::parse(&self.url)
            .map_err(|e| err(format!("{} is not a URL: {e}", redact_url(&self.url))))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(err(format!(
                "must start with http:// or https:// (got {}://)",
                u.scheme()
            )));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(err("has no host".into()));
        }
        Ok(u)
    }

    /// Checks one webhook; `key` is its key path (`webhooks[0]`).
    fn validate(&self, key: &str) -> Result<(), NotifyError> {
        let err = |field: &str, message: &str| NotifyError::Config {
            key: format!("{key}.{field}"),
            message: message.to_owned(),
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok {
            return Err(err(
                "name",
                &format!(
                    "{:?}: use 1 to 64 letters, digits, '_', '-' or '.'",
                    self.name
                ),
            ));
        }
        self.parsed_url(key)?;
        match (&self.secret, self.format) {
            (Some(s), WebhookFormat::Dingtalk) if s.is_empty() => {
                return Err(err(
                    "secret",
                    "is empty: remove it or paste the SEC... secret",
                ));
            }
            (Some(_), WebhookFormat::Dingtalk) | (None, _) => {}
            (Some(_), _) => {
                return Err(err(
                    "secret",
                    "only DingTalk robots sign requests: remove it or set format = \"dingtalk\"",
                ));
            }
        }
        if self.changes.is_empty() {
            return Err(err(
                "changes",
                "is empty, so nothing would be sent: remove it for the default (raised, escalated, resolved)",
            ));
        }
        if self.timeout_secs == 0 {
            return Err(err("timeout_secs", "must be at least 1"));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.backoff_initial_secs) {
            return Err(err("backoff_initial_secs", "must be more than 0"));
        }
        if !positive(self.backoff_max_secs) || self.backoff_max_secs < self.backoff_initial_secs {
            return Err(err(
                "backoff_max_secs",
                "must be at least backoff_initial_secs",
            ));
        }
        if !positive(self.poll_interval_secs) {
            return Err(err("poll_interval_secs", "must be more than 0"));
        }
        Ok(())
    }
}

/// Checks every webhook and that their names are unique.
pub fn validate_webhooks(webhooks: &[WebhookConfig]) -> Result<(), NotifyError> {
    let mut names = HashSet::new();
    for (i, w) in webhooks.iter().enumerate() {
        let key = format!("webhooks[{i}]");
        w.validate(&key)?;
        if !names.insert(w.name.as_str()) {
            return Err(NotifyError::Config {
                key: format!("{key}.name"),
                message: format!(
                    "{:?} is used twice: each webhook needs its own name (its cursor)",
                    w.name
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        webhooks: Vec<WebhookConfig>,
    }

    fn parse(text: &str) -> Result<Vec<WebhookConfig>, String> {
        toml::from_str::<File>(text)
            .map(|f| f.webhooks)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_strictness() {
        let w = parse("[[webhooks]]\nname = \"a\"\nurl = \"https://h/x\"\n").unwrap();
        let w = &w[0];
        assert_eq!(w.format, WebhookFormat::Json);
        assert_eq!(w.min_severity, Severity::Info);
        assert_eq!(w.changes, default_changes());
        assert_eq!(w.timeout_secs, 5);
        assert_eq!(w.backoff_initial_secs, 1.0);
        assert_eq!(w.backoff_max_secs, 300.0);
        let e = parse("[[webhooks]]\nname = \"a\"\nurl = \"https://h/x\"\nsekret = \"x\"\n")
            .unwrap_err();
        assert!(e.contains("sekret"), "{e}");
        let e = parse("[[webhooks]]\nname = \"a\"\nurl = \"https://h/x\"\nformat = \"slack\"\n")
            .unwrap_err();
        assert!(e.contains("slack"), "{e}");
    }

    #[test]
    fn the_reference_example_parses() {
        let w = parse(
            r#"
            [[webhooks]]
            name = "duty-dingtalk"
            url = "https://oapi.dingtalk.com/robot/send?access_token=tok123"
            format = "dingtalk"
            secret = "SECabc"
            kinds = ["gate.forced_open"]
            min_severity = "major"
            communities = ["xingfu"]
            changes = ["raised", "escalated"]
            timeout_secs = 3
            "#,
        )
        .unwrap();
        validate_webhooks(&w).unwrap();
        assert_eq!(w[0].format, WebhookFormat::Dingtalk);
        assert_eq!(w[0].kinds, [AlertKind::GateForcedOpen]);
        assert_eq!(w[0].changes, [AlertChange::Raised, AlertChange::Escalated]);
    }

    #[test]
    fn validation_names_the_key_and_never_shows_the_token() {
        let base = "url = \"https://oapi.dingtalk.com/robot/send?access_token=tok123\"";
        let cases = [
            (format!("name = \"bad name\"\n{base}"), "webhooks[0].name"),
            (
                "name = \"a\"\nurl = \"ftp://h/x?key=tok123\"".to_owned(),
                "webhooks[0].url",
            ),
            (
                format!("name = \"a\"\n{base}\nsecret = \"SECtok123\""),
                "webhooks[0].secret",
            ),
            (
                format!("name = \"a\"\n{base}\nchanges = []"),
                "webhooks[0].changes",
            ),
            (
                format!(
                    "name = \"a\"\n{base}\nbackoff_initial_secs = 10.0\nbackoff_max_secs = 1.0"
                ),
                "webhooks[0].backoff_max_secs",
            ),
        ];
        for (hook, key) in cases {
            let ws = parse(&format!("[[webhooks]]\n{hook}\n")).unwrap();
            let e = validate_webhooks(&ws).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
            assert!(!e.contains("tok123"), "{e}");
        }
        let two =
            format!("[[webhooks]]\nname = \"a\"\n{base}\n[[webhooks]]\nname = \"a\"\n{base}\n");
        let e = validate_webhooks(&parse(&two).unwrap()).unwrap_err();
        assert!(e.to_string().contains("webhooks[1].name"), "{e}");
        let ok = format!(
            "[[webhooks]]\nname = \"a\"\n{base}\nformat = \"dingtalk\"\nsecret = \"SECtok123\"\n"
        );
        let ws = parse(&ok).unwrap();
        validate_webhooks(&ws).unwrap();
        let dbg = format!("{:?}", ws[0]);
        assert!(!dbg.contains("tok123"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }
}
