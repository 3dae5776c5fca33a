//! Domain types of the Xueliang hub: ids, error kinds, cameras, frames, gate events, and the
//! ports (traits) through which the edge crates talk to each other.
//!
//! Invariant: this crate does no I/O and knows nothing of tokio, sqlx, ort, ffmpeg, rumqttc or
//! axum. It may use std's synchronisation primitives.

pub mod alert;
pub mod backoff;
pub mod camera;
pub mod clock;
pub mod connections;
pub mod error;
pub mod frame;
pub mod gate;
pub mod gate_status;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod nats;
pub mod recording;
pub mod throttle;
pub mod topology;
pub mod zone;

pub use alert::{Alert, AlertId, AlertKind, AlertState, OutboxEntry, Role, Severity};
pub use error::ErrorKind;
pub use gate::{AdapterError, FirmwareAdapter, GateEvent, GateEventKind, PayloadMeta};
pub use ids::{CameraId, CommunityId, GateId, GridId, IdError, StationId, ZoneId};
