//! Who may use the embedded broker and for what: the accounts of `[[mqtt.accounts]]`, the
//! hub's own account (MQTT out), and anonymous clients where `allow_anonymous` says so. Pure:
//! the front asks, this answers.
//!
//! | who | logs in with | reports for gates | publishes on | subscribes to | client ids |
//! |---|---|---|---|---|---|
//! | an account | its username and password | its `gates` (MQTT ones) | its `publish` filters, never `xueliang/...` | filters its `subscribe` filters cover | those it used first |
//! | the hub | [`HUB_USERNAME`], a password made at each start | any | anything | anything | `[mqtt] client_id` and every id that starts with it |
//! | anonymous (only `allow_anonymous = true`, no accounts) | no username | any MQTT gate | anything but `xueliang/...` | anything that cannot match `xueliang/...` (so not `#` or `+/...`) | any but the hub's |
//!
//! A client id belongs to the account that uses it: while it is connected, and while the
//! front remembers its persistent session (the sessions file records the owner). A session
//! written before owners were recorded (owner "") goes to the first account that uses its id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use xl_core::GateId;

use crate::config::{HUB_USERNAME, MqttConfig};
use crate::ingest::GateSet;
use crate::mqtt::{topic_filter_is_valid, topic_matches};

/// The first topic level of the hub's own topics (alerts, retained camera and hub status:
/// xl-notify's `topic_prefix`, `xueliang` unless `[mqtt_out]` says otherwise): only the
/// hub's account writes there.
pub(crate) const HUB_TOPIC_ROOT: &str = "xueliang";

/// CONNACK return codes of MQTT 3.1.1 (3.2.2.3).
pub(crate) const CONNACK_IDENTIFIER_REJECTED: u8 = 2;
pub(crate) const CONNACK_BAD_CREDENTIALS: u8 = 4;
pub(crate) const CONNACK_NOT_AUTHORIZED: u8 = 5;

/// What one logged-in client may do.
#[derive(Debug)]
pub(crate) struct Grant {
    /// Who it is: the username, "" when anonymous. Client ids and sessions belong to it.
    pub owner: String,
    /// The hub's own account: everything is allowed.
    pub hub: bool,
    /// The gates it may report for.
    pub gates: GateSet,
    subscribe: Vec<String>,
    publish: Vec<String>,
    /// Whether its `subscribe` filters may reach the hub's topics (alerts, status): an
    /// account's filters are the operator's explicit grant; anonymous clients never read them.
    reads_hub_topics: bool,
}

impl Grant {
    /// Whether it may subscribe to `filter`: one of its `subscribe` filters covers it.
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        // `$xueliang/...` is the front's own (refused PUBLISHes go there): nobody's.
        topic_filter_is_valid(filter)
            && !filter.starts_with("$xueliang")
            && (self.reads_hub_topics || !may_match_hub_topic(filter))
            && self.subscribe.iter().any(|f| filter_within(filter, f))
    }

    /// Whether it may publish on `topic`, a topic that is not a gate topic (those are
    /// decided per gate, by [`Grant::gates`]).
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        if self.hub {
            return true;
        }
        !is_hub_topic(topic) && self.publish.iter().any(|f| topic_matches(f, topic))
    }

    /// Whether it may report for any gate at all (else its payloads on gate topics are not
    /// even decoded).
    pub(crate) fn reports_for_gates(&self) -> bool {
        !matches!(&self.gates, GateSet::Only(s) if s.is_empty())
    }
}

