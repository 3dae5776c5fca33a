//! Playback clips: the recording of a time range as one MP4, laid out before any byte is sent
//! and read from the segment files on demand, so it can be served with HTTP byte ranges.
//!
//! ```text
//! clip = init segment of the first segment used (ftyp + moov, unchanged)
//!      + sidx (version 1: one reference per fragment, its size and duration, each a key frame)
//!      + every chosen fragment's moof + mdat, in order
//! ```
//!
//! Only two fields of each `moof` are rewritten, in place (same sizes, so every offset stays
//! valid): the `mfhd` sequence number (1, 2, 3, ... in the clip) and the `tfdt` base decode
//! time, so the clip's timeline starts at 0 and each fragment starts where the one before it
//! ended. Gaps between segments and between recording sessions collapse: the clip plays
//! continuously. The `mdat`s are copied from the files unchanged.
//!
//! The `sidx` is what a browser's progressive player (Chromium's FFmpeg demuxer) reads to know
//! the duration (the init segment says "unknown") and to seek with byte-range requests.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use tracing::debug;
use xl_media::fmp4::{TIMESCALE, TRACK_ID};

use crate::RecordError;
use crate::repair::{ScannedFragment, scan_file};

/// The most fragments a clip holds: the `sidx`'s reference count is 16 bits (at one fragment
/// a 2 s group of pictures, 36 hours). A longer range ends the clip there.
const MAX_FRAGMENTS: usize = u16::MAX as usize;

/// The largest init segment taken from a file (ours are under 1 KiB).
const MAX_INIT_BYTES: u64 = 2 << 20;

/// Bytes copied from a segment file at a time.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// `sidx` version 1 before its references: header, version and flags, reference_ID,
/// timescale, earliest_presentation_time (64 bits), first_offset (64 bits), reserved,
/// reference_count.
const SIDX_HEADER_BYTES: usize = 8 + 4 + 4 + 4 + 8 + 8 + 2 + 2;
/// One `sidx` reference: type and size, duration, SAP fields.
const SIDX_REFERENCE_BYTES: usize = 12;
/// The largest `referenced_size` a reference can give (31 bits).
const MAX_REFERENCED_BYTES: u64 = (1 << 31) - 1;

/// One segment of a recording, from its row in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    /// The file, absolute (the data directory joined with the row's `path`).
    pub path: PathBuf,
    /// Wall time of the segment's first sample.
    pub start_at: Timestamp,
    /// Decode time (90 kHz) of that sample in the file: a fragment whose `tfdt` is `b` starts
    /// at `start_at + (b - media_start_90k) / 90000` seconds.
    pub media_start_90k: u64,
}

/// The recording of a time range as one MP4 (see the module documentation): planned by
/// [`Clip::plan`], which reads only the segments' box headers, then read in byte ranges by
/// [`Clip::write_range`], which reads the segment files as it goes (a clip is never held in
/// memory; its layout is).
///
/// Reading is blocking file I/O: call it where blocking is fine (not on an async runtime's
/// worker).
pub struct Clip {
    /// The init segment and the `sidx`: the bytes before the first fragment.
    head: Vec<u8>,
    /// The segment files the fragments come from.
    sources: Vec<PathBuf>,
    parts: Vec<Part>,
    len: u64,
    start_at: Timestamp,
    end_at: Timestamp,
    duration_90k: u64,
}

/// One fragment of a clip.
#[derive(Debug, Clone)]
struct Part {
    /// Index into `Clip::sources`.
    source: usize,
    /// Where its `moof` starts in its file, and in the clip.
    file_offset: u64,
    clip_offset: u64,
    moof_bytes: u64,
    mdat_bytes: u64,
    /// Where the sequence number and the decode time lie in the `moof`, and their new values.
    sequence_at: usize,
    sequence_number: u32,
    decode_time_at: usize,
    decode_time_wide: bool,
    decode_time_90k: u64,
    /// Its samples' durations added up: within 32 bits.
    duration_90k: u32,
}

impl Part {
    fn bytes(&self) -> u64 {
        self.moof_bytes + self.mdat_bytes
    }
}

