//! Live view's port: what the API's WebSocket relays to a browser, whoever produces it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use bytes::Bytes;

/// Which of a camera's streams: the main stream (full resolution) or the sub stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Main,
    Sub,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Main => "main",
            StreamKind::Sub => "sub",
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "main" => Ok(StreamKind::Main),
            "sub" => Ok(StreamKind::Sub),
            _ => Err(format!("stream must be main or sub, not {s:?}")),
        }
    }
}

/// One message of a live session, in order: an `Init` before the first fragment and again
/// whenever the stream changes (reconnect, new codec or size), then fragments. While the camera
/// is offline nothing comes; the camera's status says why.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// A fragmented MP4 initialisation segment (`ftyp` + `moov`).
    Init {
        /// RFC 6381 codec string for `MediaSource.isTypeSupported` (`avc1.64001f`).
        codec: String,
        width: u32,
        height: u32,
        /// The stream sent is H.264 made from an H.265 stream the browser cannot play.
        transcoded: bool,
        data: Bytes,
    },
    /// A media segment (`moof` + `mdat`) of one or more pictures.
    Fragment(Bytes),
}

/// Why a live session ended, for the viewer's close message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEnd {
    /// The camera was removed or disabled.
    CameraGone,
    /// The camera's stream was restarted (its settings changed): open the session again.
    Restarted,
    /// The hub is shutting down.
    Shutdown,
}

impl fmt::Display for LiveEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LiveEnd::CameraGone => "the camera was removed or disabled",
            LiveEnd::Restarted => "the camera's stream restarted after a change; reconnect",
            LiveEnd::Shutdown => "the hub is shutting down",
        })
    }
}

/// A live session's source of messages; dropping it ends the session and releases its share
/// of the stream.
pub trait LiveFeed: Send {
    /// The next message, or why the session ended.
    fn next(&mut self) -> Pin<Box<dyn Future<Output = Result<LiveMessage, LiveEnd>> + Send + '_>>;
    /// The viewer stopped taking what was sent and is being cut off (for the figures).
    fn cut_off(&mut self) {}
}
