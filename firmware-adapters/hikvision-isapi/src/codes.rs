//! Hikvision access-control event codes (`major`/`minor`, `majorEventType`/`subEventType`) to
//! gate event kinds.
//!
//! The table follows Hikvision's code list (the HCNetSDK `MAJOR_*`/`MINOR_*` constants, which
//! ISAPI reuses). Codes not listed here decode as `unknown` with the raw payload.

use xl_core::gate::{DenyReason, EventPhase, GateEventKind, VerifyMethod};

/// Major type: alarms (tamper, duress, panic button).
pub const MAJOR_ALARM: u64 = 1;
/// Major type: exceptions (network, reader offline, battery).
pub const MAJOR_EXCEPTION: u64 = 2;
/// Major type: operations (remote door control, configuration).
pub const MAJOR_OPERATION: u64 = 3;
/// Major type: events (accesses, door states).
pub const MAJOR_EVENT: u64 = 5;

/// What one code means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meaning {
    pub kind: GateEventKind,
    pub reason: Option<DenyReason>,
    pub method: Option<VerifyMethod>,
    pub phase: Option<EventPhase>,
    pub detail: Option<&'static str>,
}

fn kind(kind: GateEventKind) -> Meaning {
    Meaning {
        kind,
        reason: None,
        method: None,
        phase: None,
        detail: None,
    }
}

fn granted(method: VerifyMethod) -> Meaning {
    Meaning {
        method: Some(method),
        ..kind(GateEventKind::AccessGranted)
    }
}

fn granted_by(parts: &[VerifyMethod]) -> Meaning {
    granted(VerifyMethod::combined(parts.to_vec()))
}

fn denied(reason: DenyReason) -> Meaning {
    Meaning {
        reason: Some(reason),
        ..kind(GateEventKind::AccessDenied)
    }
}

fn condition(k: GateEventKind, phase: EventPhase, detail: &'static str) -> Meaning {
    Meaning {
        phase: Some(phase),
        detail: Some(detail),
        ..kind(k)
    }
}

fn detailed(k: GateEventKind, detail: &'static str) -> Meaning {
    Meaning {
        detail: Some(detail),
        ..kind(k)
    }
}