// A planned clip always holds a fragment: it is never empty.
#[allow(clippy::len_without_is_empty)]
impl Clip {
    /// Plans the clip of `segments` (in start order, possibly with gaps between them and from
    /// several recording sessions) that covers `[from, to)`: every fragment whose wall-time
    /// interval overlaps it, so the clip starts at the key frame at or before `from` and ends
    /// with the last fragment that starts before `to`.
    ///
    /// - A segment whose init segment differs byte for byte from the first used one (another
    ///   codec or picture size) ends the clip before it: [`Clip::end_at`] then tells where the
    ///   clip stopped, and the caller can plan the rest from there. The clip also ends after
    ///   65 535 fragments (the `sidx` counts them in 16 bits: 36 hours of 2 s groups of
    ///   pictures) and before a fragment the `sidx` cannot describe (2 GiB or 13 hours).
    /// - A segment whose start is at or before `from` makes the ones before it unneeded: they
    ///   are not opened. Nor are those that start at or after `to`.
    /// - A segment still being written is used up to its last complete fragment: a torn tail,
    ///   or an init segment not yet whole, simply ends (or empties) it.
    ///
    /// Fails with [`RecordError::NoRecording`] when no fragment overlaps the range (an empty
    /// or inverted range included), [`RecordError::Io`] naming the file when a segment file
    /// that is needed is missing or unreadable, and [`RecordError::NotSegment`] naming the
    /// file when one does not parse as a segment.
    pub fn plan(
        segments: &[SegmentRef],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Clip, RecordError> {
        if from >= to {
            return Err(RecordError::NoRecording { from, to });
        }
        let mut init: Option<Vec<u8>> = None;
        let mut sources = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut times: Option<(Timestamp, Timestamp)> = None;
        let mut duration_90k = 0u64;
        'segments: for (i, segment) in segments.iter().enumerate() {
            if segment.start_at >= to {
                break;
            }
            if segments
                .get(i + 1)
                .is_some_and(|next| next.start_at <= from)
            {
                continue;
            }
            let (_, scan) = scan_file(&segment.path)?;
            let Some(scan) = scan else {
                debug!(path = %segment.path.display(), "clip: segment without a whole init segment, skipped");
                continue;
            };
            let chosen: Vec<(&ScannedFragment, Timestamp, Timestamp)> = scan
                .fragments
                .iter()
                .map(|f| {
                    let start = wall_at(segment, f.base_decode_90k);
                    (
                        f,
                        start,
                        wall_at(segment, f.base_decode_90k.saturating_add(f.duration_90k)),
                    )
                })
                .filter(|&(_, start, end)| start < to && end > from)
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let segment_init = read_init(&segment.path, scan.init_bytes)?;
            match &init {
                None => init = Some(segment_init),
                Some(first) if *first != segment_init => {
                    debug!(path = %segment.path.display(), "clip: another init segment, clip ends before it");
                    break;
                }
                Some(_) => {}
            }
            let source = sources.len();
            sources.push(segment.path.clone());
            for (f, start, end) in chosen {
                let fields = f.fields.map_err(|reason| RecordError::NotSegment {
                    path: segment.path.clone(),
                    offset: f.offset,
                    reason,
                })?;
                let fragment_90k = u32::try_from(f.duration_90k).ok();
                let fits = parts.len() < MAX_FRAGMENTS
                    && f.moof_bytes + f.mdat_bytes <= MAX_REFERENCED_BYTES
                    && (fields.decode_time_wide || u32::try_from(duration_90k).is_ok());
                let (true, Some(fragment_90k)) = (fits, fragment_90k) else {
                    debug!(path = %segment.path.display(), offset = f.offset, "clip: fragment past what a clip holds, clip ends before it");
                    break 'segments;
                };
                parts.push(Part {
                    source,
                    file_offset: f.offset,
                    clip_offset: 0, // set below, once the head's length is known
                    moof_bytes: f.moof_bytes,
                    mdat_bytes: f.mdat_bytes,
                    sequence_at: fields.sequence_at,
                    // At most MAX_FRAGMENTS.
                    sequence_number: parts.len() as u32 + 1,
                    decode_time_at: fields.decode_time_at,
                    decode_time_wide: fields.decode_time_wide,
                    decode_time_90k: duration_90k,
                    duration_90k: fragment_90k,
                });
                duration_90k += f.duration_90k;
                times = Some((times.map_or(start, |(first, _)| first), end));
            }
        }
        let (Some(init), Some((start_at, end_at))) = (init, times) else {
            return Err(RecordError::NoRecording { from, to });
        };

        let mut head = init;
        write_sidx(&mut head, &parts);
        let mut at = head.len() as u64;
        for part in &mut parts {
            part.clip_offset = at;
            at += part.bytes();
        }
        Ok(Clip {
            head,
            sources,
            parts,
            len: at,
            start_at,
            end_at,
            duration_90k,
        })
    }

