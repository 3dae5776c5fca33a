//! One picture from one key frame, outside the pool: the camera probe's snapshot. CPU work
//! (a decoder is opened and closed for it): call it off the async threads.

use ffmpeg_next::util::frame::video::Video;
use jiff::Timestamp;
use xl_core::CameraId;
use xl_core::camera::VideoCodec;
use xl_core::frame::{Frame, PooledBuf};

use crate::DecodeError;
use crate::queue::StreamSpec;
use crate::scale::{Scaler, analysis_size};
use crate::worker::open_decoder;

/// Decodes `key_frame` (Annex B with its parameter sets inline, as an RTSP session delivers
/// a key frame) to an I420 [`Frame`] at most `max_width` wide, aspect kept, never upscaled.
pub fn decode_key_frame(
    camera: CameraId,
    codec: VideoCodec,
    key_frame: &[u8],
    max_width: u32,
    received_at: Timestamp,
) -> Result<Frame, DecodeError> {
    crate::init()?;
    let mut decoder = open_decoder(StreamSpec::AnnexB(codec))?;
    let undecodable = |source| DecodeError::KeyFrame {
        codec: codec.to_string(),
        source,
    };
    let mut packet = ffmpeg_next::codec::packet::Packet::copy(key_frame);
    packet.set_flags(ffmpeg_next::codec::packet::Flags::KEY);
    decoder.send_packet(&packet).map_err(undecodable)?;
    // The end of the stream makes the decoder hand out the picture it holds.
    decoder.send_eof().map_err(undecodable)?;
    let mut decoded = Video::empty();
    decoder.receive_frame(&mut decoded).map_err(undecodable)?;
    let (w, h) = analysis_size(decoded.width(), decoded.height(), max_width);
    let mut i420 = vec![0u8; Frame::i420_len(w, h)];
    Scaler::default()
        .write_i420(&decoded, w, h, &mut i420)
        .map_err(undecodable)?;
    Ok(Frame {
        camera,
        pts_90k: 0,
        received_at,
        width: w,
        height: h,
        i420: PooledBuf::unpooled(i420),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_naming_the_codec_not_a_panic() {
        let id = CameraId::new("probe").unwrap();
        let junk = [0u8, 0, 0, 1, 0x65, 1, 2, 3, 4, 5];
        let err =
            decode_key_frame(id, VideoCodec::H264, &junk, 640, Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(err.to_string().contains("h264"), "{err}");
    }
}
