//! Rules configuration: the built-in catalog ([`default_catalog`]) and the `[[rules]]` tables of
//! the hub's TOML ([`RulesConfig`]) that override it field by field.
//!
//! ```toml
//! [[rules]]
//! kind = "gate.forced_open"
//! cooldown_secs = 120          # every other field keeps the catalog's value
//!
//! [[rules]]
//! kind = "person.intrusion"
//! zones = ["bike-shed", "roof"]
//! communities = ["maple-garden"]
//! ```
//!
//! A field that does not apply to the rule's kind (`count` on anything but
//! `gate.denied_burst`, `zones` on a gate kind, `debounce_secs` on anything but the health
//! kinds, `cooldown_secs` on the health kinds, which raise one alert per outage) is an error
//! rather than silently ignored: it is almost always a table under the wrong kind. The health
//! kinds are `gate.offline`, `camera.offline` and `recording.failed`.

use serde::{Deserialize, Serialize};
use xl_core::{AlertKind, CommunityId, Role, Severity};

use crate::error::RulesError;

/// The longest duration any `*_secs` field accepts: 366 days.
pub const MAX_SECS: u64 = 366 * 24 * 3600;

/// The longest `clip_pre_secs` and `clip_post_secs` accept: 5 minutes each.
pub const MAX_CLIP_SECS: u64 = 300;

/// One `[[rules]]` table: the kind it configures and the fields it overrides. Every absent
/// field keeps the catalog's value for the kind (see [`default_catalog`] and the crate docs'
/// table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert kind this table configures, e.g. `"gate.forced_open"`. Required; each kind at
    /// most once.
    pub kind: AlertKind,
    /// Whether the rule raises alerts at all. Default: `true` for every kind.
    pub enabled: Option<bool>,
    /// `"critical"`, `"major"`, `"minor"` or `"info"`. Default: the kind's catalog severity.
    pub severity: Option<Severity>,
    /// Repeats from the same source within this many seconds of the open alert's last
    /// occurrence update it (count, last seen) instead of raising a new alert; 0 raises every
    /// occurrence. Not for the health kinds. Default: 300 (`crowd.gathering` 600,
    /// `person.intrusion` 120).
    pub cooldown_secs: Option<u64>,
    /// An alert still open (not acknowledged) this many seconds after it was raised escalates
    /// to the police desk; 0 never escalates. Default: per kind, 60 to 600, and 0 for the
    /// health kinds and `person.loitering`.
    pub ack_deadline_secs: Option<u64>,
    /// Who receives the alert: `"admin"`, `"duty"`, `"police"`, `"property"`. Must not be empty
    /// while the rule is enabled. Default: `["duty"]`, plus `"police"` for the critical kinds
    /// and `"property"` for forced open, held open, tamper and gate offline.
    pub roles: Option<Vec<Role>>,
    /// Only events of these communities; empty means every community. Default: `[]`.
    pub communities: Option<Vec<CommunityId>>,
    /// `person.*` and `crowd.*` only: only these zone ids; empty means any zone. Default: `[]`.
    pub zones: Option<Vec<String>>,
    /// `gate.denied_burst` only: this many denials at one gate ... Default: 5.
    pub count: Option<u32>,
    /// `gate.denied_burst` only: ... within this many seconds (a sliding window per gate).
    /// Default: 60.
    pub window_secs: Option<u64>,
    /// The health kinds only (`gate.offline`, `camera.offline`, `recording.failed`): the
    /// device must stay offline (the camera's recording stopped) this many seconds before the
    /// alert is raised; 0 raises at once. Default: 30 for gates (their health input already
    /// follows missed heartbeats), 60 for cameras, 0 for recording.
    pub debounce_secs: Option<u64>,
    /// An alert with a camera (or on a gate with a camera) keeps that camera's recording from
    /// this many seconds before it was raised as its clip; at most 300. Default: 10.
    pub clip_pre_secs: Option<u64>,
    /// ... to this many seconds after it was raised; at most 300. Default: 20.
    pub clip_post_secs: Option<u64>,
}

