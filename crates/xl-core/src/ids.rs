//! Newtype ids. An id is what operators type in config and see in URLs, metrics labels and MQTT
//! topics, so it is restricted to `[A-Za-z0-9_.-]`, 1 to 64 characters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id must not be empty")]
    Empty,
    #[error("id {0:?} is longer than 64 characters")]
    TooLong(String),
    #[error("id {0:?} has a character other than letters, digits, '_', '-' and '.'")]
    BadChar(String),
}

fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > 64 {
        return Err(IdError::TooLong(s.to_owned()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(IdError::BadChar(s.to_owned()));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A camera, as named in config (`[[cameras]] id = "..."`).
    CameraId
);
id_type!(
    /// A community (小区).
    CommunityId
);
id_type!(
    /// A gate: a door, turnstile or barrier with an access controller.
    GateId
);
id_type!(
    /// A police station (派出所), which owns communities.
    StationId
);
id_type!(
    /// A grid (网格): a part of a community.
    GridId
);
id_type!(
    /// A zone of a camera: unique among that camera's zones (events and rules name the zone by
    /// it), not across cameras.
    ZoneId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_config_style_names_and_reject_others() {
        for ok in ["cam-01", "east_gate.2", "A"] {
            assert!(CameraId::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(CameraId::new(""), Err(IdError::Empty));
        assert!(matches!(CameraId::new("a b"), Err(IdError::BadChar(_))));
        assert!(matches!(CameraId::new("摄像机"), Err(IdError::BadChar(_))));
        assert!(matches!(
            CameraId::new("x".repeat(65)),
            Err(IdError::TooLong(_))
        ));
    }

    #[test]
    fn ids_deserialize_with_validation() {
        use serde::de::{IntoDeserializer, value::Error};
        let ok: Result<CameraId, Error> = CameraId::deserialize("cam-1".into_deserializer());
        assert_eq!(ok.unwrap().as_str(), "cam-1");
        let bad: Result<CameraId, Error> = CameraId::deserialize("bad id".into_deserializer());
        assert!(bad.unwrap_err().to_string().contains("bad id"));
    }
}
