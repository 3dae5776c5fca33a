//! Media muxing for live view and recording, by remux (no transcoding): camera access units
//! (Annex B H.264 or H.265, [`xl_core::frame::AccessUnit`]) into fragmented MP4, the format
//! Media Source Extensions play and the recorder stores. Pure: bytes in, bytes out; no I/O, no
//! async runtime, no FFmpeg.
//!
//! - [`nal`]: Annex B splitting, NAL unit types, parameter-set RBSP.
//! - [`sps`]: the picture size a sequence parameter set declares.
//! - [`fmp4`]: [`fmp4::VideoTrack`] (decoder configuration record and RFC 6381 codec string),
//!   [`fmp4::init_segment`], and the [`fmp4::Fragmenter`] that makes media segments.
//!
//! ```
//! use xl_core::camera::VideoCodec;
//! use xl_media::fmp4::{FragmentPolicy, Fragmenter, VideoTrack, init_segment};
//!
//! # fn main() -> Result<(), xl_media::Fmp4Error> {
//! // A key frame as a camera sends it: SPS, PPS, then the IDR slice.
//! let key_frame = [
//!     &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8][..],
//!     &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
//!     &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x2b],
//! ]
//! .concat();
//! let track = VideoTrack::from_key_frame(VideoCodec::H264, &key_frame, 640, 360)?;
//! assert_eq!(track.codec_string(), "avc1.42c01e");
//! let init = init_segment(&track); // to the browser first: addSourceBuffer(track.mime_type())
//!
//! let mut fragmenter = Fragmenter::new(&track, FragmentPolicy::EverySample);
//! assert!(fragmenter.push_sample(&key_frame, 0, true)?.is_none()); // duration not known yet
//! let p_frame = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x10];
//! let fragment = fragmenter.push_sample(&p_frame, 9_000, false)?; // the key frame's fragment
//! assert!(fragment.is_some_and(|f| &f[4..8] == b"moof"));
//! # let _ = init;
//! # Ok(())
//! # }
//! ```

mod error;
pub mod fmp4;
pub mod nal;
pub mod sps;

pub use error::Fmp4Error;
