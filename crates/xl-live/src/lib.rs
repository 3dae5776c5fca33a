//! Live video: each stream of a camera is pulled once, whoever consumes it (the decoder, live
//! viewers, and the recorder next). [`tee::Tee`] hands every access unit to each consumer and
//! keeps the last group of pictures; each viewer reads through its own bounded
//! [`queue::ViewerQueue`]; [`relay::Relay`] remuxes what a viewer reads into fragmented MP4
//! (no transcoding); [`on_demand::OnDemand`] pulls a stream only while something watches it.

pub mod on_demand;
pub mod queue;
pub mod relay;
pub mod stats;
pub mod tee;

pub use on_demand::OnDemand;
pub use queue::ViewerQueue;
pub use relay::Relay;
pub use stats::LiveStats;
pub use tee::{Subscription, Tee};
