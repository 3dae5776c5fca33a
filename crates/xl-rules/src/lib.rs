//! The rules engine: gate events, zone events of persons and device health changes, plus a
//! clock, in; alert decisions out. Pure: no I/O, no async, no system clock. The hub owns the
//! store and the timers and applies what the [`Engine`] decides.
//!
//! # How the hub drives it
//!
//! ```text
//! loop {
//!     input (gate event stored, zone event, health change) => engine.handle(&input, ids)
//!     sleep until engine.next_deadline()                   => engine.tick(now, ids)
//!     a person's action through the API, once committed    => engine.acted(id, action, at)
//!     apply every Decision, in order: store (+ outbox), then publishers
//! }
//! at start-up: engine.restore(store's unresolved alerts)
//! ```
//!
//! # Decisions
//!
//! Every change to an alert, the engine's copy and the stored one alike, is made by
//! [`xl_core::Alert::apply`], the alert's one state machine (its table is there); the
//! decisions say which action the engine applied (`By::Rules`).
//!
//! - [`Decision::Raise`]: a new alert, state open, count 1, `ack_deadline` = raise time plus
//!   the rule's `ack_deadline_secs` (none when 0), routed to the rule's roles.
//! - [`Decision::Repeat`]: the same kind from the same source again while the source's latest
//!   alert is within its cooldown (`at < last_seen_at + cooldown_secs`). The cooldown runs from
//!   the alert's last occurrence, so a steady trickle keeps folding into one alert. An
//!   occurrence at or after the end of the cooldown raises a new alert; the old one stays as it
//!   is (and still escalates if nobody acknowledged it). Acknowledged and escalated alerts
//!   repeat too; an alert a person resolved never does.
//! - [`Decision::Escalate`]: an alert still open at its `ack_deadline` (exactly then, not
//!   before), once. The store marks it escalated and adds the police role. An alert a person
//!   acknowledged or escalated never escalates by its deadline.
//! - [`Decision::Resolve`]: a health condition cleared (the device is back, the camera records
//!   again); actor "system". Only the health kinds (`gate.offline`, `camera.offline`,
//!   `recording.failed`) resolve themselves; everything else is resolved by a person.
//!
//! # Time
//!
//! Time comes only from inputs' `at` (the hub's clock, which gate and vision events share) and
//! from `tick(now)`. [`Engine::handle`] first does what `tick(input.at())` would, so the
//! decisions do not depend on how often the caller ticks: an outage that has lasted its
//! debounce raises at its due time even when the "back online" input arrives before the tick.
//! Deadlines are reported at the instant they fell due, not when the caller got round to it.
//!
//! # Rules
//!
//! | kind | from | source (folding key) | severity | cooldown | ack deadline | roles |
//! |---|---|---|---|---|---|---|
//! | `gate.forced_open` | `DoorForcedOpen` | gate | critical | 300 s | 120 s | duty, police, property |
//! | `gate.duress` | `Duress` | gate | critical | 300 s | 60 s | duty, police |
//! | `gate.blacklist` | `Blacklisted` | gate | critical | 300 s | 120 s | duty, police |
//! | `gate.tamper` | `Tamper` | gate | major | 300 s | 300 s | duty, property |
//! | `gate.held_open` | `DoorHeldOpen` | gate | major | 300 s | 600 s | duty, property |
//! | `gate.denied_burst` | 5 `AccessDenied` within 60 s | gate | major | 300 s | 600 s | duty |
//! | `gate.offline` | gate health, offline 30 s | gate | major | one per outage | never | duty, property |
//! | `camera.offline` | camera health, offline 60 s | camera | minor | one per outage | never | duty |
//! | `recording.failed` | recording health, stopped (no debounce) | camera | major | one per outage | never | duty |
//! | `person.intrusion` | zone entered | camera + zone | major | 120 s | 300 s | duty |
//! | `person.loitering` | zone dwell exceeded | camera + zone | minor | 300 s | never | duty |
//! | `crowd.gathering` | zone count over limit | camera + zone | major | 600 s | 600 s | duty |
//!
//! Gate kinds fold per gate, not per door (the door is in the title). A gate event whose phase
//! is `Stop` (a tamper restored) raises nothing. `DenyReason` has no blacklist reason, so only
//! `Blacklisted` events raise `gate.blacklist`; `AccessDenied` counts towards the burst
//! whatever its reason. Other gate event kinds (`DeviceOffline` included: gate health comes
//! from the hub's heartbeat watch) raise nothing. The denial window is sliding and half-open:
//! a denial at `t` counts for denials in `(t - window_secs, t]`. While a burst alert is live,
//! every further denial at that gate repeats it.
//!
//! Health kinds: `online = false` (`recording = false`) starts an outage; it raises when it has
//! lasted `debounce_secs` (raised at that instant), and `online = true` (`recording = true`)
//! before then cancels it (a blip raises nothing). `online = true` after the raise resolves
//! the alert. Further failures during an outage change nothing, and an outage raises at most
//! one alert, even if a person resolved it while the device was still down. A recording
//! failure's title carries the reason of the outage's first failure ("Recording of camera c1
//! stopped: disk full"), as the hub words it (short, never a file path).
//!
//! Each rule can be disabled, limited to communities, and (person and crowd kinds) to zone
//! ids; see [`RuleConfig`]. Each rule also says which stretch of video its alerts keep as
//! their clip (`clip_pre_secs` before the raise to `clip_post_secs` after; 10 s and 20 s by
//! default): the engine does not use them, the hub's alert processor does.
//!
//! # State
//!
//! The engine keeps only what can still matter: unresolved alerts within their cooldown or
//! with an escalation pending, health alerts until resolved, outages of offline devices, and
//! per gate at most `count` recent denials. Everything else is pruned as time passes, so memory
//! is bounded by the number of devices and the alerts of the last cooldown. After a restart,
//! [`Engine::restore`] reloads the unresolved alerts, so cooldowns, escalations and
//! auto-resolve carry on, and [`Engine::restore_denial`] takes back the denials handled within
//! [`Engine::denial_window`], so a burst being counted goes on; pending debounces start afresh.

mod config;
mod engine;
mod error;
mod input;

pub use config::{MAX_CLIP_SECS, MAX_SECS, Rule, RuleConfig, RulesConfig, default_catalog};
pub use engine::{Decision, Engine};
pub use error::RulesError;
pub use input::{GateInput, Input, ZoneInput, ZoneWhat};
