//! The video track: its decoder configuration record (`avcC`, `hvcC`) and RFC 6381 codec
//! string, from a key frame's parameter sets or from a known record.

use std::fmt::Write as _;

use bytes::Bytes;
use xl_core::camera::VideoCodec;

use crate::Fmp4Error;
use crate::nal::{self, BitReader, ParameterSet};

/// The most SPS an `avcC` holds (5 bits).
const AVCC_MAX_SPS: usize = 31;
/// The most PPS an `avcC` holds (8 bits).
const AVCC_MAX_PPS: usize = 255;

/// One video track as the init segment describes it. Cheap to clone.
///
/// Samples are always written with 4-byte NAL unit lengths, so the record always says so
/// (`lengthSizeMinusOne` = 3), whatever a given record said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    codec: VideoCodec,
    width: u16,
    height: u16,
    config_record: Bytes,
    codec_string: String,
    parameter_sets: ParameterSets,
}

impl VideoTrack {
    /// Describes the track from the parameter sets in a key frame (Annex B, as
    /// [`xl_core::frame::AccessUnit::data`]): SPS and PPS for H.264, VPS, SPS and PPS for
    /// H.265. `width` and `height` are the displayed size in pixels (retina's
    /// `pixel_dimensions()`); they are not read from the SPS.
    pub fn from_key_frame(
        codec: VideoCodec,
        annex_b_key_frame: &[u8],
        width: u32,
        height: u32,
    ) -> Result<VideoTrack, Fmp4Error> {
        let (width, height) = check_dimensions(width, height)?;
        let sets = ParameterSets::from_annex_b(codec, annex_b_key_frame, "key frame")?;
        Self::from_parameter_sets(codec, sets, width, height, "key frame")
    }

    /// Describes the track from a known decoder configuration: an H.264
    /// AVCDecoderConfigurationRecord or an H.265 HEVCDecoderConfigurationRecord (what retina's
    /// `VideoParameters::extra_data()` holds with 4-byte length framing). Annex B parameter
    /// sets (what `extra_data()` holds with retina's `FrameFormat::SIMPLE`, the framing
    /// `xl-rtsp` asks for) are accepted too, and treated as by [`VideoTrack::from_key_frame`]:
    /// a record starts with its version byte 1, Annex B with a zero byte.
    ///
    /// A given record is kept as it is, but for its NAL unit length size, set to 4 bytes.
    pub fn from_config(
        codec: VideoCodec,
        record: &[u8],
        width: u32,
        height: u32,
    ) -> Result<VideoTrack, Fmp4Error> {
        let (width, height) = check_dimensions(width, height)?;
        if record.starts_with(&[0, 0, 1]) || record.starts_with(&[0, 0, 0, 1]) {
            let sets = ParameterSets::from_annex_b(codec, record, "parameter sets")?;
            return Self::from_parameter_sets(codec, sets, width, height, "parameter sets");
        }
        let (parameter_sets, record) = match codec {
            VideoCodec::H264 => parse_avcc(record)?,
            VideoCodec::H265 => parse_hvcc(record)?,
        };
        let codec_string = codec_string(codec, &record)?;
        Ok(VideoTrack {
            codec,
            width,
            height,
            config_record: Bytes::from(record),
            codec_string,
            parameter_sets,
        })
    }