    /// The MP4's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Wall time of its first sample: the key frame at or before the range's start (or the
    /// first recorded after it).
    pub fn start_at(&self) -> Timestamp {
        self.start_at
    }

    /// Wall time at which its last fragment ends.
    pub fn end_at(&self) -> Timestamp {
        self.end_at
    }

    /// Its playing time in 90 kHz ticks: the sum of its fragments' durations (gaps collapsed,
    /// so possibly less than `end_at - start_at`).
    pub fn duration_90k(&self) -> u64 {
        self.duration_90k
    }

    /// Its fragments (one a group of pictures).
    pub fn fragments(&self) -> usize {
        self.parts.len()
    }

    /// Writes bytes `[start, end)` of the MP4 to `out`, reading the segment files as it goes.
    ///
    /// Fails with [`RecordError::ClipRange`] when the range is not within [`Clip::len`],
    /// [`RecordError::Io`] naming the file when a segment file is gone or shorter than when
    /// the clip was planned (deleted by retention meanwhile), [`RecordError::NotSegment`]
    /// when a fragment is no longer where it was, and [`RecordError::ClipWrite`] when `out`
    /// fails. After an error, `out` may hold part of the range.
    pub fn write_range(
        &self,
        start: u64,
        end: u64,
        out: &mut impl Write,
    ) -> Result<(), RecordError> {
        if start > end || end > self.len {
            return Err(RecordError::ClipRange {
                start,
                end,
                len: self.len,
            });
        }
        let head_len = self.head.len() as u64;
        let mut pos = start;
        if pos < head_len {
            let stop = end.min(head_len);
            // Both within the head, which is in memory.
            write(out, &self.head[pos as usize..stop as usize])?;
            pos = stop;
        }
        if pos >= end {
            return Ok(());
        }
        let first = self
            .parts
            .partition_point(|p| p.clip_offset + p.bytes() <= pos);
        let mut open = None;
        let mut buf = Vec::new();
        for part in &self.parts[first..] {
            if pos >= end {
                break;
            }
            let path = &self.sources[part.source];
            let local_start = pos - part.clip_offset;
            let local_end = (end - part.clip_offset).min(part.bytes());
            let file = open_source(&mut open, part.source, path)?;
            if local_start < part.moof_bytes {
                let moof = read_moof(file, path, part)?;
                let stop = local_end.min(part.moof_bytes);
                // Both within the moof, which is in memory.
                write(out, &moof[local_start as usize..stop as usize])?;
            }
            if local_end > part.moof_bytes {
                let from = part.file_offset + local_start.max(part.moof_bytes);
                let bytes = part.file_offset + local_end - from;
                copy(file, from, bytes, path, &mut buf, out)?;
            }
            pos = part.clip_offset + local_end;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("len", &self.len)
            .field("start_at", &self.start_at)
            .field("end_at", &self.end_at)
            .field("duration_90k", &self.duration_90k)
            .field("fragments", &self.parts.len())
            .field("sources", &self.sources)
            .finish()
    }
}

/// The wall time of decode time `decode_90k` in `segment`.
fn wall_at(segment: &SegmentRef, decode_90k: u64) -> Timestamp {
    let ticks = i128::from(decode_90k) - i128::from(segment.media_start_90k);
    // 1 tick = 100_000 / 9 ns; an i64 of nanoseconds is 292 years either way.
    let nanos = ticks * 100_000 / 9;
    let nanos = i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX });
    let step = SignedDuration::from_nanos(nanos);
    segment.start_at.checked_add(step).unwrap_or(if nanos < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The first `bytes` of the file at `path`: its init segment.
fn read_init(path: &Path, bytes: u64) -> Result<Vec<u8>, RecordError> {
    if bytes > MAX_INIT_BYTES {
        return Err(RecordError::NotSegment {
            path: path.to_owned(),
            offset: 0,
            reason: "init segment too large for a segment's",
        });
    }
    let mut file = File::open(path).map_err(|e| RecordError::io("opening", path, e))?;
    // At most MAX_INIT_BYTES.
    let mut init = vec![0; bytes as usize];
    file.read_exact(&mut init)
        .map_err(|e| RecordError::io("reading", path, e))?;
    Ok(init)
}

/// Appends the `sidx` of `parts` (ISO/IEC 14496-12 8.16.3, version 1): the first fragment
/// follows it directly (`first_offset` 0) at presentation time 0; each reference is one
/// fragment, starting with a key frame (SAP type 1).
fn write_sidx(out: &mut Vec<u8>, parts: &[Part]) {
    let size = SIDX_HEADER_BYTES + SIDX_REFERENCE_BYTES * parts.len();
    // At most MAX_FRAGMENTS references: well within u32.
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(b"sidx");
    out.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // version 1, flags 0
    out.extend_from_slice(&TRACK_ID.to_be_bytes()); // reference_ID
    out.extend_from_slice(&TIMESCALE.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // earliest_presentation_time
    out.extend_from_slice(&0u64.to_be_bytes()); // first_offset
    out.extend_from_slice(&0u16.to_be_bytes()); // reserved
    out.extend_from_slice(&(parts.len() as u16).to_be_bytes()); // reference_count
    for part in parts {
        // `plan` keeps each under 2^31 bytes: reference_type 0 (media) in the top bit.
        out.extend_from_slice(&(part.bytes() as u32).to_be_bytes());
        out.extend_from_slice(&part.duration_90k.to_be_bytes()); // subsegment_duration
        out.extend_from_slice(&0x9000_0000u32.to_be_bytes()); // starts_with_SAP 1, SAP_type 1
    }
}

/// Writes `bytes` to the clip's destination.
fn write(out: &mut impl Write, bytes: &[u8]) -> Result<(), RecordError> {
    out.write_all(bytes)
        .map_err(|source| RecordError::ClipWrite { source })
}

/// Reads `part`'s `moof` from `file`, with its sequence number and decode time rewritten.
fn read_moof(file: &mut File, path: &Path, part: &Part) -> Result<Vec<u8>, RecordError> {
    // A scanned moof is at most 16 MiB.
    let mut moof = vec![0; part.moof_bytes as usize];
    file.seek(SeekFrom::Start(part.file_offset))
        .and_then(|_| file.read_exact(&mut moof))
        .map_err(|e| RecordError::io("reading", path, e))?;
    let size = u32::from_be_bytes([moof[0], moof[1], moof[2], moof[3]]);
    let whole = u64::from(size) == part.moof_bytes
        || (size == 1
            && moof
                .get(8..16)
                .is_some_and(|s| s == part.moof_bytes.to_be_bytes()));
    if &moof[4..8] != b"moof" || !whole {
        return Err(RecordError::NotSegment {
            path: path.to_owned(),
            offset: part.file_offset,
            reason: "the file changed since the clip was planned",
        });
    }
    let seq = part.sequence_at;
    moof[seq..seq + 4].copy_from_slice(&part.sequence_number.to_be_bytes());
    let at = part.decode_time_at;
    if part.decode_time_wide {
        moof[at..at + 8].copy_from_slice(&part.decode_time_90k.to_be_bytes());
    } else {
        // `plan` keeps a 32-bit decode time within 32 bits.
        moof[at..at + 4].copy_from_slice(&(part.decode_time_90k as u32).to_be_bytes());
    }
    Ok(moof)
}

/// The file of `source`, kept open in `open` from one fragment to the next.
fn open_source<'a>(
    open: &'a mut Option<(usize, File)>,
    source: usize,
    path: &Path,
) -> Result<&'a mut File, RecordError> {
    let file = match open.take() {
        Some((s, file)) if s == source => file,
        _ => File::open(path).map_err(|e| RecordError::io("opening", path, e))?,
    };
    Ok(&mut open.insert((source, file)).1)
}

