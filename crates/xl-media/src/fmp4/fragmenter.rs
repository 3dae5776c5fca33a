//! Access units in, media segments (`moof` + `mdat`) out.

use std::num::NonZeroUsize;

use bytes::{BufMut, Bytes, BytesMut};
use xl_core::camera::VideoCodec;
use xl_core::frame::AccessUnit;

use super::boxes::{begin, begin_full, end};
use super::track::ParameterSets;
use super::{TRACK_ID, VideoTrack};
use crate::Fmp4Error;
use crate::nal;

/// The duration given to a sample when no good one is known yet (before the second sample,
/// or when the stream's first time step is bad): 1/25 s.
pub const DEFAULT_SAMPLE_DURATION_90K: u32 = 3_600;

/// The longest time step between two access units taken as it is: 10 s (a camera on a slow
/// sub stream, or frames dropped while the relay was behind). Longer steps, steps of zero and
/// steps back (a reconnect, a camera that reset its RTP clock) are clamped: see [`Fragmenter`].
pub const MAX_SAMPLE_DURATION_90K: u32 = 10 * 90_000;

/// The largest access unit accepted, in bytes (Annex B as received): 64 MiB, far above any
/// camera's key frame.
pub const MAX_ACCESS_UNIT_BYTES: usize = 64 << 20;

/// A fragment's `mdat` payload stays under this many bytes (256 MiB): a fragment is cut early
/// rather than grow past it, whatever the policy.
pub const MAX_FRAGMENT_BYTES: usize = 256 << 20;

/// `sample_depends_on` = 2 (an I picture, depends on nothing), a sync sample.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on` = 1 (depends on others), `sample_is_non_sync_sample` = 1.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// `tfhd` flags: default-base-is-moof (offsets are from the start of the `moof`).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size and sample-flags present.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400;

/// How many samples go in one fragment. In every policy a key frame starts a new fragment, so
/// a fragment holds at most one GOP and, once the first key frame has come, begins at a key
/// frame whenever its GOP fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// One sample per fragment, written the moment its access unit arrives, with the last
    /// pts step as its duration (its own is not known yet): no added latency, for live view.
    /// Decode times add up those durations, so they trail the pts by at most one step and
    /// never drift.
    Immediate,
    /// One sample per fragment, sent as soon as the next access unit tells its duration.
    EverySample,
    /// Up to this many samples per fragment.
    MaxSamples(NonZeroUsize),
    /// A fragment per GOP: cut only before a key frame (the recorder).
    Gop,
}

/// Turns access units into fMP4 media segments for one [`VideoTrack`].
///
/// A sample's duration is the step to the next access unit's `pts_90k`, so a sample leaves in
/// a fragment only once the next access unit has come ([`Fragmenter::push`]), or on
/// [`Fragmenter::flush`]. Decode times start at 0 (or the base given with
/// [`Fragmenter::with_base_decode_time`]) and add up the durations: they follow the pts
/// steps, not the pts themselves, so they never go back.
///
/// **Clamped durations.** A step of 0, a step back (the camera reconnected or reset its
/// clock) or a jump over [`MAX_SAMPLE_DURATION_90K`] does not become the sample's duration:
/// it gets the last good duration instead ([`DEFAULT_SAMPLE_DURATION_90K`] before there is
/// one), and [`Fragmenter::clamped_durations`] counts it. The stream's timeline then simply
/// goes on: playback neither stalls nor jumps.
///
/// **No B-frames.** Decode order is taken as presentation order; every composition offset is 0.
///
/// Access units before the first key frame are dropped (counted by
/// [`Fragmenter::skipped_before_key_frame`]): a media segment must start decodable.
/// An access unit that fails ([`Fmp4Error`]) is dropped and changes nothing.
///
/// The sample data and the per-sample bookkeeping live in buffers reused from fragment to
/// fragment; the output is written into one buffer per fragment.
#[derive(Debug)]
pub struct Fragmenter {
    codec: VideoCodec,
    parameter_sets: ParameterSets,
    policy: FragmentPolicy,
    /// Whether a key frame has been accepted.
    started: bool,
    /// `mfhd` sequence number of the next fragment.
    sequence_number: u32,
    /// Samples waiting for their fragment; the last one's duration is not known yet.
    samples: Vec<Sample>,
    /// Their data, NAL units with 4-byte lengths, one after the other.
    mdat: Vec<u8>,
    /// Decode time of `samples[0]`.
    fragment_start_90k: u64,
    /// Decode time of the last sample in `samples`; when none waits, of the next one pushed.
    tail_start_90k: u64,
    last_pts_90k: Option<i64>,
    last_duration_90k: u32,
    clamped_durations: u64,
    skipped_before_key_frame: u64,
    out: BytesMut,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    size: u32,
    duration_90k: u32,
    flags: u32,
}