impl RuleConfig {
    /// A table for `kind` that overrides nothing.
    pub fn new(kind: AlertKind) -> RuleConfig {
        RuleConfig {
            kind,
            enabled: None,
            severity: None,
            cooldown_secs: None,
            ack_deadline_secs: None,
            roles: None,
            communities: None,
            zones: None,
            count: None,
            window_secs: None,
            debounce_secs: None,
            clip_pre_secs: None,
            clip_post_secs: None,
        }
    }
}

/// The `[[rules]]` tables of the hub's config, in file order. Serialized as the bare list, so
/// the hub's config struct holds `#[serde(default)] rules: RulesConfig`.
/// `RulesConfig::default()` (no tables) runs the built-in catalog unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RulesConfig {
    pub rules: Vec<RuleConfig>,
}

impl From<Vec<RuleConfig>> for RulesConfig {
    fn from(rules: Vec<RuleConfig>) -> RulesConfig {
        RulesConfig { rules }
    }
}

/// A rule as the engine runs it: the catalog's values for its kind with the config's overrides
/// applied. Fields that do not apply to the kind are 0 or empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub kind: AlertKind,
    pub enabled: bool,
    pub severity: Severity,
    /// 0 for the health kinds (one alert per outage) and when every occurrence raises.
    pub cooldown_secs: u64,
    /// 0: never escalates.
    pub ack_deadline_secs: u64,
    pub roles: Vec<Role>,
    /// Empty: every community.
    pub communities: Vec<CommunityId>,
    /// Empty: any zone (and always empty for kinds that have no zone).
    pub zones: Vec<String>,
    /// `gate.denied_burst` only.
    pub count: u32,
    /// `gate.denied_burst` only.
    pub window_secs: u64,
    /// The health kinds only.
    pub debounce_secs: u64,
    /// The alert's clip starts this many seconds before it was raised.
    pub clip_pre_secs: u64,
    /// The alert's clip ends this many seconds after it was raised.
    pub clip_post_secs: u64,
}

impl Rule {
    /// The built-in rule for `kind`.
    pub fn default_for(kind: AlertKind) -> Rule {
        use AlertKind as K;
        use Role::{Duty, Police, Property};
        use Severity::{Critical, Major, Minor};
        // (severity, cooldown_secs, ack_deadline_secs, roles)
        let (severity, cooldown_secs, ack_deadline_secs, roles) = match kind {
            K::GateForcedOpen => (Critical, 300, 120, vec![Duty, Police, Property]),
            K::GateDuress => (Critical, 300, 60, vec![Duty, Police]),
            K::GateBlacklist => (Critical, 300, 120, vec![Duty, Police]),
            K::GateTamper => (Major, 300, 300, vec![Duty, Property]),
            K::GateHeldOpen => (Major, 300, 600, vec![Duty, Property]),
            K::GateDeniedBurst => (Major, 300, 600, vec![Duty]),
            K::GateOffline => (Major, 0, 0, vec![Duty, Property]),
            K::CameraOffline => (Minor, 0, 0, vec![Duty]),
            K::RecordingFailed => (Major, 0, 0, vec![Duty]),
            K::PersonIntrusion => (Major, 120, 300, vec![Duty]),
            K::PersonLoitering => (Minor, 300, 0, vec![Duty]),
            K::CrowdGathering => (Major, 600, 600, vec![Duty]),
        };
        let (count, window_secs) = if kind == K::GateDeniedBurst {
            (5, 60)
        } else {
            (0, 0)
        };
        let debounce_secs = match kind {
            K::GateOffline => 30,
            K::CameraOffline => 60,
            _ => 0,
        };
        Rule {
            kind,
            enabled: true,
            severity,
            cooldown_secs,
            ack_deadline_secs,
            roles,
            communities: Vec::new(),
            zones: Vec::new(),
            count,
            window_secs,
            debounce_secs,
            clip_pre_secs: 10,
            clip_post_secs: 20,
        }
    }

    /// Whether the rule is on for events of `community`.
    pub fn applies_to(&self, community: &CommunityId) -> bool {
        self.enabled && (self.communities.is_empty() || self.communities.contains(community))
    }