    fn from_parameter_sets(
        codec: VideoCodec,
        sets: ParameterSets,
        width: u16,
        height: u16,
        what: &'static str,
    ) -> Result<VideoTrack, Fmp4Error> {
        sets.require(codec, what)?;
        let record = match codec {
            VideoCodec::H264 => build_avcc(&sets)?,
            VideoCodec::H265 => build_hvcc(&sets)?,
        };
        let codec_string = codec_string(codec, &record)?;
        Ok(VideoTrack {
            codec,
            width,
            height,
            config_record: Bytes::from(record),
            codec_string,
            parameter_sets: sets,
        })
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Width in pixels, as given.
    pub fn width(&self) -> u32 {
        u32::from(self.width)
    }

    /// Height in pixels, as given.
    pub fn height(&self) -> u32 {
        u32::from(self.height)
    }

    /// The decoder configuration record: `avcC` or `hvcC` box payload.
    pub fn config_record(&self) -> &Bytes {
        &self.config_record
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f` or `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> &str {
        &self.codec_string
    }

    /// The MIME type for `MediaSource.isTypeSupported` and `addSourceBuffer`, e.g.
    /// `video/mp4; codecs="avc1.64001f"`.
    pub fn mime_type(&self) -> String {
        format!("video/mp4; codecs=\"{}\"", self.codec_string)
    }

    pub(crate) fn parameter_sets(&self) -> &ParameterSets {
        &self.parameter_sets
    }

    /// The sample entry's four-character code: `avc1` or `hvc1` (parameter sets only in the
    /// sample entry, never in the samples).
    pub(crate) fn sample_entry_type(&self) -> &'static [u8; 4] {
        match self.codec {
            VideoCodec::H264 => b"avc1",
            VideoCodec::H265 => b"hvc1",
        }
    }

    /// The configuration box's four-character code: `avcC` or `hvcC`.
    pub(crate) fn config_box_type(&self) -> &'static [u8; 4] {
        match self.codec {
            VideoCodec::H264 => b"avcC",
            VideoCodec::H265 => b"hvcC",
        }
    }
}

fn check_dimensions(width: u32, height: u32) -> Result<(u16, u16), Fmp4Error> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(Fmp4Error::BadDimensions { width, height }),
    }
}

/// The parameter sets of a track, each NAL unit (header included, trailing zero bytes trimmed)
/// once, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParameterSets {
    vps: Vec<Vec<u8>>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
}

impl ParameterSets {
    fn from_annex_b(
        codec: VideoCodec,
        data: &[u8],
        what: &'static str,
    ) -> Result<ParameterSets, Fmp4Error> {
        let mut sets = ParameterSets::default();
        for nal in nal::nal_units(data, what)? {
            if let Some(kind) = nal::nal_type(codec, nal).and_then(|t| nal::parameter_set(codec, t))
            {
                sets.add(kind, nal);
            }
        }
        Ok(sets)
    }

    fn list(&self, kind: ParameterSet) -> &Vec<Vec<u8>> {
        match kind {
            ParameterSet::Vps => &self.vps,
            ParameterSet::Sps => &self.sps,
            ParameterSet::Pps => &self.pps,
        }
    }

    fn add(&mut self, kind: ParameterSet, nal: &[u8]) {
        let nal = &nal[..nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count()];
        let list = match kind {
            ParameterSet::Vps => &mut self.vps,
            ParameterSet::Sps => &mut self.sps,
            ParameterSet::Pps => &mut self.pps,
        };
        if !list.iter().any(|known| known == nal) {
            list.push(nal.to_vec());
        }
    }

    /// Whether `nal` (trailing zeros already trimmed, as [`nal::nal_units`] yields) is one of
    /// the track's parameter sets of this kind.
    pub(crate) fn contains(&self, kind: ParameterSet, nal: &[u8]) -> bool {
        self.list(kind).iter().any(|known| known == nal)
    }

    /// Fails unless every kind of parameter set the codec needs is here.
    fn require(&self, codec: VideoCodec, what: &'static str) -> Result<(), Fmp4Error> {
        let needed: &[ParameterSet] = match codec {
            VideoCodec::H264 => &[ParameterSet::Sps, ParameterSet::Pps],
            VideoCodec::H265 => &[ParameterSet::Vps, ParameterSet::Sps, ParameterSet::Pps],
        };
        match needed.iter().find(|&&kind| self.list(kind).is_empty()) {
            Some(kind) => Err(Fmp4Error::MissingParameterSet {
                codec,
                what,
                parameter_set: kind.name(),
            }),
            None => Ok(()),
        }
    }
}

