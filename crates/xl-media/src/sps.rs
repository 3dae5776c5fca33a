//! The picture size a sequence parameter set declares (after its cropping window), so that a
//! track can be described from a key frame alone: what a browser is told before the first
//! picture is decoded.

use xl_core::camera::VideoCodec;

use crate::nal::{self, BitReader, ParameterSet};

/// Width and height in pixels of the first SPS in `annex_b` (a key frame with its parameter
/// sets), cropping applied; `None` without an SPS or with one that cannot be read.
pub fn picture_size(codec: VideoCodec, annex_b: &[u8]) -> Option<(u32, u32)> {
    let sps = nal::nal_units(annex_b, "key frame").ok()?.find(|n| {
        nal::nal_type(codec, n).and_then(|t| nal::parameter_set(codec, t))
            == Some(ParameterSet::Sps)
    })?;
    let rbsp = nal::rbsp(sps);
    match codec {
        VideoCodec::H264 => h264(&rbsp),
        VideoCodec::H265 => h265(&rbsp),
    }
}

/// ITU-T H.264 7.3.2.1.1.
fn h264(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(rbsp, 1);
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.skip(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.ue()?; // offset_for_non_ref_pic (se)
            r.ue()?; // offset_for_top_to_bottom_field (se)
            for _ in 0..r.ue()? {
                r.ue()?; // offset_for_ref_frame (se)
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let width = width_mbs.checked_mul(16)?;
    let height = height_map_units
        .checked_mul(16)?
        .checked_mul(2 - frame_mbs_only)?;
    let (crop_x, crop_y) = match chroma_format_idc {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    cropped(width, height, crop_x, crop_y, [left, right, top, bottom])
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = se(r.ue()?);
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// A signed Exp-Golomb value from its code number.
fn se(code: u32) -> i64 {
    let k = i64::from(code);
    if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) }
}

/// ITU-T H.265 7.3.2.2.1, up to the conformance window.
fn h265(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(rbsp, 2);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.skip(1)?; // sps_temporal_id_nesting_flag
    // profile_tier_level(1, max_sub_layers_minus1): the general part is 96 bits.
    r.skip(96)?;
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.bit()?, r.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for (profile, level) in present {
        if profile == 1 {
            r.skip(88)?;
        }
        if level == 1 {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.skip(1)?; // separate_colour_plane_flag
    }
    let width = r.ue()?;
    let height = r.ue()?;
    let (crop_x, crop_y) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    cropped(width, height, crop_x, crop_y, [left, right, top, bottom])
}

fn cropped(
    width: u32,
    height: u32,
    unit_x: u32,
    unit_y: u32,
    [left, right, top, bottom]: [u32; 4],
) -> Option<(u32, u32)> {
    let w = width.checked_sub(left.checked_add(right)?.checked_mul(unit_x)?)?;
    let h = height.checked_sub(top.checked_add(bottom)?.checked_mul(unit_y)?)?;
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequence parameter sets written by the FFmpeg CLI (libx264 High, libx265 Main) for
    /// testsrc2 at these sizes: 1080 lines are coded as 1088 and cropped.
    const H264_1080P: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28, 0xac, 0xb2, 0x00, 0xf0, 0x04, 0x4f, 0xcb, 0x80, 0x88,
        0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xa0, 0x78, 0xc1, 0x92, 0x40,
    ];
    const H264_360P: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x64, 0x00, 0x16, 0xac, 0xb2, 0x01, 0x40, 0x5f, 0xf2, 0xe0, 0x22, 0x00,
        0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x28, 0x1e, 0x2c, 0x5c, 0x90,
    ];
    const H265_360P: &[u8] = &[
        0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
        0x00, 0x00, 0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32,
        0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x01, 0x41,
    ];
    const H265_1080P: &[u8] = &[
        0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
        0x00, 0x00, 0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24,
        0xca, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x05, 0x04,
    ];

    #[test]
    fn sizes_of_real_parameter_sets_cropping_included() {
        assert_eq!(
            picture_size(VideoCodec::H264, H264_1080P),
            Some((1920, 1080))
        );
        assert_eq!(picture_size(VideoCodec::H264, H264_360P), Some((640, 360)));
        assert_eq!(picture_size(VideoCodec::H265, H265_360P), Some((640, 360)));
        assert_eq!(
            picture_size(VideoCodec::H265, H265_1080P),
            Some((1920, 1080))
        );
    }

    #[test]
    fn garbage_gives_no_size_and_does_not_panic() {
        for data in [
            &[0u8, 0, 0, 1, 0x67][..],
            &[0, 0, 1, 0x67, 0xff, 0xff],
            &[1, 2, 3],
        ] {
            assert_eq!(picture_size(VideoCodec::H264, data), None);
            assert_eq!(picture_size(VideoCodec::H265, data), None);
        }
    }
}