    /// Whether the rule is on for `zone` (always true for rules without a zone filter).
    pub fn watches_zone(&self, zone: &str) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|z| z == zone)
    }
}

/// The built-in catalog: one rule per [`AlertKind`], in [`AlertKind::ALL`] order.
pub fn default_catalog() -> Vec<Rule> {
    AlertKind::ALL
        .iter()
        .map(|&k| Rule::default_for(k))
        .collect()
}

fn has_zone(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::PersonIntrusion | AlertKind::PersonLoitering | AlertKind::CrowdGathering
    )
}

impl RulesConfig {
    /// The rules the engine runs: the catalog with every table's overrides applied, one rule
    /// per kind in [`AlertKind::ALL`] order. Refuses a kind configured twice and fields that
    /// cannot work or do not apply to the kind; the error names the table.
    pub fn resolve(&self) -> Result<Vec<Rule>, RulesError> {
        let mut rules = default_catalog();
        let mut seen: Vec<(AlertKind, usize)> = Vec::new();
        for (i, table) in self.rules.iter().enumerate() {
            let entry = i + 1;
            if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == table.kind) {
                return Err(RulesError::DuplicateKind {
                    kind: table.kind,
                    first,
                    second: entry,
                });
            }
            seen.push((table.kind, entry));
            let rule = rules
                .iter_mut()
                .find(|r| r.kind == table.kind)
                .expect("the catalog has every kind");
            apply(rule, table, entry)?;
        }
        Ok(rules)
    }
}