/// The first SPS, as RBSP; `require` has made sure there is one.
fn first_sps_rbsp(codec: VideoCodec, sets: &ParameterSets) -> Result<Vec<u8>, Fmp4Error> {
    sets.sps
        .first()
        .map(|sps| nal::rbsp(sps))
        .ok_or(Fmp4Error::MissingParameterSet {
            codec,
            what: "track",
            parameter_set: "SPS",
        })
}

fn bad_sps(codec: VideoCodec, len: usize, reason: &'static str) -> Fmp4Error {
    Fmp4Error::BadParameterSet {
        codec,
        parameter_set: "SPS",
        len,
        reason,
    }
}

/// Appends `nal` with its 16-bit length, as both records list parameter sets.
fn put_nal_u16(
    out: &mut Vec<u8>,
    codec: VideoCodec,
    kind: ParameterSet,
    nal: &[u8],
) -> Result<(), Fmp4Error> {
    let len = u16::try_from(nal.len()).map_err(|_| Fmp4Error::BadParameterSet {
        codec,
        parameter_set: kind.name(),
        len: nal.len(),
        reason: "longer than the 65535 bytes a decoder configuration record can hold",
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// H.264 profiles whose SPS carries chroma format and bit depths (ITU-T H.264 7.3.2.1.1), and
/// whose `avcC` then carries them too.
fn h264_has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) from SPS and PPS.
fn build_avcc(sets: &ParameterSets) -> Result<Vec<u8>, Fmp4Error> {
    let codec = VideoCodec::H264;
    let sps = first_sps_rbsp(codec, sets)?;
    let &[_, profile_idc, constraint_flags, level_idc, ..] = sps.as_slice() else {
        return Err(bad_sps(
            codec,
            sps.len(),
            "shorter than its profile and level",
        ));
    };
    let chroma = if h264_has_chroma_info(profile_idc) {
        let mut r = BitReader::new(&sps, 4);
        let fields = (|| {
            let _seq_parameter_set_id = r.ue()?;
            let chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                let _separate_colour_plane_flag = r.bit()?;
            }
            Some((chroma_format_idc, r.ue()?, r.ue()?))
        })();
        match fields {
            Some((c, l, d)) if c <= 3 && l <= 6 && d <= 6 => Some((c as u8, l as u8, d as u8)),
            Some(_) => {
                return Err(bad_sps(
                    codec,
                    sps.len(),
                    "chroma format or bit depth out of range",
                ));
            }
            None => return Err(bad_sps(codec, sps.len(), "cut short before its bit depths")),
        }
    } else {
        None
    };
    if sets.sps.len() > AVCC_MAX_SPS || sets.pps.len() > AVCC_MAX_PPS {
        return Err(Fmp4Error::BadParameterSet {
            codec,
            parameter_set: if sets.sps.len() > AVCC_MAX_SPS {
                "SPS"
            } else {
                "PPS"
            },
            len: 0,
            reason: "more of them than an avcC record holds (31 SPS, 255 PPS)",
        });
    }
    let mut out = Vec::with_capacity(
        16 + sets
            .sps
            .iter()
            .chain(&sets.pps)
            .map(|n| n.len() + 2)
            .sum::<usize>(),
    );
    out.extend_from_slice(&[
        1, // configurationVersion
        profile_idc,
        constraint_flags,
        level_idc,
        0xfc | 3, // reserved, lengthSizeMinusOne = 3
        0xe0 | sets.sps.len() as u8,
    ]);
    for sps in &sets.sps {
        put_nal_u16(&mut out, codec, ParameterSet::Sps, sps)?;
    }
    out.push(sets.pps.len() as u8);
    for pps in &sets.pps {
        put_nal_u16(&mut out, codec, ParameterSet::Pps, pps)?;
    }
    if let Some((chroma_format, bit_depth_luma_minus8, bit_depth_chroma_minus8)) = chroma {
        out.extend_from_slice(&[
            0xfc | chroma_format,
            0xf8 | bit_depth_luma_minus8,
            0xf8 | bit_depth_chroma_minus8,
            0, // numOfSequenceParameterSetExt
        ]);
    }
    Ok(out)
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) from VPS, SPS and PPS. The
/// profile, tier and level come from the SPS; fields only the VUI or the encoder knows
/// (`min_spatial_segmentation_idc`, `parallelismType`, frame rates) are 0, "unknown".
fn build_hvcc(sets: &ParameterSets) -> Result<Vec<u8>, Fmp4Error> {
    let codec = VideoCodec::H265;
    let sps = first_sps_rbsp(codec, sets)?;
    // 2 bytes NAL header, 1 byte sps_video_parameter_set_id (4) + sps_max_sub_layers_minus1 (3)
    // + sps_temporal_id_nesting_flag (1), then the 12 bytes of the general profile_tier_level.
    let (Some(&layers_byte), Some(general_ptl)) = (sps.get(2), sps.get(3..15)) else {
        return Err(bad_sps(
            codec,
            sps.len(),
            "shorter than its profile, tier and level",
        ));
    };
    let max_sub_layers_minus1 = (layers_byte >> 1) & 7;
    let temporal_id_nesting = layers_byte & 1;
    if max_sub_layers_minus1 > 6 {
        return Err(bad_sps(
            codec,
            sps.len(),
            "sps_max_sub_layers_minus1 over 6",
        ));
    }
    let mut r = BitReader::new(&sps, 15);
    let fields = (|| {
        let n = usize::from(max_sub_layers_minus1);
        let mut present = [(false, false); 6];
        for p in present.iter_mut().take(n) {
            *p = (r.bit()? == 1, r.bit()? == 1);
        }
        if n > 0 {
            r.skip(2 * (8 - n))?; // reserved_zero_2bits
        }
        for &(profile_present, level_present) in present.iter().take(n) {
            if profile_present {
                r.skip(88)?;
            }
            if level_present {
                r.skip(8)?;
            }
        }
        let _sps_seq_parameter_set_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            let _separate_colour_plane_flag = r.bit()?;
        }
        let _pic_width_in_luma_samples = r.ue()?;
        let _pic_height_in_luma_samples = r.ue()?;
        if r.bit()? == 1 {
            // conformance window offsets
            for _ in 0..4 {
                r.ue()?;
            }
        }
        Some((chroma_format_idc, r.ue()?, r.ue()?))
    })();
    let (chroma_format, bit_depth_luma_minus8, bit_depth_chroma_minus8) = match fields {
        Some((c, l, d)) if c <= 3 && l <= 7 && d <= 7 => (c as u8, l as u8, d as u8),
        Some(_) => {
            return Err(bad_sps(
                codec,
                sps.len(),
                "chroma format or bit depth out of range",
            ));
        }
        None => return Err(bad_sps(codec, sps.len(), "cut short before its bit depths")),
    };

    let mut out = Vec::with_capacity(
        40 + [&sets.vps, &sets.sps, &sets.pps]
            .iter()
            .flat_map(|l| l.iter())
            .map(|n| n.len() + 2)
            .sum::<usize>(),
    );
    out.push(1); // configurationVersion
    out.extend_from_slice(general_ptl);
    out.extend_from_slice(&[
        0xf0,
        0x00, // reserved, min_spatial_segmentation_idc = 0
        0xfc, // reserved, parallelismType = 0 (unknown)
        0xfc | chroma_format,
        0xf8 | bit_depth_luma_minus8,
        0xf8 | bit_depth_chroma_minus8,
        0,
        0, // avgFrameRate: unknown
        // constantFrameRate = 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne = 3
        ((max_sub_layers_minus1 + 1) << 3) | (temporal_id_nesting << 2) | 3,
        3, // numOfArrays
    ]);
    for (kind, nal_type, list) in [
        (ParameterSet::Vps, nal::h265::VPS, &sets.vps),
        (ParameterSet::Sps, nal::h265::SPS, &sets.sps),
        (ParameterSet::Pps, nal::h265::PPS, &sets.pps),
    ] {
        let count = u16::try_from(list.len()).map_err(|_| Fmp4Error::BadParameterSet {
            codec,
            parameter_set: kind.name(),
            len: 0,
            reason: "more of them than an hvcC record holds (65535)",
        })?;
        out.push(0x80 | nal_type); // array_completeness = 1 (hvc1), reserved 0, NAL_unit_type
        out.extend_from_slice(&count.to_be_bytes());
        for nal in list {
            put_nal_u16(&mut out, codec, kind, nal)?;
        }
    }
    Ok(out)
}

