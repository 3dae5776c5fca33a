//! Annex B byte streams (ITU-T H.264 and H.265, Annex B): the NAL units between start codes,
//! their types, and the RBSP of a parameter set (emulation-prevention bytes removed).
//!
//! Parsing is total: any input yields NAL units or an error, never a panic.

use xl_core::camera::VideoCodec;

use crate::Fmp4Error;

/// H.264 NAL unit types (ITU-T H.264 table 7-1) the muxer cares about.
pub mod h264 {
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// H.265 NAL unit types (ITU-T H.265 table 7-1) the muxer cares about.
pub mod h265 {
    /// The first IRAP type (BLA_W_LP); IRAP pictures are types 16 to 23.
    pub const BLA_W_LP: u8 = 16;
    /// The last IRAP type (reserved IRAP VCL NAL type 23).
    pub const RSV_IRAP_23: u8 = 23;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// Prefix SEI.
    pub const PREFIX_SEI: u8 = 39;
}

/// The NAL units of `data`, an Annex B byte stream (3- or 4-byte start codes), without their
/// start codes and without trailing zero bytes (which belong to the byte stream, not to the NAL
/// unit: a NAL unit never ends in `0x00`). Empty NAL units (two start codes in a row) are
/// skipped.
///
/// Fails with [`Fmp4Error::NotAnnexB`] when `data` has no start code or anything but zero bytes
/// before the first one; `what` names the input in that error ("access unit", "key frame").
pub fn nal_units<'a>(data: &'a [u8], what: &'static str) -> Result<NalUnits<'a>, Fmp4Error> {
    let first = find_start_code(data, 0);
    let leading = first.unwrap_or(data.len());
    match first {
        Some(at)
            if data
                .get(..at)
                .is_some_and(|zeros| zeros.iter().all(|&b| b == 0)) =>
        {
            Ok(NalUnits { data, pos: at + 3 })
        }
        _ => Err(Fmp4Error::NotAnnexB { what, leading }),
    }
}

/// Iterator over the NAL units of an Annex B byte stream; see [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Where the next NAL unit starts (just after a start code); `data.len()` at the end.
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let end = match find_start_code(self.data, start) {
                Some(sc) => {
                    self.pos = sc + 3;
                    sc
                }
                None => {
                    self.pos = self.data.len();
                    self.data.len()
                }
            };
            let nal = self.data.get(start..end).unwrap_or_default();
            let trimmed_len = nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count();
            if let Some(nal) = nal.get(..trimmed_len).filter(|n| !n.is_empty()) {
                return Some(nal);
            }
        }
        None
    }
}

/// Index of the first byte of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(w) = data.get(i..i + 3) {
        if w[2] > 1 {
            // No start code can begin at i, i + 1 or i + 2: each needs w[2] to be 0 or 1.
            i += 3;
        } else if w == [0, 0, 1] {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// The NAL unit type from the first byte(s) of `nal`; `None` when the header is cut short.
pub fn nal_type(codec: VideoCodec, nal: &[u8]) -> Option<u8> {
    match codec {
        VideoCodec::H264 => nal.first().map(|&h| h & 0x1f),
        VideoCodec::H265 => {
            if nal.len() < 2 {
                return None;
            }
            nal.first().map(|&h| (h >> 1) & 0x3f)
        }
    }
}

/// Bytes of the NAL unit header: 1 for H.264, 2 for H.265.
pub fn header_len(codec: VideoCodec) -> usize {
    match codec {
        VideoCodec::H264 => 1,
        VideoCodec::H265 => 2,
    }
}

/// Which parameter set a NAL unit type is, if any.
pub fn parameter_set(codec: VideoCodec, nal_type: u8) -> Option<ParameterSet> {
    match (codec, nal_type) {
        (VideoCodec::H264, h264::SPS) | (VideoCodec::H265, h265::SPS) => Some(ParameterSet::Sps),
        (VideoCodec::H264, h264::PPS) | (VideoCodec::H265, h265::PPS) => Some(ParameterSet::Pps),
        (VideoCodec::H265, h265::VPS) => Some(ParameterSet::Vps),
        _ => None,
    }
}

/// Whether a NAL unit type is an access unit delimiter.
pub fn is_access_unit_delimiter(codec: VideoCodec, nal_type: u8) -> bool {
    match codec {
        VideoCodec::H264 => nal_type == h264::AUD,
        VideoCodec::H265 => nal_type == h265::AUD,
    }
}

/// A kind of parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParameterSet {
    /// H.265 video parameter set.
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
}

impl ParameterSet {
    /// "VPS", "SPS" or "PPS", for messages.
    pub fn name(self) -> &'static str {
        match self {
            ParameterSet::Vps => "VPS",
            ParameterSet::Sps => "SPS",
            ParameterSet::Pps => "PPS",
        }
    }
}