/// Applies `table`'s overrides to `rule` and checks the result.
fn apply(rule: &mut Rule, table: &RuleConfig, entry: usize) -> Result<(), RulesError> {
    let kind = rule.kind;
    let bad = |field: &'static str, reason: String| RulesError::InvalidField {
        entry,
        kind,
        field,
        reason,
    };
    let only_for = |field: &'static str, what: &str| {
        bad(
            field,
            format!("applies only to {what}; remove it from this table"),
        )
    };
    let secs = |field: &'static str, value: u64| {
        if value > MAX_SECS {
            Err(bad(
                field,
                format!("is {value}, more than the maximum of {MAX_SECS} (366 days)"),
            ))
        } else {
            Ok(value)
        }
    };

    if let Some(enabled) = table.enabled {
        rule.enabled = enabled;
    }
    if let Some(severity) = table.severity {
        rule.severity = severity;
    }
    if let Some(cooldown) = table.cooldown_secs {
        if kind.is_health() {
            return Err(bad(
                "cooldown_secs",
                "does not apply to health kinds (they raise one alert per outage); remove it"
                    .to_owned(),
            ));
        }
        rule.cooldown_secs = secs("cooldown_secs", cooldown)?;
    }
    if let Some(deadline) = table.ack_deadline_secs {
        rule.ack_deadline_secs = secs("ack_deadline_secs", deadline)?;
    }
    if let Some(roles) = &table.roles {
        rule.roles.clear();
        for &role in roles {
            if !rule.roles.contains(&role) {
                rule.roles.push(role);
            }
        }
    }
    if let Some(communities) = &table.communities {
        rule.communities = communities.clone();
    }
    if let Some(zones) = &table.zones {
        if !has_zone(kind) {
            return Err(only_for(
                "zones",
                "person.intrusion, person.loitering and crowd.gathering",
            ));
        }
        if let Some(z) = zones.iter().find(|z| !is_zone_id(z)) {
            return Err(bad(
                "zones",
                format!(
                    "has {z:?}, which is not a zone id (1 to 64 of letters, digits, '_', '-', '.')"
                ),
            ));
        }
        rule.zones = zones.clone();
    }
    if let Some(count) = table.count {
        if kind != AlertKind::GateDeniedBurst {
            return Err(only_for("count", "gate.denied_burst"));
        }
        if count == 0 {
            return Err(bad(
                "count",
                "must be at least 1 (denials that raise the alert)".to_owned(),
            ));
        }
        rule.count = count;
    }
    if let Some(window) = table.window_secs {
        if kind != AlertKind::GateDeniedBurst {
            return Err(only_for("window_secs", "gate.denied_burst"));
        }
        if window == 0 {
            return Err(bad(
                "window_secs",
                "must be at least 1 (the window denials are counted in)".to_owned(),
            ));
        }
        rule.window_secs = secs("window_secs", window)?;
    }
    if let Some(debounce) = table.debounce_secs {
        if !kind.is_health() {
            return Err(only_for(
                "debounce_secs",
                "gate.offline, camera.offline and recording.failed",
            ));
        }
        rule.debounce_secs = secs("debounce_secs", debounce)?;
    }
    let clip_secs = |field: &'static str, value: u64| {
        if value > MAX_CLIP_SECS {
            Err(bad(
                field,
                format!("is {value}, more than the maximum of {MAX_CLIP_SECS} (5 minutes)"),
            ))
        } else {
            Ok(value)
        }
    };
    if let Some(pre) = table.clip_pre_secs {
        rule.clip_pre_secs = clip_secs("clip_pre_secs", pre)?;
    }
    if let Some(post) = table.clip_post_secs {
        rule.clip_post_secs = clip_secs("clip_post_secs", post)?;
    }
    if rule.enabled && rule.roles.is_empty() {
        return Err(bad(
            "roles",
            "is empty: nobody would receive these alerts; list a role or set enabled = false"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The id rule xl-vision applies to zone ids (and xl-core to camera and gate ids).
fn is_zone_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the hub embeds the tables: `[[rules]]` at the top level of its strict config.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HubFile {
        #[serde(default)]
        rules: RulesConfig,
    }

    fn parse(text: &str) -> Result<RulesConfig, toml::de::Error> {
        toml::from_str::<HubFile>(text).map(|f| f.rules)
    }

    fn rule(rules: &[Rule], kind: AlertKind) -> &Rule {
        rules.iter().find(|r| r.kind == kind).unwrap()
    }

    #[test]
    fn no_tables_run_the_catalog() {
        let config = parse("").unwrap();
        assert_eq!(config, RulesConfig::default());
        assert_eq!(config.resolve().unwrap(), default_catalog());
    }

    #[test]
    fn catalog_covers_every_kind_with_sensible_routes() {
        let catalog = default_catalog();
        let kinds: Vec<AlertKind> = catalog.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, AlertKind::ALL);
        for r in &catalog {
            assert!(r.enabled, "{}", r.kind);
            assert!(r.roles.contains(&Role::Duty), "{}", r.kind);
            // Police get the critical kinds (and the rest only by escalation).
            assert_eq!(
                r.roles.contains(&Role::Police),
                r.severity == Severity::Critical,
                "{}",
                r.kind
            );
            // Property managers get gate kinds only.
            if r.roles.contains(&Role::Property) {
                assert!(r.kind.as_str().starts_with("gate."), "{}", r.kind);
            }
            assert_eq!(r.count > 0, r.kind == AlertKind::GateDeniedBurst);
            // Only health kinds debounce (a recording failure is raised at once).
            assert!(r.debounce_secs == 0 || r.kind.is_health(), "{}", r.kind);
            assert_eq!(r.cooldown_secs == 0, r.kind.is_health());
            assert_eq!((r.clip_pre_secs, r.clip_post_secs), (10, 20), "{}", r.kind);
        }
        // A recording failure is raised at once, like an undebounced camera.offline.
        let recording = rule(&catalog, AlertKind::RecordingFailed);
        let camera = rule(&catalog, AlertKind::CameraOffline);
        assert_eq!(recording.severity, Severity::Major);
        assert_eq!(recording.debounce_secs, 0);
        assert_eq!(
            (recording.cooldown_secs, recording.ack_deadline_secs),
            (0, 0)
        );
        assert_eq!(recording.roles, camera.roles);
        for k in [
            AlertKind::GateForcedOpen,
            AlertKind::GateDuress,
            AlertKind::GateBlacklist,
        ] {
            assert_eq!(rule(&catalog, k).severity, Severity::Critical);
        }
        for k in [
            AlertKind::GateTamper,
            AlertKind::GateHeldOpen,
            AlertKind::GateDeniedBurst,
            AlertKind::PersonIntrusion,
        ] {
            assert_eq!(rule(&catalog, k).severity, Severity::Major);
        }
    }

    #[test]
    fn a_table_overrides_only_the_fields_it_names() {
        let config = parse(
            r#"
            [[rules]]
            kind = "gate.forced_open"
            cooldown_secs = 60
            roles = ["duty", "duty", "admin"]

            [[rules]]
            kind = "gate.denied_burst"
            count = 3

            [[rules]]
            kind = "person.intrusion"
            enabled = false
            zones = ["bike-shed"]
            communities = ["maple-garden"]

            [[rules]]
            kind = "camera.offline"
            severity = "major"
            debounce_secs = 0
            ack_deadline_secs = 900
            "#,
        )
        .unwrap();
        let rules = config.resolve().unwrap();

        let forced = rule(&rules, AlertKind::GateForcedOpen);
        let catalog = Rule::default_for(AlertKind::GateForcedOpen);
        assert_eq!(forced.cooldown_secs, 60);
        assert_eq!(forced.roles, [Role::Duty, Role::Admin]);
        assert_eq!(forced.severity, catalog.severity);
        assert_eq!(forced.ack_deadline_secs, catalog.ack_deadline_secs);

        let burst = rule(&rules, AlertKind::GateDeniedBurst);
        assert_eq!((burst.count, burst.window_secs), (3, 60));

        let intrusion = rule(&rules, AlertKind::PersonIntrusion);
        assert!(!intrusion.enabled);
        assert_eq!(intrusion.zones, ["bike-shed"]);
        assert_eq!(intrusion.communities[0].as_str(), "maple-garden");
        assert_eq!(intrusion.cooldown_secs, 120);

        let camera = rule(&rules, AlertKind::CameraOffline);
        assert_eq!(camera.severity, Severity::Major);
        assert_eq!(camera.debounce_secs, 0);
        assert_eq!(camera.ack_deadline_secs, 900);

        // Untouched kinds are the catalog's.
        assert_eq!(
            rule(&rules, AlertKind::GateTamper),
            &Rule::default_for(AlertKind::GateTamper)
        );
    }

    #[test]
    fn recording_failed_takes_a_debounce_but_no_cooldown() {
        let config = parse(
            r#"
            [[rules]]
            kind = "recording.failed"
            debounce_secs = 30
            severity = "critical"
            "#,
        )
        .unwrap();
        let rules = config.resolve().unwrap();
        let recording = rule(&rules, AlertKind::RecordingFailed);
        assert_eq!(recording.debounce_secs, 30);
        assert_eq!(recording.severity, Severity::Critical);

        let config = parse("[[rules]]\nkind = \"recording.failed\"\ncooldown_secs = 60").unwrap();
        let err = config.resolve().unwrap_err().to_string();
        assert!(err.contains("cooldown_secs does not apply"), "{err}");
    }

    #[test]
    fn clip_windows_default_override_and_stop_at_five_minutes() {
        let config = parse(
            r#"
            [[rules]]
            kind = "gate.forced_open"
            clip_pre_secs = 30
            clip_post_secs = 300

            [[rules]]
            kind = "person.intrusion"
            clip_post_secs = 0
            "#,
        )
        .unwrap();
        let rules = config.resolve().unwrap();
        let forced = rule(&rules, AlertKind::GateForcedOpen);
        assert_eq!((forced.clip_pre_secs, forced.clip_post_secs), (30, 300));
        let intrusion = rule(&rules, AlertKind::PersonIntrusion);
        assert_eq!((intrusion.clip_pre_secs, intrusion.clip_post_secs), (10, 0));
        let tamper = rule(&rules, AlertKind::GateTamper);
        assert_eq!((tamper.clip_pre_secs, tamper.clip_post_secs), (10, 20));

        for field in ["clip_pre_secs", "clip_post_secs"] {
            let config = parse(&format!(
                "[[rules]]\nkind = \"camera.offline\"\n{field} = 301"
            ))
            .unwrap();
            let err = config.resolve().unwrap_err();
            assert_eq!(
                err,
                RulesError::InvalidField {
                    entry: 1,
                    kind: AlertKind::CameraOffline,
                    field,
                    reason: "is 301, more than the maximum of 300 (5 minutes)".to_owned(),
                },
            );
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_known_ones() {
        let err = parse(
            r#"
            [[rules]]
            kind = "gate.forced"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown alert kind \"gate.forced\""), "{err}");
        assert!(err.contains("gate.forced_open"), "{err}");
        assert!(err.contains("kind"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let err = parse(
            r#"
            [[rules]]
            kind = "gate.tamper"
            cooldown = 60
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `cooldown`"), "{err}");
        assert!(err.contains("cooldown_secs"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_by_the_parser() {
        for (text, needle) in [
            ("kind = \"gate.tamper\"\nseverity = \"urgent\"", "urgent"),
            ("kind = \"gate.tamper\"\nroles = [\"janitor\"]", "janitor"),
            (
                "kind = \"gate.tamper\"\ncommunities = [\"a b\"]",
                "\"a b\" has a character",
            ),
            (
                "kind = \"gate.tamper\"\ncooldown_secs = -1",
                "cooldown_secs",
            ),
            ("enabled = true", "missing field `kind`"),
        ] {
            let err = parse(&format!("[[rules]]\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_kind_listed_twice_is_refused_naming_it() {
        let config = parse(
            r#"
            [[rules]]
            kind = "gate.held_open"
            [[rules]]
            kind = "gate.tamper"
            [[rules]]
            kind = "gate.held_open"
            severity = "minor"
            "#,
        )
        .unwrap();
        let err = config.resolve().unwrap_err();
        assert_eq!(
            err,
            RulesError::DuplicateKind {
                kind: AlertKind::GateHeldOpen,
                first: 1,
                second: 3
            }
        );
        let text = err.to_string();
        assert!(text.contains("gate.held_open"), "{text}");
        assert!(
            text.contains("entry 3") && text.contains("entry 1"),
            "{text}"
        );
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
    }

    #[test]
    fn fields_that_do_not_apply_or_cannot_work_are_refused_naming_the_table() {
        let cases: &[(&str, &str)] = &[
            (
                "kind = \"gate.held_open\"\ncount = 3",
                "count applies only to gate.denied_burst",
            ),
            (
                "kind = \"person.loitering\"\nwindow_secs = 30",
                "window_secs applies only to gate.denied_burst",
            ),
            (
                "kind = \"gate.tamper\"\nzones = [\"lobby\"]",
                "zones applies only to person.",
            ),
            (
                "kind = \"person.intrusion\"\ndebounce_secs = 5",
                "debounce_secs applies only to gate.offline",
            ),
            (
                "kind = \"camera.offline\"\ncooldown_secs = 60",
                "cooldown_secs does not apply",
            ),
            (
                "kind = \"gate.denied_burst\"\ncount = 0",
                "count must be at least 1",
            ),
            (
                "kind = \"gate.denied_burst\"\nwindow_secs = 0",
                "window_secs must be at least 1",
            ),
            ("kind = \"gate.duress\"\nroles = []", "roles is empty"),
            (
                "kind = \"crowd.gathering\"\nzones = [\"\"]",
                "not a zone id",
            ),
            (
                "kind = \"gate.duress\"\nack_deadline_secs = 99999999",
                "maximum",
            ),
        ];
        for (text, needle) in cases {
            let config = parse(&format!(
                "[[rules]]\nkind = \"gate.forced_open\"\n[[rules]]\n{text}"
            ))
            .unwrap_or_else(|e| panic!("{text}: {e}"));
            let err = config.resolve().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.starts_with("[[rules]] entry 2 (kind = \""),
                "{text}: {err}"
            );
        }
        // A disabled rule may route to nobody.
        let config =
            parse("[[rules]]\nkind = \"gate.duress\"\nenabled = false\nroles = []").unwrap();
        assert!(config.resolve().is_ok());
    }
}