/// Reads a decoder configuration record, every read bounds-checked.
struct RecordReader<'a> {
    record: &'static str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> RecordReader<'a> {
    fn error(&self, reason: &'static str) -> Fmp4Error {
        Fmp4Error::BadConfigRecord {
            record: self.record,
            offset: self.pos,
            len: self.data.len(),
            reason,
        }
    }

    fn take(&mut self, n: usize, reason: &'static str) -> Result<&'a [u8], Fmp4Error> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or_else(|| self.error(reason))?;
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self, reason: &'static str) -> Result<u8, Fmp4Error> {
        Ok(self.take(1, reason)?[0])
    }

    fn u16(&mut self, reason: &'static str) -> Result<u16, Fmp4Error> {
        let b = self.take(2, reason)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A 16-bit length and that many bytes of NAL unit.
    fn nal(&mut self) -> Result<&'a [u8], Fmp4Error> {
        let len = self.u16("cut short in a NAL unit length")?;
        let at = self.pos;
        let nal = self.take(usize::from(len), "NAL unit longer than the record")?;
        if nal.is_empty() {
            self.pos = at;
            return Err(self.error("empty NAL unit"));
        }
        Ok(nal)
    }
}

/// Parameter sets from an `avcC`, and the record with 4-byte NAL unit lengths.
fn parse_avcc(data: &[u8]) -> Result<(ParameterSets, Vec<u8>), Fmp4Error> {
    let codec = VideoCodec::H264;
    let mut r = RecordReader {
        record: "avcC",
        data,
        pos: 0,
    };
    if r.u8("empty")? != 1 {
        r.pos = 0;
        return Err(r.error("configurationVersion is not 1"));
    }
    r.take(4, "cut short before the SPS count")?; // profile, constraints, level, length size
    let mut sets = ParameterSets::default();
    let num_sps = r.u8("cut short before the SPS count")? & 0x1f;
    for _ in 0..num_sps {
        let at = r.pos;
        let nal = r.nal()?;
        if nal::nal_type(codec, nal) != Some(nal::h264::SPS) {
            r.pos = at;
            return Err(r.error("the SPS list holds a NAL unit that is not an SPS"));
        }
        sets.add(ParameterSet::Sps, nal);
    }
    let num_pps = r.u8("cut short before the PPS count")?;
    for _ in 0..num_pps {
        let at = r.pos;
        let nal = r.nal()?;
        if nal::nal_type(codec, nal) != Some(nal::h264::PPS) {
            r.pos = at;
            return Err(r.error("the PPS list holds a NAL unit that is not a PPS"));
        }
        sets.add(ParameterSet::Pps, nal);
    }
    // Whatever follows (the high profiles' chroma fields, SPS extensions) is kept as is.
    sets.require(codec, "avcC record")?;
    let mut record = data.to_vec();
    if let Some(b) = record.get_mut(4) {
        *b |= 3; // lengthSizeMinusOne = 3
    }
    Ok((sets, record))
}