/// Whether `topic` is one of the hub's own (`xueliang` or under `xueliang/`).
pub(crate) fn is_hub_topic(topic: &str) -> bool {
    topic
        .strip_prefix(HUB_TOPIC_ROOT)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `filter` may match one of the hub's topics: its first level is the hub's root or
/// a wildcard.
fn may_match_hub_topic(filter: &str) -> bool {
    matches!(filter.split('/').next(), Some("#" | "+" | HUB_TOPIC_ROOT))
}

/// The accounts of one embedded broker.
pub(crate) struct Access {
    /// Username to (password, grant).
    accounts: HashMap<String, (String, Arc<Grant>)>,
    anonymous: Option<Arc<Grant>>,
    /// Client ids that start with this are the hub's (`[mqtt] client_id`; MQTT out uses
    /// `{client_id}-out`).
    hub_client_prefix: String,
}

impl Access {
    pub(crate) fn new(cfg: &MqttConfig) -> Access {
        let everything = || vec!["#".to_owned()];
        let mut accounts = HashMap::new();
        accounts.insert(
            HUB_USERNAME.to_owned(),
            (
                cfg.hub_password.clone(),
                Arc::new(Grant {
                    owner: HUB_USERNAME.to_owned(),
                    hub: true,
                    gates: GateSet::Any,
                    subscribe: everything(),
                    publish: everything(),
                    reads_hub_topics: true,
                }),
            ),
        );
        for a in &cfg.accounts {
            let gates = if a.gates.iter().any(|g| g == "*") {
                GateSet::Any
            } else {
                GateSet::Only(
                    a.gates
                        .iter()
                        .filter_map(|g| GateId::new(g).ok())
                        .collect::<HashSet<_>>(),
                )
            };
            let grant = Grant {
                owner: a.username.clone(),
                hub: false,
                gates,
                subscribe: a.subscribe.clone(),
                publish: a.publish.clone(),
                reads_hub_topics: true,
            };
            accounts.insert(a.username.clone(), (a.password.clone(), Arc::new(grant)));
        }
        let anonymous = (cfg.allow_anonymous && cfg.accounts.is_empty()).then(|| {
            Arc::new(Grant {
                owner: String::new(),
                hub: false,
                gates: GateSet::Any,
                subscribe: everything(),
                publish: everything(),
                reads_hub_topics: false,
            })
        });
        Access {
            accounts,
            anonymous,
            hub_client_prefix: cfg.client_id.clone(),
        }
    }

    /// Checks a CONNECT's credentials; `Err` is the CONNACK return code to refuse it with.
    pub(crate) fn login(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Arc<Grant>, u8> {
        let Some(username) = username else {
            return self.anonymous.clone().ok_or(CONNACK_NOT_AUTHORIZED);
        };
        let presented = password.unwrap_or_default();
        match self.accounts.get(username) {
            Some((password, grant)) if bool::from(password.as_bytes().ct_eq(presented)) => {
                Ok(Arc::clone(grant))
            }
            Some(_) => Err(CONNACK_BAD_CREDENTIALS),
            None => {
                // As long as a wrong password, so the answer's timing names no account.
                let _ = self.hub_client_prefix.as_bytes().ct_eq(presented);
                Err(CONNACK_BAD_CREDENTIALS)
            }
        }
    }

    /// Whether `client_id` is one of the hub's, which no other account may take.
    pub(crate) fn is_hub_client_id(&self, client_id: &str) -> bool {
        !client_id.is_empty() && client_id.starts_with(&self.hub_client_prefix)
    }
}

/// Whether every topic that `inner` matches is matched by `outer` too (both valid topic
/// filters): `a/+/c` is within `a/#` and `+/+/c`, not within `a/b/c`. Topics that start
/// with `$` are matched by no wildcard in the first level (MQTT 3.1.1, 4.7.2), so
/// `$SYS/#` is not within `#`.
pub(crate) fn filter_within(inner: &str, outer: &str) -> bool {
    let mut i = inner.split('/');
    let mut o = outer.split('/');
    let mut first = true;
    loop {
        let (a, b) = (i.next(), o.next());
        if first && a.is_some_and(|a| a.starts_with('$')) && matches!(b, Some("+" | "#")) {
            return false;
        }
        first = false;
        match (a, b) {
            // `#` matches the parent level too: `a/#` covers `a`.
            (_, Some("#")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("#"), Some(_)) => return false,
            (Some("+"), Some("+")) => {}
            (Some("+"), Some(_)) => return false,
            (Some(_), Some("+")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MqttAccount;

    #[test]
    fn filters_within_filters() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/+", true),
            ("a/b", "a/#", true),
            ("a", "a/#", true),
            ("a/b/c", "a/#", true),
            ("a/+", "a/#", true),
            ("a/#", "a/#", true),
            ("a/+/c", "+/+/c", true),
            ("a/+/c", "a/b/c", false),
            ("a/#", "a/+", false),
            ("a/#", "a/b/#", false),
            ("a/+", "a/b", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("a/b/c", "a/+", false),
            ("#", "#", true),
            ("#", "+/#", false),
            ("+", "#", true),
            ("b/#", "a/#", false),
            ("xueliang/alerts/xingfu/+", "xueliang/alerts/xingfu/#", true),
            ("xueliang/alerts/#", "xueliang/alerts/xingfu/#", false),
            ("xueliang/#", "xueliang/alerts/xingfu/#", false),
            ("#", "xueliang/alerts/xingfu/#", false),
            ("xueliang/alerts/hexie/x", "xueliang/alerts/xingfu/#", false),
            ("$SYS/x", "#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS/x", "$SYS/#", true),
            ("/a", "+/a", true),
            ("a/", "a/+", true),
        ];
        for (inner, outer, want) in cases {
            assert_eq!(filter_within(inner, outer), want, "{inner} within {outer}");
        }
    }

    fn cfg(accounts: Vec<MqttAccount>, allow_anonymous: bool) -> MqttConfig {
        let mut c: MqttConfig = toml::from_str("embedded = true\nclient_id = \"hub-x\"").unwrap();
        c.accounts = accounts;
        c.allow_anonymous = allow_anonymous;
        c
    }

    fn account(name: &str, gates: &[&str], subscribe: &[&str], publish: &[&str]) -> MqttAccount {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        MqttAccount {
            username: name.into(),
            password: format!("{name}-password-long"),
            gates: v(gates),
            subscribe: v(subscribe),
            publish: v(publish),
        }
    }

    #[test]
    fn logins_and_what_each_may_do() {
        let c = cfg(
            vec![
                account("gate-b1", &["b1-door"], &[], &[]),
                account("bridge", &["*"], &["cmd/#"], &["bridge/status", "#"]),
                account("property", &[], &["xueliang/alerts/xingfu/#"], &[]),
            ],
            true,
        );
        let a = Access::new(&c);
        // anonymous is refused when there are accounts, even with allow_anonymous
        assert_eq!(a.login(None, None).err(), Some(CONNACK_NOT_AUTHORIZED));
        assert_eq!(
            a.login(Some("gate-b1"), Some(b"wrong")).err(),
            Some(CONNACK_BAD_CREDENTIALS)
        );
        assert_eq!(
            a.login(Some("nobody"), Some(b"gate-b1-password-long"))
                .err(),
            Some(CONNACK_BAD_CREDENTIALS)
        );
        assert_eq!(
            a.login(Some("gate-b1"), None).err(),
            Some(CONNACK_BAD_CREDENTIALS)
        );
        let gate = a
            .login(Some("gate-b1"), Some(b"gate-b1-password-long"))
            .unwrap();
        assert_eq!(gate.owner, "gate-b1");
        assert!(gate.reports_for_gates());
        assert!(!gate.may_subscribe("#"));
        assert!(!gate.may_publish("anything"));
        let bridge = a
            .login(Some("bridge"), Some(b"bridge-password-long"))
            .unwrap();
        assert_eq!(bridge.gates, GateSet::Any);
        assert!(bridge.may_publish("bridge/status"));
        assert!(bridge.may_publish("other/topic"));
        // never the hub's topics, whatever `publish` says
        assert!(!bridge.may_publish("xueliang/status"));
        assert!(!bridge.may_publish("xueliang"));
        assert!(bridge.may_publish("xueliangx/status"));
        assert!(bridge.may_subscribe("cmd/+/open"));
        assert!(!bridge.may_subscribe("#"));
        let prop = a
            .login(Some("property"), Some(b"property-password-long"))
            .unwrap();
        assert!(!prop.reports_for_gates());
        assert!(prop.may_subscribe("xueliang/alerts/xingfu/#"));
        assert!(prop.may_subscribe("xueliang/alerts/xingfu/door.forced"));
        assert!(!prop.may_subscribe("xueliang/alerts/#"));
        assert!(!prop.may_subscribe("xueliang/alerts/+/door.forced"));
        assert!(!prop.may_subscribe("a/#/b"));
        // the hub's own account
        let hub = a
            .login(Some(HUB_USERNAME), Some(c.hub_password.as_bytes()))
            .unwrap();
        assert!(hub.hub && hub.may_publish("xueliang/status") && hub.may_subscribe("#"));
        assert!(a.login(Some(HUB_USERNAME), Some(b"guess")).is_err());
        assert!(a.is_hub_client_id("hub-x") && a.is_hub_client_id("hub-x-out"));
        assert!(!a.is_hub_client_id("gate-hub-x") && !a.is_hub_client_id(""));
    }

    #[test]
    fn anonymous_only_when_allowed_and_without_accounts() {
        let a = Access::new(&cfg(vec![], false));
        assert_eq!(a.login(None, None).err(), Some(CONNACK_NOT_AUTHORIZED));
        let a = Access::new(&cfg(vec![], true));
        let anon = a.login(None, None).unwrap();
        assert_eq!((anon.owner.as_str(), anon.hub), ("", false));
        assert!(anon.may_subscribe("zigbee2mqtt/#") && anon.may_publish("a/b"));
        assert!(!anon.may_publish("xueliang/cameras/c1/status"));
        // nor read alerts or status: no filter that could match them
        for f in [
            "#",
            "+/alerts/#",
            "xueliang/#",
            "xueliang/alerts/xingfu/+",
            "xueliang",
        ] {
            assert!(!anon.may_subscribe(f), "{f}");
        }
    }
}