/// The meaning of `major`/`minor`, or `None` for a code this adapter does not know.
pub fn meaning(major: u64, minor: u64) -> Option<Meaning> {
    use DenyReason as R;
    use EventPhase::{Start, Stop};
    use GateEventKind as K;
    use VerifyMethod as M;
    Some(match (major, minor) {
        // Events (major 5): accesses and door states.
        (MAJOR_EVENT, 0x01) => granted(M::Card),
        (MAJOR_EVENT, 0x02) => granted_by(&[M::Card, M::Pin]),
        (MAJOR_EVENT, 0x03) => denied(R::InvalidPin),
        (MAJOR_EVENT, 0x04) => denied(R::Timeout),
        (MAJOR_EVENT, 0x06) => denied(R::NoPermission),
        (MAJOR_EVENT, 0x07) => denied(R::InvalidTimePeriod),
        (MAJOR_EVENT, 0x08) => denied(R::Expired),
        (MAJOR_EVENT, 0x09) => denied(R::CardNotFound),
        (MAJOR_EVENT, 0x0a) => denied(R::AntiPassback),
        (MAJOR_EVENT, 0x15) => kind(K::DoorUnlocked),
        (MAJOR_EVENT, 0x16) => kind(K::DoorLocked),
        (MAJOR_EVENT, 0x17) => granted(M::ExitButton),
        (MAJOR_EVENT, 0x19) => kind(K::DoorOpened),
        (MAJOR_EVENT, 0x1a) => kind(K::DoorClosed),
        (MAJOR_EVENT, 0x1b) => kind(K::DoorForcedOpen),
        (MAJOR_EVENT, 0x1c) => kind(K::DoorHeldOpen),
        (MAJOR_EVENT, 0x26) => granted(M::Fingerprint),
        (MAJOR_EVENT, 0x27) => denied(R::FingerprintNotRecognized),
        (MAJOR_EVENT, 0x28) => granted_by(&[M::Card, M::Fingerprint]),
        (MAJOR_EVENT, 0x29) => denied(R::FingerprintNotRecognized),
        (MAJOR_EVENT, 0x2b) => granted_by(&[M::Card, M::Fingerprint, M::Pin]),
        (MAJOR_EVENT, 0x2e) => granted_by(&[M::Fingerprint, M::Pin]),
        (MAJOR_EVENT, 0x31) => denied(R::FingerprintNotRecognized),
        (MAJOR_EVENT, 0x36) => granted_by(&[M::Face, M::Fingerprint]),
        (MAJOR_EVENT, 0x39) => granted_by(&[M::Face, M::Pin]),
        (MAJOR_EVENT, 0x3c) => granted_by(&[M::Face, M::Card]),
        (MAJOR_EVENT, 0x3f) => granted_by(&[M::Face, M::Pin, M::Fingerprint]),
        (MAJOR_EVENT, 0x42) => granted_by(&[M::Face, M::Card, M::Fingerprint]),
        (MAJOR_EVENT, 0x4b) => granted(M::Face),
        (MAJOR_EVENT, 0x4c) => denied(R::FaceNotRecognized),
        (MAJOR_EVENT, 0x50) => denied(R::FaceNotRecognized),
        (MAJOR_EVENT, 0x65) => granted(M::Pin),
        (MAJOR_EVENT, 0x71) => kind(K::Blacklisted),
        (MAJOR_EVENT, 0x83) => kind(K::Heartbeat),
        (MAJOR_EVENT, 0x85) => detailed(K::Alarm, "tailgating"),
        (MAJOR_EVENT, 0x87) => kind(K::DoorForcedOpen),
        (MAJOR_EVENT, 0x88) => detailed(K::Alarm, "climbing_over_gate"),
        (MAJOR_EVENT, 0x97) => denied(R::InvalidPin),
        (MAJOR_EVENT, 0x98) => denied(R::CardNotFound),
        // Alarms (major 1).
        (MAJOR_ALARM, 0x404) => condition(K::Tamper, Start, "zone_tamper"),
        (MAJOR_ALARM, 0x405) => condition(K::Tamper, Stop, "zone_tamper"),
        (MAJOR_ALARM, 0x406) => condition(K::Tamper, Start, "card_reader_tamper"),
        (MAJOR_ALARM, 0x407) => condition(K::Tamper, Stop, "card_reader_tamper"),
        (MAJOR_ALARM, 0x40a) => kind(K::Duress),
        (MAJOR_ALARM, 0x40c) => denied(R::MaxAttempts),
        (MAJOR_ALARM, 0x41c) => condition(K::Alarm, Start, "panic_button"),
        (MAJOR_ALARM, 0x41d) => condition(K::Alarm, Stop, "panic_button"),
        // Exceptions (major 2).
        (MAJOR_EXCEPTION, 0x27) => condition(K::DeviceOffline, Start, "network_broken"),
        (MAJOR_EXCEPTION, 0x407) => condition(K::DeviceOffline, Stop, "network_broken"),
        (MAJOR_EXCEPTION, 0x403) => condition(K::Alarm, Start, "battery_low"),
        (MAJOR_EXCEPTION, 0x404) => condition(K::Alarm, Stop, "battery_low"),
        (MAJOR_EXCEPTION, 0x409) => condition(K::DeviceOffline, Start, "card_reader_offline"),
        (MAJOR_EXCEPTION, 0x40a) => condition(K::DeviceOffline, Stop, "card_reader_offline"),
        // Operations (major 3).
        (MAJOR_OPERATION, 0x400) => granted(M::Remote),
        _ => return None,
    })
}