/// Parameter sets from an `hvcC`, and the record with 4-byte NAL unit lengths.
fn parse_hvcc(data: &[u8]) -> Result<(ParameterSets, Vec<u8>), Fmp4Error> {
    let codec = VideoCodec::H265;
    let mut r = RecordReader {
        record: "hvcC",
        data,
        pos: 0,
    };
    if r.u8("empty")? != 1 {
        r.pos = 0;
        return Err(r.error("configurationVersion is not 1"));
    }
    r.take(21, "cut short before its arrays")?;
    let mut sets = ParameterSets::default();
    let num_arrays = r.u8("cut short before its array count")?;
    for _ in 0..num_arrays {
        let _completeness_and_type = r.u8("cut short in an array header")?;
        let num_nalus = r.u16("cut short in an array header")?;
        for _ in 0..num_nalus {
            let nal = r.nal()?;
            // Trust the NAL unit's own header over the array's type; other arrays (SEI) stay
            // in the record only.
            if let Some(kind) = nal::nal_type(codec, nal).and_then(|t| nal::parameter_set(codec, t))
            {
                sets.add(kind, nal);
            }
        }
    }
    sets.require(codec, "hvcC record")?;
    let mut record = data.to_vec();
    if let Some(b) = record.get_mut(21) {
        *b |= 3; // lengthSizeMinusOne = 3
    }
    Ok((sets, record))
}