impl Fragmenter {
    /// A fragmenter for `track`, decode times from 0, the first fragment numbered 1.
    pub fn new(track: &VideoTrack, policy: FragmentPolicy) -> Fragmenter {
        Fragmenter {
            codec: track.codec(),
            parameter_sets: track.parameter_sets().clone(),
            policy,
            started: false,
            sequence_number: 1,
            samples: Vec::new(),
            mdat: Vec::new(),
            fragment_start_90k: 0,
            tail_start_90k: 0,
            last_pts_90k: None,
            last_duration_90k: DEFAULT_SAMPLE_DURATION_90K,
            clamped_durations: 0,
            skipped_before_key_frame: 0,
            out: BytesMut::new(),
        }
    }

    /// Starts decode times at `base_90k` instead of 0: to continue a recording's timeline with
    /// a new fragmenter (see [`Fragmenter::next_decode_time`]). Call before the first push.
    pub fn with_base_decode_time(mut self, base_90k: u64) -> Fragmenter {
        self.fragment_start_90k = base_90k;
        self.tail_start_90k = base_90k;
        self
    }

    /// Adds one access unit; returns a media segment when the access unit completes one.
    /// See [`Fragmenter::push_sample`].
    pub fn push(&mut self, au: &AccessUnit) -> Result<Option<Bytes>, Fmp4Error> {
        self.push_sample(&au.data, au.pts_90k, au.is_key)
    }

    /// Adds one access unit (`annex_b`: one picture's NAL units with start codes); returns
    /// the fragment of the samples before it when this one closes it (by the policy, or
    /// because it is a key frame).
    ///
    /// Errors drop the access unit and leave the fragmenter as it was:
    /// [`Fmp4Error::ParametersChanged`] when it carries a parameter set the track does not
    /// have (make a new track and fragmenter; [`Fragmenter::flush`] this one first), and
    /// [`Fmp4Error::NotAnnexB`], [`Fmp4Error::EmptyAccessUnit`],
    /// [`Fmp4Error::AccessUnitTooLarge`] for access units that cannot be samples.
    pub fn push_sample(
        &mut self,
        annex_b: &[u8],
        pts_90k: i64,
        is_key: bool,
    ) -> Result<Option<Bytes>, Fmp4Error> {
        if !self.started && !is_key {
            self.skipped_before_key_frame += 1;
            return Ok(None);
        }
        if annex_b.len() > MAX_ACCESS_UNIT_BYTES {
            return Err(Fmp4Error::AccessUnitTooLarge {
                pts_90k,
                len: annex_b.len(),
                max: MAX_ACCESS_UNIT_BYTES,
            });
        }
        let start = self.mdat.len();
        if let Err(e) = write_sample(
            self.codec,
            &self.parameter_sets,
            annex_b,
            pts_90k,
            &mut self.mdat,
        ) {
            self.mdat.truncate(start);
            return Err(e);
        }
        // At most 5/4 of MAX_ACCESS_UNIT_BYTES (a 3-byte start code and a 1-byte NAL unit
        // become 5 bytes): well within u32.
        let size = self.mdat.len() - start;
        self.started = true;
        let flags = if is_key {
            SYNC_SAMPLE_FLAGS
        } else {
            NON_SYNC_SAMPLE_FLAGS
        };

        if self.policy == FragmentPolicy::Immediate {
            let duration = if self.last_pts_90k.is_some() {
                sample_duration(
                    self.last_pts_90k,
                    pts_90k,
                    &mut self.last_duration_90k,
                    &mut self.clamped_durations,
                )
            } else {
                self.last_duration_90k
            };
            self.last_pts_90k = Some(pts_90k);
            self.samples.push(Sample {
                size: size as u32,
                duration_90k: duration,
                flags,
            });
            self.fragment_start_90k = self.tail_start_90k;
            let fragment = self.write_fragment(self.mdat.len());
            self.mdat.clear();
            self.samples.clear();
            self.tail_start_90k = self.tail_start_90k.saturating_add(u64::from(duration));
            self.fragment_start_90k = self.tail_start_90k;
            return Ok(Some(fragment));
        }

        let mut fragment = None;
        if let Some(last) = self.samples.last_mut() {
            let duration = sample_duration(
                self.last_pts_90k,
                pts_90k,
                &mut self.last_duration_90k,
                &mut self.clamped_durations,
            );
            last.duration_90k = duration;
            let next_start = self.tail_start_90k.saturating_add(u64::from(duration));
            let cut = match self.policy {
                FragmentPolicy::Immediate | FragmentPolicy::EverySample => true,
                FragmentPolicy::MaxSamples(n) => is_key || self.samples.len() >= n.get(),
                FragmentPolicy::Gop => is_key,
            } || start + size > MAX_FRAGMENT_BYTES;
            if cut {
                fragment = Some(self.write_fragment(start));
                self.mdat.drain(..start);
                self.samples.clear();
                self.fragment_start_90k = next_start;
            }
            self.tail_start_90k = next_start;
        } else {
            self.fragment_start_90k = self.tail_start_90k;
        }
        self.samples.push(Sample {
            size: size as u32,
            duration_90k: 0,
            flags,
        });
        self.last_pts_90k = Some(pts_90k);
        Ok(fragment)
    }

