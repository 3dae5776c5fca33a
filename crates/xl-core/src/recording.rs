//! What a camera records: its recording mode, the stream recorded and how long it is kept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::live::StreamKind;

/// Which of a camera's video is kept. Every mode but `off` writes the stream continuously (the
/// seconds before an event are only on disk if they were written); the modes differ in what
/// retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingMode {
    /// Everything, for the retention days.
    Continuous,
    /// The stretches around motion (the motion gate of analysis saw movement) and around
    /// alerts; the rest goes after a short buffer.
    MotionAndEvents,
    /// The stretches around alerts (their clips); the rest goes after a short buffer.
    EventsOnly,
    /// Nothing recorded.
    Off,
}

impl RecordingMode {
    pub const ALL: [RecordingMode; 4] = [
        RecordingMode::Continuous,
        RecordingMode::MotionAndEvents,
        RecordingMode::EventsOnly,
        RecordingMode::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Continuous => "continuous",
            RecordingMode::MotionAndEvents => "motion-and-events",
            RecordingMode::EventsOnly => "events-only",
            RecordingMode::Off => "off",
        }
    }
}

impl fmt::Display for RecordingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RecordingMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown recording mode {s:?}: expected continuous, motion-and-events, \
                     events-only or off"
                )
            })
    }
}

/// The most days a recording may be kept (ten years).
pub const MAX_RETAIN_DAYS: u32 = 3650;

/// `[cameras.recording]`: one camera's recording; each field left out takes the hub's
/// `[recording]` default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraRecording {
    /// Default: `[recording] mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RecordingMode>,
    /// The stream recorded; a camera without it records its other one. Default: `[recording]
    /// stream` (main).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamKind>,
    /// Days what is kept by the mode stays on disk (1 to 3650). Default: `[recording]
    /// retain_days`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
}

impl CameraRecording {
    /// Checks the days; names the field (`recording.retain_days`) when wrong.
    pub fn validate(&self) -> Result<(), crate::topology::FieldError> {
        if let Some(days) = self.retain_days
            && !(1..=MAX_RETAIN_DAYS).contains(&days)
        {
            return Err(crate::topology::FieldError::new(
                "recording.retain_days",
                format!("must be 1 to {MAX_RETAIN_DAYS} days, not {days}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for m in RecordingMode::ALL {
            assert_eq!(m.as_str().parse::<RecordingMode>(), Ok(m));
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::json!(m.as_str())
            );
        }
        let e = "events".parse::<RecordingMode>().unwrap_err();
        assert!(e.contains("events-only"), "{e}");
    }

    #[test]
    fn retain_days_are_checked() {
        let ok = CameraRecording {
            retain_days: Some(30),
            ..CameraRecording::default()
        };
        assert!(ok.validate().is_ok());
        for bad in [0, MAX_RETAIN_DAYS + 1] {
            let r = CameraRecording {
                retain_days: Some(bad),
                ..CameraRecording::default()
            };
            let e = r.validate().unwrap_err();
            assert_eq!(e.field, "recording.retain_days");
        }
    }

    #[test]
    fn unknown_keys_are_refused_and_defaults_left_out() {
        let e = serde_json::from_value::<CameraRecording>(serde_json::json!({"mod": "off"}))
            .unwrap_err();
        assert!(e.to_string().contains("mod"), "{e}");
        assert_eq!(
            serde_json::to_value(CameraRecording::default()).unwrap(),
            serde_json::json!({})
        );
    }
}