/// The RFC 6381 codec string from a decoder configuration record (ISO/IEC 14496-15 annex E).
fn codec_string(codec: VideoCodec, record: &[u8]) -> Result<String, Fmp4Error> {
    match codec {
        VideoCodec::H264 => {
            // profile_idc, constraint flags, level_idc
            let Some(&[profile, constraints, level]) = record.get(1..4) else {
                return Err(Fmp4Error::BadConfigRecord {
                    record: "avcC",
                    offset: 0,
                    len: record.len(),
                    reason: "shorter than its profile and level",
                });
            };
            Ok(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        VideoCodec::H265 => {
            let (Some(&ptl), Some(compat), Some(constraints), Some(&level)) = (
                record.get(1),
                record.get(2..6),
                record.get(6..12),
                record.get(12),
            ) else {
                return Err(Fmp4Error::BadConfigRecord {
                    record: "hvcC",
                    offset: 0,
                    len: record.len(),
                    reason: "shorter than its profile, tier and level",
                });
            };
            let profile_space = ["", "A", "B", "C"][usize::from(ptl >> 6)];
            let tier = if ptl & 0x20 != 0 { 'H' } else { 'L' };
            let profile_idc = ptl & 0x1f;
            // general_profile_compatibility_flag[31] is the most significant bit of the string's
            // number: the record's 32 bits in reverse order.
            let compat =
                u32::from_be_bytes([compat[0], compat[1], compat[2], compat[3]]).reverse_bits();
            let mut s = format!("hvc1.{profile_space}{profile_idc}.{compat:X}.{tier}{level}");
            // The six constraint bytes; trailing zero bytes omitted, but the first kept.
            let kept = constraints
                .iter()
                .rposition(|&b| b != 0)
                .map_or(1, |last| last + 1);
            for b in &constraints[..kept] {
                let _ = write!(s, ".{b:02X}");
            }
            Ok(s)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// x264 (High, level 2.2) for 640x360, as `ffmpeg -c:v libx264` writes it.
    pub(crate) const X264_SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x16, 0xac, 0xb2, 0x01, 0x40, 0x5f, 0xf2, 0xe0, 0x22, 0x00, 0x00, 0x03,
        0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x28, 0x1e, 0x2c, 0x5c, 0x90,
    ];
    pub(crate) const X264_PPS: &[u8] = &[0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0];
    /// x265 (Main, level 2.1) for 640x360: emulation-prevention bytes inside the profile's
    /// compatibility and constraint flags.
    pub(crate) const X265_VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3f, 0x92, 0x80, 0x90,
    ];
    pub(crate) const X265_SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x92, 0xa4, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x14, 0x10,
    ];
    pub(crate) const X265_PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect()
    }

    #[test]
    fn h264_codec_string_and_avcc_from_x264_parameter_sets() {
        let key = annex_b(&[&[0x09, 0x10], X264_SPS, X264_PPS, &[0x65, 0x88, 0x84]]);
        let t = VideoTrack::from_key_frame(VideoCodec::H264, &key, 640, 360).unwrap();
        assert_eq!(t.codec_string(), "avc1.640016");
        assert_eq!(t.mime_type(), "video/mp4; codecs=\"avc1.640016\"");
        let mut want = vec![1, 0x64, 0x00, 0x16, 0xff, 0xe1, 0, X264_SPS.len() as u8];
        want.extend_from_slice(X264_SPS);
        want.extend_from_slice(&[1, 0, X264_PPS.len() as u8]);
        want.extend_from_slice(X264_PPS);
        // High profile: 4:2:0 (chroma_format_idc 1), 8-bit luma and chroma.
        want.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0]);
        assert_eq!(t.config_record().as_ref(), want.as_slice());
        assert_eq!((t.width(), t.height()), (640, 360));
    }

    #[test]
    fn h264_main_profile_record_has_no_chroma_fields() {
        // Main profile (77), level 3.0: only the profile and level bytes are read.
        let sps = [0x67, 0x4d, 0x00, 0x1e, 0x95, 0xa8, 0x28, 0x0b, 0xfe, 0x54];
        let t = VideoTrack::from_key_frame(
            VideoCodec::H264,
            &annex_b(&[&sps, &[0x68, 0xee, 0x3c, 0x80], &[0x65, 0xb8]]),
            640,
            360,
        )
        .unwrap();
        assert_eq!(t.codec_string(), "avc1.4d001e");
        assert_eq!(t.config_record().len(), 6 + 2 + sps.len() + 1 + 2 + 4);
    }

    #[test]
    fn h265_codec_string_reads_the_profile_through_emulation_prevention() {
        let key = annex_b(&[X265_VPS, X265_SPS, X265_PPS, &[0x26, 0x01, 0xaf]]);
        let t = VideoTrack::from_key_frame(VideoCodec::H265, &key, 640, 360).unwrap();
        // Main (1), compatible with Main and Main 10 (flags 1 and 2, reversed: 0x6), Main tier,
        // level 2.1 (63), progressive and frame-only source (0x90).
        assert_eq!(t.codec_string(), "hvc1.1.6.L63.90");
        let r = t.config_record();
        assert_eq!(r[..13], [1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x3f]);
        // 4:2:0, 8 bit, one temporal layer, nested, 4-byte lengths, three arrays.
        assert_eq!(r[16..23], [0xfd, 0xf8, 0xf8, 0, 0, 0b0000_1111, 3]);
        let mut arrays = vec![0xa0, 0, 1, 0, X265_VPS.len() as u8];
        arrays.extend_from_slice(X265_VPS);
        arrays.extend_from_slice(&[0xa1, 0, 1, 0, X265_SPS.len() as u8]);
        arrays.extend_from_slice(X265_SPS);
        arrays.extend_from_slice(&[0xa2, 0, 1, 0, X265_PPS.len() as u8]);
        arrays.extend_from_slice(X265_PPS);
        assert_eq!(r[23..], arrays[..]);
    }

    #[test]
    fn h265_codec_string_examples() {
        let mut record = vec![0u8; 23];
        record[0] = 1;
        // Main, level 3.1, the usual progressive/non-packed/frame-only constraints.
        record[1] = 0x01;
        record[2..6].copy_from_slice(&[0x60, 0, 0, 0]);
        record[6] = 0xb0;
        record[12] = 93;
        assert_eq!(
            codec_string(VideoCodec::H265, &record).unwrap(),
            "hvc1.1.6.L93.B0"
        );
        // Main 10, high tier, level 5.1, profile space 1, all constraint bytes zero.
        record[1] = 0x40 | 0x20 | 0x02;
        record[2..6].copy_from_slice(&[0x20, 0, 0, 0]);
        record[6] = 0;
        record[12] = 153;
        assert_eq!(
            codec_string(VideoCodec::H265, &record).unwrap(),
            "hvc1.A2.4.H153.00"
        );
    }

    #[test]
    fn from_config_takes_records_and_forces_four_byte_lengths() {
        let key = annex_b(&[X264_SPS, X264_PPS, &[0x65, 0x88]]);
        let built = VideoTrack::from_key_frame(VideoCodec::H264, &key, 640, 360).unwrap();
        let mut two_byte = built.config_record().to_vec();
        two_byte[4] = 0xfd; // lengthSizeMinusOne = 1
        let t = VideoTrack::from_config(VideoCodec::H264, &two_byte, 640, 360).unwrap();
        assert_eq!(t, built);

        let key = annex_b(&[X265_VPS, X265_SPS, X265_PPS, &[0x26, 0x01, 0xaf]]);
        let built = VideoTrack::from_key_frame(VideoCodec::H265, &key, 640, 360).unwrap();
        let t = VideoTrack::from_config(VideoCodec::H265, built.config_record(), 640, 360).unwrap();
        assert_eq!(t, built);
        // Annex B parameter sets, as retina's extra_data() with FrameFormat::SIMPLE.
        let sets = annex_b(&[X265_VPS, X265_SPS, X265_PPS]);
        let t = VideoTrack::from_config(VideoCodec::H265, &sets, 640, 360).unwrap();
        assert_eq!(t, built);
    }

    #[test]
    fn missing_parameter_sets_are_named() {
        let cases: [(VideoCodec, Vec<u8>, &str); 4] = [
            (VideoCodec::H264, annex_b(&[X264_PPS, &[0x65, 0x88]]), "SPS"),
            (VideoCodec::H264, annex_b(&[X264_SPS, &[0x65, 0x88]]), "PPS"),
            (VideoCodec::H265, annex_b(&[X265_SPS, X265_PPS]), "VPS"),
            (VideoCodec::H265, annex_b(&[X265_VPS, X265_SPS]), "PPS"),
        ];
        for (codec, key, missing) in cases {
            match VideoTrack::from_key_frame(codec, &key, 640, 360) {
                Err(Fmp4Error::MissingParameterSet {
                    parameter_set,
                    what,
                    ..
                }) => {
                    assert_eq!((parameter_set, what), (missing, "key frame"))
                }
                other => panic!("{codec} without {missing}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_parameter_sets_and_records_are_errors() {
        let short_sps = annex_b(&[&X265_SPS[..10], X265_VPS, X265_PPS]);
        assert!(matches!(
            VideoTrack::from_key_frame(VideoCodec::H265, &short_sps, 640, 360),
            Err(Fmp4Error::BadParameterSet {
                parameter_set: "SPS",
                ..
            })
        ));
        let short_sps = annex_b(&[&X264_SPS[..4], X264_PPS]);
        assert!(matches!(
            VideoTrack::from_key_frame(VideoCodec::H264, &short_sps, 640, 360),
            Err(Fmp4Error::BadParameterSet {
                parameter_set: "SPS",
                ..
            })
        ));
        let key = annex_b(&[X264_SPS, X264_PPS]);
        let record = VideoTrack::from_key_frame(VideoCodec::H264, &key, 640, 360)
            .unwrap()
            .config_record()
            .clone();
        for cut in 0..record.len() - 4 {
            // Every cut before the end of the PPS list fails, with an offset inside the record.
            match VideoTrack::from_config(VideoCodec::H264, &record[..cut], 640, 360) {
                Err(Fmp4Error::BadConfigRecord { offset, len, .. }) => {
                    assert!(offset <= len && len == cut, "cut {cut}: offset {offset}")
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            VideoTrack::from_config(
                VideoCodec::H264,
                &[2, 0x64, 0, 0x16, 0xff, 0xe0, 0],
                640,
                360
            ),
            Err(Fmp4Error::BadConfigRecord {
                reason: "configurationVersion is not 1",
                ..
            })
        ));
    }

    #[test]
    fn dimensions_must_fit_the_sample_entry() {
        let key = annex_b(&[X264_SPS, X264_PPS]);
        for (w, h) in [(0, 360), (640, 0), (65536, 360)] {
            assert!(matches!(
                VideoTrack::from_key_frame(VideoCodec::H264, &key, w, h),
                Err(Fmp4Error::BadDimensions { .. })
            ));
        }
        assert!(VideoTrack::from_key_frame(VideoCodec::H264, &key, 65535, 1).is_ok());
    }
}