    /// The fragment of every waiting sample, the last one given the last good duration (its
    /// real one needs the next access unit); `None` when nothing waits. For the end of a
    /// stream or recording segment, or before switching to a new track.
    pub fn flush(&mut self) -> Option<Bytes> {
        let last = self.samples.last_mut()?;
        last.duration_90k = self.last_duration_90k;
        self.tail_start_90k = self
            .tail_start_90k
            .saturating_add(u64::from(self.last_duration_90k));
        let fragment = self.write_fragment(self.mdat.len());
        self.mdat.clear();
        self.samples.clear();
        self.fragment_start_90k = self.tail_start_90k;
        Some(fragment)
    }

    /// Decode time (90 kHz) at which the next fragment starts: of the first waiting sample, or
    /// after [`Fragmenter::flush`] of the next sample pushed. The base decode time for a
    /// fragmenter that continues this one's timeline.
    pub fn next_decode_time(&self) -> u64 {
        if self.samples.is_empty() {
            self.tail_start_90k
        } else {
            self.fragment_start_90k
        }
    }

    /// Decode time (90 kHz) of the last access unit accepted, while it waits for its fragment
    /// (its duration is not known yet); `None` when no sample waits. With the decode time its
    /// fragment ends at ([`Fragmenter::next_decode_time`] once it has left), it gives the last
    /// sample's duration: what a recorder adds to that unit's receipt time for a segment's end.
    pub fn last_sample_decode_time(&self) -> Option<u64> {
        (!self.samples.is_empty()).then_some(self.tail_start_90k)
    }

    /// The `mfhd` sequence number the next fragment gets (the first is 1).
    pub fn next_sequence_number(&self) -> u32 {
        self.sequence_number
    }

    /// Samples waiting for their fragment.
    pub fn pending_samples(&self) -> usize {
        self.samples.len()
    }

    /// Time steps that were clamped (zero, backwards, or over [`MAX_SAMPLE_DURATION_90K`]).
    pub fn clamped_durations(&self) -> u64 {
        self.clamped_durations
    }

    /// Access units dropped because no key frame had come yet.
    pub fn skipped_before_key_frame(&self) -> u64 {
        self.skipped_before_key_frame
    }

