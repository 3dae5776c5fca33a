//! Just enough NAL unit parsing to apply decode policies without asking the decoder.

use xl_core::camera::VideoCodec;

/// Whether an access unit holds a picture that later pictures may refer to. A non-reference
/// picture (H.264 `nal_ref_idc == 0`; H.265 sub-layer non-reference types TRAIL_N, TSA_N,
/// STSA_N, RADL_N, RASL_N and the reserved RSV_VCL_N10/12/14) can be skipped without breaking
/// the decoding of anything after it.
///
/// `data` is Annex B (start codes). Access units with no recognisable picture count as
/// reference, so that nothing is skipped on a guess.
pub fn is_reference(codec: VideoCodec, data: &[u8]) -> bool {
    let mut saw_picture = false;
    for nal in annex_b_nals(data) {
        let Some(&h) = nal.first() else { continue };
        match codec {
            VideoCodec::H264 => {
                let nal_type = h & 0x1f;
                if matches!(nal_type, 1 | 5) {
                    saw_picture = true;
                    if h & 0x60 != 0 {
                        return true;
                    }
                }
            }
            VideoCodec::H265 => {
                let nal_type = (h >> 1) & 0x3f;
                if nal_type <= 31 {
                    saw_picture = true;
                    let sub_layer_non_ref = nal_type <= 14 && nal_type % 2 == 0;
                    if !sub_layer_non_ref {
                        return true;
                    }
                }
            }
        }
    }
    !saw_picture
}

/// NAL units of an Annex B byte stream, without their start codes.
fn annex_b_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = find_start_code(data, pos)?;
        let end = find_start_code(data, start).map_or(data.len(), |next| {
            // Back up over the start code (3 bytes, or 4 with a leading zero).
            let sc = next - 3;
            if sc > start && data[sc - 1] == 0 {
                sc - 1
            } else {
                sc
            }
        });
        pos = start;
        Some(&data[start..end.max(start)])
    })
}

/// Position just after the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i + 3);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x64, 0, 0x1f];
    const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80];

    fn au(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn h264_idr_and_reference_p_frames_are_reference() {
        let idr = au(&[SPS, PPS, &[0, 0, 1, 0x65, 0x88, 0x84]]);
        assert!(is_reference(VideoCodec::H264, &idr));
        let p_ref = au(&[&[0, 0, 0, 1, 0x41, 0x9a, 0x02]]);
        assert!(is_reference(VideoCodec::H264, &p_ref));
    }

    #[test]
    fn h264_nal_ref_idc_zero_is_non_reference() {
        // 0x01: forbidden 0, nal_ref_idc 0, type 1 (non-IDR slice), as x264 writes b-frames.
        let b = au(&[&[0, 0, 0, 1, 0x09, 0x10], &[0, 0, 1, 0x01, 0x9e, 0x04]]);
        assert!(!is_reference(VideoCodec::H264, &b));
    }

    #[test]
    fn h265_trail_n_is_non_reference_and_trail_r_is_reference() {
        // NAL header: (type << 1), layer/tid byte 0x01.
        let trail_n = [0, 0, 0, 1, 0 << 1, 0x01, 0xaf];
        let trail_r = [0, 0, 0, 1, 1 << 1, 0x01, 0xaf];
        let idr = [0, 0, 0, 1, 19 << 1, 0x01, 0xaf];
        let rasl_n = [0, 0, 0, 1, 8 << 1, 0x01, 0xaf];
        assert!(!is_reference(VideoCodec::H265, &trail_n));
        assert!(!is_reference(VideoCodec::H265, &rasl_n));
        assert!(is_reference(VideoCodec::H265, &trail_r));
        assert!(is_reference(VideoCodec::H265, &idr));
    }

    #[test]
    fn garbage_and_empty_input_count_as_reference() {
        assert!(is_reference(VideoCodec::H264, &[]));
        assert!(is_reference(VideoCodec::H264, &[0xff; 64]));
        assert!(is_reference(VideoCodec::H265, &[0, 0, 1]));
        assert!(is_reference(VideoCodec::H265, &[0, 0]));
    }

    #[test]
    fn nal_splitting_handles_three_and_four_byte_start_codes() {
        let data = au(&[
            &[0, 0, 0, 1, 0xaa, 0xbb],
            &[0, 0, 1, 0xcc],
            &[0, 0, 0, 1, 0xdd],
        ]);
        let nals: Vec<&[u8]> = annex_b_nals(&data).collect();
        assert_eq!(nals, [&[0xaa, 0xbb][..], &[0xcc], &[0xdd]]);
    }
}
