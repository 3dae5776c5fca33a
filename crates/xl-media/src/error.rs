use xl_core::ErrorKind;
use xl_core::camera::VideoCodec;

/// Why a track could not be described or an access unit could not be muxed. Every variant is
/// about the input (the camera's stream); none leaves a [`crate::fmp4::Fragmenter`] in a
/// broken state.
#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    /// Bytes that should be an Annex B stream have no start code, or other bytes than zeros
    /// before the first one.
    #[error("{what} is not Annex B: {leading} byte(s) before the first start code")]
    NotAnnexB {
        /// What the bytes were: "access unit", "key frame", "parameter sets".
        what: &'static str,
        /// Bytes before the first start code (all of them when there is none).
        leading: usize,
    },
    /// The key frame (or parameter-set list) lacks a parameter set the decoder configuration
    /// record needs.
    #[error("the {codec} {what} has no {parameter_set}")]
    MissingParameterSet {
        codec: VideoCodec,
        what: &'static str,
        /// "VPS", "SPS" or "PPS".
        parameter_set: &'static str,
    },
    /// A parameter set too short for the fields read from it, or one that does not fit in a
    /// decoder configuration record.
    #[error("bad {codec} {parameter_set} ({len} bytes): {reason}")]
    BadParameterSet {
        codec: VideoCodec,
        parameter_set: &'static str,
        len: usize,
        reason: &'static str,
    },
    /// A decoder configuration record (`avcC`, `hvcC`) that does not parse.
    #[error("bad {record} decoder configuration record at byte {offset} of {len}: {reason}")]
    BadConfigRecord {
        /// "avcC" or "hvcC".
        record: &'static str,
        offset: usize,
        len: usize,
        reason: &'static str,
    },
    /// Width or height 0 or over 65535 (the sample entry holds 16 bits).
    #[error("video size {width}x{height} out of range (each 1 to 65535)")]
    BadDimensions { width: u32, height: u32 },
    /// Nothing left to put in a sample once delimiters and parameter sets are dropped.
    #[error("access unit at pts {pts_90k} has no picture data (only parameter sets or delimiters)")]
    EmptyAccessUnit { pts_90k: i64 },
    /// One access unit larger than a sample may be.
    #[error("access unit at pts {pts_90k} is {len} bytes, over the limit of {max}")]
    AccessUnitTooLarge {
        pts_90k: i64,
        len: usize,
        max: usize,
    },
    /// The stream carries a parameter set that is not in the track's decoder configuration
    /// record: the camera changed its encoding (resolution, profile) or reconnected with other
    /// settings. Dropping it would leave the samples undecodable: make a new
    /// [`crate::fmp4::VideoTrack`] from this key frame, send its init segment, and continue with
    /// a new [`crate::fmp4::Fragmenter`].
    #[error(
        "access unit at pts {pts_90k} carries a {codec} {parameter_set} that is not in the track's \
         decoder configuration: the stream changed; start a new track from its key frame"
    )]
    ParametersChanged {
        pts_90k: i64,
        codec: VideoCodec,
        parameter_set: &'static str,
    },
}

impl Fmp4Error {
    /// Every muxing error is about the stream's bytes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Fmp4Error::NotAnnexB { .. }
            | Fmp4Error::MissingParameterSet { .. }
            | Fmp4Error::BadParameterSet { .. }
            | Fmp4Error::BadConfigRecord { .. }
            | Fmp4Error::BadDimensions { .. }
            | Fmp4Error::EmptyAccessUnit { .. }
            | Fmp4Error::AccessUnitTooLarge { .. }
            | Fmp4Error::ParametersChanged { .. } => ErrorKind::InvalidInput,
        }
    }
}