    /// Writes `moof` + `mdat` for every waiting sample, whose data are `self.mdat[..mdat_len]`.
    fn write_fragment(&mut self, mdat_len: usize) -> Bytes {
        let out = &mut self.out;
        let n = self.samples.len();
        out.reserve(8 + 16 + 8 + 16 + 20 + 20 + 12 * n + 8 + mdat_len);

        let moof = begin(out, b"moof");
        let mfhd = begin_full(out, b"mfhd", 0, 0);
        out.put_u32(self.sequence_number);
        end(out, mfhd);
        let traf = begin(out, b"traf");
        let tfhd = begin_full(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        out.put_u32(TRACK_ID);
        end(out, tfhd);
        let tfdt = begin_full(out, b"tfdt", 1, 0); // version 1: 64-bit decode time
        out.put_u64(self.fragment_start_90k);
        end(out, tfdt);
        let trun = begin_full(out, b"trun", 0, TRUN_FLAGS);
        // n <= MAX_FRAGMENT_BYTES / 5 (each sample holds a NAL unit with its length).
        out.put_u32(n as u32); // sample_count
        let data_offset_at = out.len();
        out.put_i32(0); // data_offset, patched below
        for s in &self.samples {
            out.put_u32(s.duration_90k);
            out.put_u32(s.size);
            out.put_u32(s.flags);
        }
        end(out, trun);
        end(out, traf);
        end(out, moof);

        // The data start just after the mdat header, counted from the moof's first byte.
        let data_offset = (out.len() - moof + 8) as i32;
        out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        let mdat = begin(out, b"mdat");
        out.put_slice(&self.mdat[..mdat_len]);
        end(out, mdat);

        self.sequence_number = self.sequence_number.wrapping_add(1).max(1);
        out.split().freeze()
    }
}

/// Appends the sample of one access unit to `mdat`: each NAL unit with a 4-byte length,
/// delimiters and parameter sets left out. On error, `mdat` may hold part of it.
fn write_sample(
    codec: VideoCodec,
    parameter_sets: &ParameterSets,
    annex_b: &[u8],
    pts_90k: i64,
    mdat: &mut Vec<u8>,
) -> Result<(), Fmp4Error> {
    let start = mdat.len();
    for unit in nal::nal_units(annex_b, "access unit")? {
        if let Some(t) = nal::nal_type(codec, unit) {
            if nal::is_access_unit_delimiter(codec, t) {
                continue;
            }
            if let Some(kind) = nal::parameter_set(codec, t) {
                if !parameter_sets.contains(kind, unit) {
                    return Err(Fmp4Error::ParametersChanged {
                        pts_90k,
                        codec,
                        parameter_set: kind.name(),
                    });
                }
                continue;
            }
        }
        let len = u32::try_from(unit.len()).map_err(|_| Fmp4Error::AccessUnitTooLarge {
            pts_90k,
            len: annex_b.len(),
            max: MAX_ACCESS_UNIT_BYTES,
        })?;
        mdat.extend_from_slice(&len.to_be_bytes());
        mdat.extend_from_slice(unit);
    }
    if mdat.len() == start {
        return Err(Fmp4Error::EmptyAccessUnit { pts_90k });
    }
    Ok(())
}

/// The duration of the sample at `last_pts` given the next one's pts: the step when it is
/// good, else the last good duration (and one more clamped step).
fn sample_duration(
    last_pts_90k: Option<i64>,
    pts_90k: i64,
    last_good_90k: &mut u32,
    clamped: &mut u64,
) -> u32 {
    let step = last_pts_90k
        .and_then(|last| pts_90k.checked_sub(last))
        .and_then(|d| u32::try_from(d).ok())
        .filter(|&d| (1..=MAX_SAMPLE_DURATION_90K).contains(&d));
    match step {
        Some(d) => {
            *last_good_90k = d;
            d
        }
        None => {
            *clamped += 1;
            *last_good_90k
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fmp4::boxes::parse::{self, u32_at, u64_at};
    use crate::fmp4::tests::{annex_b, h264_track, h265_track};
    use crate::fmp4::track::tests::{X264_PPS, X264_SPS, X265_PPS, X265_SPS, X265_VPS};

    #[test]
    fn immediate_fragments_leave_with_their_access_unit_and_never_drift() {
        let track = h264_track();
        let mut f = Fragmenter::new(&track, FragmentPolicy::Immediate);
        let key = annex_b(&[X264_SPS, X264_PPS, &[0x65, 0x88, 0x84]]);
        let p = annex_b(&[&[0x41, 0x9a, 0x02]]);
        // 10 fps, then a 20 fps stretch, then a camera clock reset (pts backwards).
        let pts = [0, 9_000, 18_000, 22_500, 27_000, 31_500, 100, 4_600];
        let mut times = Vec::new();
        for (i, &t) in pts.iter().enumerate() {
            let data = if i == 0 { &key } else { &p };
            let fragment = f
                .push_sample(data, t, i == 0)
                .unwrap()
                .expect("a fragment at once");
            let parsed = parse_fragment(&fragment);
            assert_eq!(parsed.samples.len(), 1);
            times.push((parsed.base_decode_time, parsed.samples[0].0));
        }
        // Each sample lasts the step that led to it (the first the default); decode times add
        // them up, so each is the previous plus the previous one's duration.
        assert_eq!(
            times,
            [
                (0, DEFAULT_SAMPLE_DURATION_90K),
                (3_600, 9_000),
                (12_600, 9_000),
                (21_600, 4_500),
                (26_100, 4_500),
                (30_600, 4_500),
                (35_100, 4_500), // the step back is clamped to the last good one
                (39_600, 4_500),
            ]
        );
        assert_eq!(f.clamped_durations(), 1);
        assert_eq!(f.pending_samples(), 0);
        assert!(f.flush().is_none());
    }

    /// What a media segment says, checked for consistency on the way.
    #[derive(Debug)]
    struct Parsed {
        sequence_number: u32,
        base_decode_time: u64,
        /// (duration, size, flags) of each sample.
        samples: Vec<(u32, u32, u32)>,
        /// Each sample's data.
        data: Vec<Vec<u8>>,
    }

    fn parse_fragment(fragment: &[u8]) -> Parsed {
        let top = parse::boxes(fragment);
        assert_eq!(top.len(), 2);
        let (moof, mdat) = (top[0], top[1]);
        assert_eq!((&moof.kind, &mdat.kind), (b"moof", b"mdat"));
        let kinds: Vec<_> = parse::boxes(moof.body)
            .into_iter()
            .map(|b| b.kind)
            .collect();
        assert_eq!(kinds, [*b"mfhd", *b"traf"]);
        let mfhd = parse::path(moof.body, &[b"mfhd"]);
        assert_eq!(u32_at(mfhd.body, 0), 0, "mfhd version and flags");
        let traf = parse::path(moof.body, &[b"traf"]);
        let kinds: Vec<_> = parse::boxes(traf.body)
            .into_iter()
            .map(|b| b.kind)
            .collect();
        assert_eq!(kinds, [*b"tfhd", *b"tfdt", *b"trun"]);
        let tfhd = parse::path(traf.body, &[b"tfhd"]);
        assert_eq!(
            tfhd.body,
            [0, 2, 0, 0, 0, 0, 0, TRACK_ID as u8],
            "default-base-is-moof, track 1"
        );
        let tfdt = parse::path(traf.body, &[b"tfdt"]);
        assert_eq!(tfdt.body.len(), 12);
        assert_eq!(u32_at(tfdt.body, 0), 0x0100_0000, "tfdt version 1");
        let trun = parse::path(traf.body, &[b"trun"]);
        assert_eq!(
            u32_at(trun.body, 0),
            0x0000_0701,
            "trun version 0, its four fields present"
        );
        let count = u32_at(trun.body, 4) as usize;
        assert_eq!(trun.body.len(), 12 + 12 * count);
        // The data offset counts from the moof's first byte to the mdat's first data byte.
        let data_offset = u32_at(trun.body, 8) as usize;
        let mdat_data_at = moof.whole.len() + 8;
        assert_eq!(data_offset, mdat_data_at);
        let samples: Vec<_> = (0..count)
            .map(|i| {
                let at = 12 + 12 * i;
                (
                    u32_at(trun.body, at),
                    u32_at(trun.body, at + 4),
                    u32_at(trun.body, at + 8),
                )
            })
            .collect();
        let total: usize = samples.iter().map(|s| s.1 as usize).sum();
        assert_eq!(total, mdat.body.len(), "sample sizes fill the mdat");
        let mut data = Vec::new();
        let mut at = data_offset;
        for s in &samples {
            data.push(fragment[at..at + s.1 as usize].to_vec());
            at += s.1 as usize;
        }
        Parsed {
            sequence_number: u32_at(mfhd.body, 4),
            base_decode_time: u64_at(tfdt.body, 4),
            samples,
            data,
        }
    }

    /// The NAL units of length-prefixed sample data, checking that the lengths tile it.
    fn length_prefixed(mut data: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let len = u32_at(data, 0) as usize;
            out.push(&data[4..4 + len]);
            data = &data[4 + len..];
        }
        out
    }

    const AUD: &[u8] = &[0x09, 0xf0];
    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, 0x7f];
    const P: &[u8] = &[0x41, 0x9a, 0x02, 0x10];

    fn h264_key() -> Vec<u8> {
        annex_b(&[AUD, X264_SPS, X264_PPS, SEI, IDR])
    }

    fn h264_p() -> Vec<u8> {
        annex_b(&[AUD, P])
    }

    #[test]
    fn samples_are_length_prefixed_without_delimiters_or_parameter_sets() {
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::EverySample);
        // 3-byte start codes and trailing zeros too.
        let mut key = vec![0, 0, 1];
        key.extend_from_slice(AUD);
        key.extend_from_slice(&annex_b(&[X264_SPS, X264_PPS]));
        key.extend_from_slice(&[0, 0, 1]);
        key.extend_from_slice(SEI);
        key.extend_from_slice(&[0, 0, 0, 1]);
        key.extend_from_slice(IDR);
        key.extend_from_slice(&[0, 0]);
        assert!(f.push_sample(&key, 1000, true).unwrap().is_none());
        let fragment = f.push_sample(&h264_p(), 4600, false).unwrap().unwrap();
        let p = parse_fragment(&fragment);
        assert_eq!(
            p.samples,
            [(
                3600,
                (4 + SEI.len() + 4 + IDR.len()) as u32,
                SYNC_SAMPLE_FLAGS
            )]
        );
        assert_eq!(length_prefixed(&p.data[0]), [SEI, IDR]);

        let fragment = f.flush().unwrap();
        let p = parse_fragment(&fragment);
        assert_eq!(
            p.samples,
            [(3600, (4 + P.len()) as u32, NON_SYNC_SAMPLE_FLAGS)]
        );
        assert_eq!(length_prefixed(&p.data[0]), [P]);
        assert_eq!(f.flush(), None);
    }