/// Copies `bytes` bytes from offset `from` of `file` (at `path`) to `out`, through `buf`.
fn copy(
    file: &mut File,
    from: u64,
    mut bytes: u64,
    path: &Path,
    buf: &mut Vec<u8>,
    out: &mut impl Write,
) -> Result<(), RecordError> {
    file.seek(SeekFrom::Start(from))
        .map_err(|e| RecordError::io("reading", path, e))?;
    if buf.is_empty() {
        buf.resize(COPY_CHUNK_BYTES, 0);
    }
    while bytes > 0 {
        let n = bytes.min(COPY_CHUNK_BYTES as u64) as usize;
        let chunk = &mut buf[..n];
        file.read_exact(chunk).map_err(|e| {
            let e = if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(e.kind(), "shorter than when the clip was planned")
            } else {
                e
            };
            RecordError::io("reading", path, e)
        })?;
        write(out, chunk)?;
        bytes -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(moof_bytes: u64, mdat_bytes: u64, decode_time_90k: u64, duration_90k: u32) -> Part {
        Part {
            source: 0,
            file_offset: 0,
            clip_offset: 0,
            moof_bytes,
            mdat_bytes,
            sequence_at: 12,
            sequence_number: 1,
            decode_time_at: 40,
            decode_time_wide: true,
            decode_time_90k,
            duration_90k,
        }
    }

    #[test]
    fn the_sidx_has_one_reference_per_fragment_each_starting_at_a_key_frame() {
        let mut out = b"init".to_vec();
        write_sidx(
            &mut out,
            &[
                part(100, 5_000, 0, 180_000),
                part(96, 70_000, 180_000, 9_000),
            ],
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            b'i', b'n', b'i', b't',
            0, 0, 0, 64, b's', b'i', b'd', b'x',
            1, 0, 0, 0, // version 1, flags
            0, 0, 0, 1, // reference_ID: the track
            0, 1, 0x5f, 0x90, // timescale 90000
            0, 0, 0, 0, 0, 0, 0, 0, // earliest_presentation_time
            0, 0, 0, 0, 0, 0, 0, 0, // first_offset: the first fragment follows
            0, 0, 0, 2, // reserved, reference_count
            0, 0, 0x13, 0xec, 0, 2, 0xbf, 0x20, 0x90, 0, 0, 0, // 5100 bytes, 2 s
            0, 1, 0x11, 0xd0, 0, 0, 0x23, 0x28, 0x90, 0, 0, 0, // 70096 bytes, 0.1 s
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn wall_times_count_from_the_segments_first_sample() {
        let segment = SegmentRef {
            path: PathBuf::from("/data/recordings/cam/main/2025-06-01/1.mp4"),
            start_at: "2025-06-01T08:00:00Z".parse().unwrap(),
            media_start_90k: 900_000,
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(wall_at(&segment, 900_000), at("2025-06-01T08:00:00Z"));
        assert_eq!(wall_at(&segment, 1_080_000), at("2025-06-01T08:00:02Z"));
        assert_eq!(
            wall_at(&segment, 900_001),
            at("2025-06-01T08:00:00.000011111Z")
        );
        // A fragment before the row's first sample (a row that is off): before its start.
        assert_eq!(wall_at(&segment, 0), at("2025-06-01T07:59:50Z"));
        // Saturates rather than overflows.
        assert!(wall_at(&segment, u64::MAX) > at("2300-01-01T00:00:00Z"));
    }
}
