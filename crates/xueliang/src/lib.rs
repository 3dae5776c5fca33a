//! The Xueliang hub: configuration, the wiring of cameras to decoders to the API, and the CLI's
//! commands. `main.rs` only parses arguments and calls in here.

pub mod api_backend;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod feeds;
pub mod gate_decode;
pub mod gate_store;
pub mod hub;
pub mod live;
pub mod logging;
pub mod peer_video;
pub mod playback;
pub mod probe;
pub mod recording;
pub mod runtime;
pub mod topology;
pub mod users;