/// The RBSP of a NAL unit (header included): every emulation-prevention byte (the `03` of
/// `00 00 03`) removed.
pub fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits, most significant first, and Exp-Golomb codes from an RBSP. Every read returns
/// `None` past the end.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader starting at byte `byte_offset` of `data`.
    pub(crate) fn new(data: &'a [u8], byte_offset: usize) -> Self {
        BitReader {
            data,
            pos: byte_offset.saturating_mul(8),
        }
    }

    pub(crate) fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.data.len().saturating_mul(8) {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// An unsigned Exp-Golomb code, `ue(v)`; `None` past the end or beyond 32 bits.
    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        // 2^zeros - 1 + rest, at most 2^32 - 2 for zeros = 31.
        Some(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nals(data: &[u8]) -> Vec<&[u8]> {
        nal_units(data, "test").unwrap().collect()
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            &[0, 0, 0, 1, 0x67, 0xaa][..],
            &[0, 0, 1, 0x68, 0xbb],
            &[0, 0, 0, 1, 0x65, 0xcc, 0xdd],
        ]
        .concat();
        assert_eq!(
            nals(&data),
            [&[0x67, 0xaa][..], &[0x68, 0xbb], &[0x65, 0xcc, 0xdd]]
        );
    }

    #[test]
    fn leading_zeros_trailing_zeros_and_empty_nal_units_are_not_nal_data() {
        // leading_zero_8bits, an empty NAL unit between two start codes, trailing_zero_8bits.
        let data = [
            0, 0, 0, 0, 0, 1, 0x09, 0x10, 0, 0, 1, 0, 0, 1, 0x41, 0x9a, 0, 0, 0,
        ];
        assert_eq!(nals(&data), [&[0x09, 0x10][..], &[0x41, 0x9a]]);
    }

    #[test]
    fn emulation_prevented_bytes_inside_a_nal_unit_do_not_split_it() {
        let data = [0, 0, 1, 0x67, 0, 0, 3, 1, 0x42];
        assert_eq!(nals(&data), [&[0x67, 0, 0, 3, 1, 0x42][..]]);
    }

    #[test]
    fn bytes_before_the_first_start_code_are_an_error() {
        for (data, leading) in [
            (&[0x65, 0, 0, 1, 0x65][..], 1),
            (&[1, 2, 3][..], 3),
            (&[][..], 0),
            (&[0, 0][..], 2),
        ] {
            match nal_units(data, "access unit") {
                Err(Fmp4Error::NotAnnexB { what, leading: l }) => {
                    assert_eq!((what, l), ("access unit", leading), "{data:?}")
                }
                other => panic!("{data:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn nal_types_of_both_codecs() {
        assert_eq!(nal_type(VideoCodec::H264, &[0x67]), Some(h264::SPS));
        assert_eq!(nal_type(VideoCodec::H264, &[0x65, 0x88]), Some(h264::IDR));
        assert_eq!(nal_type(VideoCodec::H265, &[0x40, 0x01]), Some(h265::VPS));
        assert_eq!(nal_type(VideoCodec::H265, &[0x46, 0x01]), Some(h265::AUD));
        assert_eq!(nal_type(VideoCodec::H265, &[0x26, 0x01]), Some(19)); // IDR_W_RADL
        assert_eq!(nal_type(VideoCodec::H265, &[0x26]), None);
        assert_eq!(nal_type(VideoCodec::H264, &[]), None);
        assert_eq!(
            parameter_set(VideoCodec::H265, h265::PPS),
            Some(ParameterSet::Pps)
        );
        assert_eq!(parameter_set(VideoCodec::H264, h265::VPS), None);
        assert!(is_access_unit_delimiter(VideoCodec::H264, h264::AUD));
        assert!(!is_access_unit_delimiter(VideoCodec::H265, h264::AUD));
    }

    #[test]
    fn rbsp_removes_emulation_prevention_bytes_only() {
        assert_eq!(
            rbsp(&[0x42, 0, 0, 3, 0, 0x90, 0, 0, 3, 3, 0, 0, 3]),
            [0x42, 0, 0, 0, 0x90, 0, 0, 3, 0, 0]
        );
        assert_eq!(rbsp(&[0, 3, 0, 3]), [0, 3, 0, 3]);
    }

    #[test]
    fn exp_golomb_codes() {
        // 1 | 010 | 011 | 00100 | 0000 0001 0000 0000 1 (255)
        let data = [0b1010_0110, 0b0100_0000, 0b0000_1000, 0b0000_0000];
        let mut r = BitReader::new(&data, 0);
        assert_eq!(r.ue(), Some(0));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.ue(), Some(3));
        assert_eq!(r.ue(), Some(255));
        assert_eq!(r.bits(3), Some(0));
        assert_eq!(r.bit(), None);
        let mut r = BitReader::new(&[0; 8], 0);
        assert_eq!(r.ue(), None, "more than 31 leading zeros");
        let mut r = BitReader::new(&[0xff], 2);
        assert_eq!(r.bits(1), None);
        assert_eq!(BitReader::new(&[0xff], 0).skip(9), None);
    }
}