    #[test]
    fn h265_samples_drop_vps_sps_pps_and_delimiters() {
        let aud: &[u8] = &[0x46, 0x01, 0x50];
        let sei: &[u8] = &[0x4e, 0x01, 0x05, 0x02, 0xaa, 0xbb, 0x80];
        let idr: &[u8] = &[0x26, 0x01, 0xaf, 0x09, 0x40];
        let trail: &[u8] = &[0x02, 0x01, 0xd0, 0x0a];
        let mut f = Fragmenter::new(&h265_track(), FragmentPolicy::Gop);
        f.push_sample(
            &annex_b(&[aud, X265_VPS, X265_SPS, X265_PPS, sei, idr]),
            0,
            true,
        )
        .unwrap();
        f.push_sample(&annex_b(&[aud, trail]), 3000, false).unwrap();
        let p = parse_fragment(&f.flush().unwrap());
        assert_eq!(length_prefixed(&p.data[0]), [sei, idr]);
        assert_eq!(length_prefixed(&p.data[1]), [trail]);
        assert_eq!(
            p.samples.iter().map(|s| s.2).collect::<Vec<_>>(),
            [SYNC_SAMPLE_FLAGS, NON_SYNC_SAMPLE_FLAGS]
        );
    }

    #[test]
    fn one_sample_fragments_come_out_once_the_next_pts_is_known() {
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::EverySample);
        let mut parsed = Vec::new();
        for i in 0..25i64 {
            let au = if i % 10 == 0 { h264_key() } else { h264_p() };
            let out = f.push_sample(&au, 90_000 + i * 9_000, i % 10 == 0).unwrap();
            assert_eq!(out.is_some(), i > 0, "sample {i}");
            parsed.extend(out.map(|b| parse_fragment(&b)));
            assert_eq!(f.pending_samples(), 1);
        }
        parsed.push(parse_fragment(&f.flush().unwrap()));
        assert_eq!(parsed.len(), 25);
        for (i, p) in parsed.iter().enumerate() {
            assert_eq!(p.sequence_number, i as u32 + 1);
            // Decode times start at 0, whatever the first pts.
            assert_eq!(p.base_decode_time, i as u64 * 9_000);
            assert_eq!(p.samples.len(), 1);
            assert_eq!(p.samples[0].0, 9_000);
            let key = i % 10 == 0;
            assert_eq!(p.samples[0].2 == SYNC_SAMPLE_FLAGS, key, "fragment {i}");
        }
        assert_eq!(f.next_decode_time(), 25 * 9_000);
        assert_eq!(f.next_sequence_number(), 26);
        assert_eq!(f.clamped_durations(), 0);
    }

    #[test]
    fn a_key_frame_starts_a_new_fragment_in_every_policy() {
        let three = FragmentPolicy::MaxSamples(NonZeroUsize::new(3).unwrap());
        // GOPs of 5: fragments of 3 + 2 samples, or of 5 per GOP.
        for (policy, sizes) in [
            (three, vec![3, 2, 3, 2, 3]),
            (FragmentPolicy::Gop, vec![5, 5, 3]),
        ] {
            let mut f = Fragmenter::new(&h264_track(), policy);
            let mut got = Vec::new();
            for i in 0..13i64 {
                let key = i % 5 == 0;
                let au = if key { h264_key() } else { h264_p() };
                if let Some(b) = f.push_sample(&au, i * 3_000, key).unwrap() {
                    got.push(parse_fragment(&b));
                }
            }
            got.extend(f.flush().map(|b| parse_fragment(&b)));
            assert_eq!(
                got.iter().map(|p| p.samples.len()).collect::<Vec<_>>(),
                sizes,
                "{policy:?}"
            );
            let mut decode_time = 0;
            for p in &got {
                assert_eq!(p.base_decode_time, decode_time);
                decode_time += p.samples.iter().map(|s| u64::from(s.0)).sum::<u64>();
            }
            assert_eq!(decode_time, 13 * 3_000);
            // Every fragment that starts at a multiple of 5 samples starts with the key frame.
            let mut index = 0;
            for p in &got {
                assert_eq!(p.samples[0].2 == SYNC_SAMPLE_FLAGS, index % 5 == 0);
                index += p.samples.len();
            }
        }
    }

    #[test]
    fn backwards_zero_and_huge_pts_steps_get_the_last_good_duration() {
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::Gop);
        let pts = [
            0,
            3_000,
            6_000,
            6_000,               // no step
            1_000,               // back: a reconnect
            4_000,               // good again, 3000
            4_000 + 11 * 90_000, // 11 s ahead
            i64::MIN,            // overflowing step
            i64::MAX,
        ];
        for (i, &p) in pts.iter().enumerate() {
            f.push_sample(&if i == 0 { h264_key() } else { h264_p() }, p, i == 0)
                .unwrap();
        }
        let got = parse_fragment(&f.flush().unwrap());
        let durations: Vec<u32> = got.samples.iter().map(|s| s.0).collect();
        assert_eq!(
            durations,
            [
                3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000
            ]
        );
        assert_eq!(f.clamped_durations(), 5);

        // Before any good step: the default.
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::EverySample);
        f.push_sample(&h264_key(), 500, true).unwrap();
        let p = parse_fragment(&f.push_sample(&h264_p(), 100, false).unwrap().unwrap());
        assert_eq!(p.samples[0].0, DEFAULT_SAMPLE_DURATION_90K);
        // A real step of up to MAX_SAMPLE_DURATION_90K is kept (a slow camera, dropped frames).
        let p = parse_fragment(
            &f.push_sample(&h264_p(), 100 + i64::from(MAX_SAMPLE_DURATION_90K), false)
                .unwrap()
                .unwrap(),
        );
        assert_eq!(p.samples[0].0, MAX_SAMPLE_DURATION_90K);
    }

    #[test]
    fn access_units_before_the_first_key_frame_are_skipped() {
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::EverySample);
        assert!(f.push_sample(&h264_p(), 0, false).unwrap().is_none());
        assert!(f.push_sample(&h264_p(), 3_000, false).unwrap().is_none());
        assert_eq!((f.skipped_before_key_frame(), f.pending_samples()), (2, 0));
        f.push_sample(&h264_key(), 6_000, true).unwrap();
        let p = parse_fragment(&f.push_sample(&h264_p(), 9_000, false).unwrap().unwrap());
        assert_eq!((p.base_decode_time, p.samples[0].2), (0, SYNC_SAMPLE_FLAGS));
    }

    #[test]
    fn changed_parameter_sets_are_refused_and_leave_the_fragmenter_as_it_was() {
        let mut f = Fragmenter::new(&h264_track(), FragmentPolicy::EverySample);
        f.push_sample(&h264_key(), 0, true).unwrap();
        // The camera switched to another resolution: another SPS.
        let mut other_sps = X264_SPS.to_vec();
        other_sps[5] ^= 0x10;
        let changed = annex_b(&[&other_sps, X264_PPS, IDR]);
        match f.push_sample(&changed, 3_000, true) {
            Err(Fmp4Error::ParametersChanged {
                pts_90k: 3_000,
                parameter_set: "SPS",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(f.pending_samples(), 1);
        // The key frame's own parameter sets, again, are fine.
        let p = parse_fragment(&f.push_sample(&h264_key(), 3_000, true).unwrap().unwrap());
        assert_eq!((p.sequence_number, p.samples[0].0), (1, 3_000));
        assert_eq!(length_prefixed(&p.data[0]), [SEI, IDR]);
    }

    #[test]
    fn unusable_access_units_are_errors_that_change_nothing() {
        let mut f = Fragmenter::new(
            &h264_track(),
            FragmentPolicy::MaxSamples(NonZeroUsize::new(4).unwrap()),
        );
        f.push_sample(&h264_key(), 0, true).unwrap();
        assert!(matches!(
            f.push_sample(&annex_b(&[AUD, X264_SPS]), 3_000, false),
            Err(Fmp4Error::EmptyAccessUnit { pts_90k: 3_000 })
        ));
        assert!(matches!(
            f.push_sample(&[0x41, 0x9a, 0, 0, 1, 0x41], 3_000, false),
            Err(Fmp4Error::NotAnnexB { leading: 2, .. })
        ));
        assert!(matches!(
            f.push_sample(&[], 3_000, false),
            Err(Fmp4Error::NotAnnexB { leading: 0, .. })
        ));
        assert_eq!(f.pending_samples(), 1);
        f.push_sample(&h264_p(), 3_000, false).unwrap();
        let p = parse_fragment(&f.flush().unwrap());
        assert_eq!(
            p.samples.iter().map(|s| s.0).collect::<Vec<_>>(),
            [3_000, 3_000]
        );
        assert_eq!(length_prefixed(&p.data[0]), [SEI, IDR]);
        assert_eq!(length_prefixed(&p.data[1]), [P]);
        assert_eq!(f.clamped_durations(), 0);
    }

    #[test]
    fn base_decode_time_and_flush_continue_one_timeline() {
        let mut f =
            Fragmenter::new(&h264_track(), FragmentPolicy::Gop).with_base_decode_time(1 << 40);
        f.push_sample(&h264_key(), 0, true).unwrap();
        f.push_sample(&h264_p(), 4_500, false).unwrap();
        assert_eq!(f.next_decode_time(), 1 << 40);
        assert_eq!(f.last_sample_decode_time(), Some((1 << 40) + 4_500));
        let p = parse_fragment(&f.flush().unwrap());
        assert_eq!(f.last_sample_decode_time(), None);
        assert_eq!(p.base_decode_time, 1 << 40, "64-bit decode time");
        assert_eq!(f.next_decode_time(), (1 << 40) + 9_000);
        // A recorder's next segment: a new fragmenter from where this one ended.
        let mut g = Fragmenter::new(&h264_track(), FragmentPolicy::Gop)
            .with_base_decode_time(f.next_decode_time());
        g.push_sample(&h264_key(), 9_000, true).unwrap();
        assert_eq!(
            parse_fragment(&g.flush().unwrap()).base_decode_time,
            (1 << 40) + 9_000
        );
    }

    proptest! {
        /// Arbitrary bytes as access units never panic, and whatever comes out is well formed.
        #[test]
        fn arbitrary_access_units_never_break_the_output(
            units in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(3), any::<u8>()], 0..64),
                 any::<i64>(), any::<bool>()),
                0..24),
            policy in prop_oneof![
                Just(FragmentPolicy::EverySample),
                Just(FragmentPolicy::Gop),
                (1usize..5).prop_map(|n| FragmentPolicy::MaxSamples(NonZeroUsize::new(n).unwrap())),
            ],
        ) {
            let mut f = Fragmenter::new(&h265_track(), policy);
            let mut samples = 0;
            for (data, pts, key) in &units {
                let mut au = vec![0, 0, 1];
                au.extend_from_slice(data);
                if let Ok(Some(b)) = f.push_sample(&au, *pts, *key) {
                    samples += parse_fragment(&b).samples.len();
                }
                let _ = f.push_sample(data, *pts, *key);
            }
            let pending = f.pending_samples();
            if let Some(b) = f.flush() {
                let p = parse_fragment(&b);
                prop_assert_eq!(p.samples.len(), pending);
                samples += pending;
            }
            prop_assert!(samples <= 2 * units.len());
        }

        /// Arbitrary bytes as key frames and records never panic.
        #[test]
        fn arbitrary_parameter_sets_and_records_never_panic(
            data in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(3), any::<u8>()], 0..128),
        ) {
            for codec in [VideoCodec::H264, VideoCodec::H265] {
                for prefix in [&[0u8, 0, 1][..], &[1], &[]] {
                    let bytes = [prefix, &data].concat();
                    let _ = VideoTrack::from_key_frame(codec, &bytes, 640, 360);
                    let _ = VideoTrack::from_config(codec, &bytes, 640, 360);
                }
            }
        }
    }
}
