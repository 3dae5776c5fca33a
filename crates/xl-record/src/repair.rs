//! The repair of a segment left open by a crash: keep what is whole, cut the torn tail.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use tracing::{debug, warn};

use crate::RecordError;

/// The largest `moov` read to check that a file is fragmented (ours are under 1 KiB).
const MAX_MOOV_BYTES: u64 = 1 << 20;
/// The largest `moof` read (ours take 12 bytes a sample: 16 MiB is over a million samples).
const MAX_MOOF_BYTES: u64 = 16 << 20;

/// What [`repair`] left of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repaired {
    /// The init segment and every complete fragment are kept; anything after them was cut.
    Kept {
        /// The file's length now.
        bytes: u64,
        /// Bytes cut from the end (0: the file was whole).
        truncated_bytes: u64,
        fragments: u64,
        samples: u64,
        /// Decode time (90 kHz) of the first sample, from the first fragment's `tfdt`.
        media_start_90k: u64,
        /// Decode time at which the last kept sample ends: the last fragment's `tfdt` plus the
        /// durations in its `trun`. The segment's `end_at` is its `start_at` plus
        /// `media_end_90k - media_start_90k` ticks.
        media_end_90k: u64,
    },
    /// No complete fragment (or not even a complete init segment): nothing can be served. The
    /// file is left as it is; remove the segment's row, then the file.
    Empty,
}

/// Repairs the segment file at `path` after a crash (see the crate documentation): it is
/// scanned box by box, each length checked against the file's size, and truncated (then
/// fsynced) after the last complete `moof` + `mdat` pair whose `trun` matches its `mdat`.
/// Whatever follows (a torn box, a box of the wrong type, a fragment that does not add up) is
/// cut.
///
/// A file that does not begin as a fragmented MP4 (`ftyp`, then a `moov` holding `mvex`) is
/// [`RecordError::NotSegment`] and is not touched; one whose init segment is cut short is
/// [`Repaired::Empty`].
pub fn repair(path: &Path) -> Result<Repaired, RecordError> {
    let (len, scan) = scan_file(path)?;
    let Some(kept) = scan.and_then(kept) else {
        debug!(path = %path.display(), "repair: no complete fragment");
        return Ok(Repaired::Empty);
    };
    if kept.end < len {
        if let Some(reason) = kept.cut_reason {
            warn!(path = %path.display(), offset = kept.end, reason, "repair: a complete box that is not a fragment, cut");
        }
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| RecordError::io("opening", path, e))?;
        file.set_len(kept.end)
            .map_err(|e| RecordError::io("truncating", path, e))?;
        file.sync_all()
            .map_err(|e| RecordError::io("syncing", path, e))?;
    }
    Ok(Repaired::Kept {
        bytes: kept.end,
        truncated_bytes: len - kept.end,
        fragments: kept.fragments,
        samples: kept.samples,
        media_start_90k: kept.media_start_90k,
        media_end_90k: kept.media_end_90k,
    })
}

#[derive(Debug)]
enum ScanError {
    Io(io::Error),
    NotSegment { offset: u64, reason: &'static str },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// What a scan keeps.
#[derive(Debug, PartialEq, Eq)]
struct Kept {
    /// Where the kept part ends: after the last complete fragment.
    end: u64,
    fragments: u64,
    samples: u64,
    media_start_90k: u64,
    media_end_90k: u64,
    /// Why the scan stopped before the end, when what follows was whole but not a fragment
    /// (rather than cut short).
    cut_reason: Option<&'static str>,
}

/// A box header read at some offset.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: [u8; 4],
    /// Header bytes (8, or 16 with a 64-bit size).
    header_len: u64,
    /// The whole box's size, header included.
    size: u64,
}

/// The box at `at`, if it lies whole within `len` bytes.
enum At {
    /// Nothing left: `at == len`.
    End,
    /// Not even a header's 8 bytes left.
    Short,
    Whole(Header),
    /// Of this type, but its header or body runs past the end.
    Torn([u8; 4]),
    /// Of this type, with a size that cannot be (under the header's own length, or 0: "to the
    /// end of the file", which no segment writes).
    Bad([u8; 4]),
}

impl At {
    /// The box type, when a header was read.
    fn kind(&self) -> Option<&[u8; 4]> {
        match self {
            At::End | At::Short => None,
            At::Whole(h) => Some(&h.kind),
            At::Torn(kind) | At::Bad(kind) => Some(kind),
        }
    }
}

fn read_header<R: Read + Seek>(r: &mut R, at: u64, len: u64) -> io::Result<At> {
    if at == len {
        return Ok(At::End);
    }
    if len - at < 8 {
        return Ok(At::Short);
    }
    let mut buf = [0u8; 16];
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(&mut buf[..8])?;
    let kind = [buf[4], buf[5], buf[6], buf[7]];
    let (size, header_len) = match u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) {
        0 => return Ok(At::Bad(kind)),
        1 => {
            if len - at < 16 {
                return Ok(At::Torn(kind));
            }
            r.read_exact(&mut buf[8..16])?;
            let mut large = [0u8; 8];
            large.copy_from_slice(&buf[8..16]);
            (u64::from_be_bytes(large), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header_len {
        return Ok(At::Bad(kind));
    }
    if size > len - at {
        return Ok(At::Torn(kind));
    }
    Ok(At::Whole(Header {
        kind,
        header_len,
        size,
    }))
}

/// The init segment's box of type `kind` at `at`: `Ok(None)` when the file ends in or before
/// it, an error when something else or something impossible is there.
fn init_box<R: Read + Seek>(
    r: &mut R,
    at: u64,
    len: u64,
    kind: &[u8; 4],
    reason: &'static str,
) -> Result<Option<Header>, ScanError> {
    let found = read_header(r, at, len)?;
    if found.kind().is_some_and(|k| k != kind) {
        return Err(ScanError::NotSegment { offset: at, reason });
    }
    match found {
        At::End | At::Short | At::Torn(_) => Ok(None),
        At::Whole(h) => Ok(Some(h)),
        At::Bad(_) => Err(ScanError::NotSegment { offset: at, reason }),
    }
}

fn read_body<R: Read + Seek>(r: &mut R, at: u64, h: &Header) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at + h.header_len))?;
    // The caller bounds the size; a size past the file was refused by `read_header`.
    let mut body = vec![0u8; (h.size - h.header_len) as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// One complete fragment of a segment file: a `moof` whose `trun` matches the `mdat` that
/// follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedFragment {
    /// Where its `moof` starts in the file.
    pub(crate) offset: u64,
    pub(crate) moof_bytes: u64,
    /// The whole `mdat` box, header included.
    pub(crate) mdat_bytes: u64,
    /// From its `tfdt`.
    pub(crate) base_decode_90k: u64,
    /// The sum of its `trun`'s sample durations.
    pub(crate) duration_90k: u64,
    pub(crate) samples: u64,
    /// Where the `moof` fields that a clip rewrites lie, or why it cannot be moved into one.
    pub(crate) fields: Result<MoofFields, &'static str>,
}

/// Where, counted from a `moof`'s first byte, lie the fields that change when its fragment is
/// moved to another file or timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MoofFields {
    /// The `mfhd` sequence number (4 bytes).
    pub(crate) sequence_at: usize,
    /// The `tfdt` base decode time: 8 bytes (version 1) or 4 (version 0).
    pub(crate) decode_time_at: usize,
    pub(crate) decode_time_wide: bool,
}

/// What a scan finds in a segment file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// The init segment's length (`ftyp` + `moov`): where the first fragment starts.
    pub(crate) init_bytes: u64,
    /// Every complete fragment, in order, up to the first thing that is not one.
    pub(crate) fragments: Vec<ScannedFragment>,
    /// Where the complete fragments end (`init_bytes` when there is none).
    pub(crate) end: u64,
    /// Why the scan stopped before the end, when what follows was whole but not a fragment
    /// (rather than cut short).
    pub(crate) cut_reason: Option<&'static str>,
}

/// Opens and scans the segment file at `path`: its length, and `None` when not even its init
/// segment is whole. Errors name the file.
pub(crate) fn scan_file(path: &Path) -> Result<(u64, Option<SegmentScan>), RecordError> {
    let mut file = File::open(path).map_err(|e| RecordError::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| RecordError::io("reading the size of", path, e))?
        .len();
    let scan = scan_segment(&mut file, len).map_err(|e| match e {
        ScanError::Io(e) => RecordError::io("reading", path, e),
        ScanError::NotSegment { offset, reason } => RecordError::NotSegment {
            path: path.to_owned(),
            offset,
            reason,
        },
    })?;
    Ok((len, scan))
}

/// What [`repair`] keeps of a scan: `None` when no fragment is whole.
fn kept(scan: SegmentScan) -> Option<Kept> {
    let (first, last) = (scan.fragments.first()?, scan.fragments.last()?);
    Some(Kept {
        end: scan.end,
        fragments: scan.fragments.len() as u64,
        samples: scan.fragments.iter().map(|f| f.samples).sum(),
        media_start_90k: first.base_decode_90k,
        media_end_90k: last.base_decode_90k.saturating_add(last.duration_90k),
        cut_reason: scan.cut_reason,
    })
}

/// Scans a segment of `len` bytes: `None` when no fragment is whole.
#[cfg(test)]
fn scan<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Kept>, ScanError> {
    Ok(scan_segment(r, len)?.and_then(kept))
}

/// Scans a segment of `len` bytes box by box, each length checked against `len`: `None` when
/// its init segment is cut short, an error when it does not begin as a fragmented MP4.
fn scan_segment<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<SegmentScan>, ScanError> {
    let not_segment = |offset, reason| ScanError::NotSegment { offset, reason };
    let Some(ftyp) = init_box(r, 0, len, b"ftyp", "no ftyp box at the start")? else {
        return Ok(None);
    };
    let at = ftyp.size;
    let Some(moov) = init_box(r, at, len, b"moov", "no moov box after ftyp")? else {
        return Ok(None);
    };
    if moov.size > MAX_MOOV_BYTES {
        return Err(not_segment(at, "moov box too large for a segment's"));
    }
    let body = read_body(r, at, &moov)?;
    if !children(&body).any(|c| c.is_ok_and(|(kind, _)| &kind == b"mvex")) {
        return Err(not_segment(at, "moov has no mvex: not a fragmented MP4"));
    }

    let mut pos = at + moov.size;
    let mut scan = SegmentScan {
        init_bytes: pos,
        fragments: Vec::new(),
        end: pos,
        cut_reason: None,
    };
    loop {
        let moof = match read_header(r, pos, len)? {
            At::End | At::Short | At::Torn(_) | At::Bad(_) => break,
            At::Whole(h) if &h.kind == b"moof" => h,
            At::Whole(_) => {
                scan.cut_reason = Some("not a moof");
                break;
            }
        };
        if moof.size > MAX_MOOF_BYTES {
            scan.cut_reason = Some("moof too large");
            break;
        }
        let mdat_at = pos + moof.size;
        let mdat = match read_header(r, mdat_at, len)? {
            At::End | At::Short | At::Torn(_) | At::Bad(_) => break,
            At::Whole(h) if &h.kind == b"mdat" => h,
            At::Whole(_) => {
                scan.cut_reason = Some("moof not followed by mdat");
                break;
            }
        };
        let body = read_body(r, pos, &moof)?;
        let Some(fragment) = parse_moof(&body) else {
            scan.cut_reason = Some("moof does not parse");
            break;
        };
        let data_offset_ok = fragment
            .data_offset
            .is_none_or(|o| u64::try_from(o).ok() == Some(moof.size + mdat.header_len));
        if fragment.data_bytes != mdat.size - mdat.header_len || !data_offset_ok {
            scan.cut_reason = Some("trun does not match its mdat");
            break;
        }
        scan.fragments.push(ScannedFragment {
            offset: pos,
            moof_bytes: moof.size,
            mdat_bytes: mdat.size,
            base_decode_90k: fragment.base_decode_90k,
            duration_90k: fragment.duration_90k,
            samples: fragment.samples,
            fields: moof_fields(&body, moof.header_len),
        });
        pos = mdat_at + mdat.size;
        scan.end = pos;
    }
    if scan.end == len {
        scan.cut_reason = None;
    }
    Ok(Some(scan))
}

/// Where the fields a clip rewrites lie in a `moof` (whose body is `moof`, after a header of
/// `header_len` bytes), which [`parse_moof`] has read: its `mfhd` sequence number and its
/// `tfdt` base decode time. A fragment whose `tfhd` gives an absolute base data offset (file
/// positions) cannot be moved.
fn moof_fields(moof: &[u8], header_len: u64) -> Result<MoofFields, &'static str> {
    // A moof is at most MAX_MOOF_BYTES: its header fits in a usize.
    let header_len = header_len as usize;
    let (mut sequence_at, mut traf) = (None, None);
    for child in children_at(moof) {
        let Ok((kind, at, body)) = child else {
            return Err("moof does not parse");
        };
        match &kind {
            b"mfhd" if body.len() >= 8 => sequence_at = Some(header_len + at + 4),
            b"traf" => traf = Some((at, body)),
            _ => {}
        }
    }
    let sequence_at = sequence_at.ok_or("moof has no mfhd")?;
    let (traf_at, traf) = traf.ok_or("moof has no traf")?;
    let mut decode_time = None;
    for child in children_at(traf) {
        let Ok((kind, at, body)) = child else {
            return Err("traf does not parse");
        };
        match &kind {
            b"tfhd" if be_u32(body, 0).is_some_and(|f| f & 0x01 != 0) => {
                return Err("tfhd gives a base data offset in the file");
            }
            b"tfdt" => {
                let wide = body.first() == Some(&1);
                if body.len() < if wide { 12 } else { 8 } {
                    return Err("tfdt too short");
                }
                decode_time = Some((header_len + traf_at + at + 4, wide));
            }
            _ => {}
        }
    }
    let (decode_time_at, decode_time_wide) = decode_time.ok_or("traf has no tfdt")?;
    Ok(MoofFields {
        sequence_at,
        decode_time_at,
        decode_time_wide,
    })
}

/// The child boxes of a box body: `(type, body)`, or `Err(())` for a size that does not fit.
fn children(data: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), ()>> {
    children_at(data).map(|c| c.map(|(kind, _, body)| (kind, body)))
}

/// The child boxes of a box body: `(type, where the child's body starts in data, body)`, or
/// `Err(())` for a size that does not fit.
fn children_at(mut data: &[u8]) -> impl Iterator<Item = Result<([u8; 4], usize, &[u8]), ()>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let parsed = (|| {
            let size = usize::try_from(be_u32(data, 0)?).ok()?;
            let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
            let (size, header) = match size {
                1 => (usize::try_from(be_u64(data, 8)?).ok()?, 16),
                0 => (data.len(), 8),
                n => (n, 8),
            };
            if size < header || size > data.len() {
                return None;
            }
            Some((kind, header, size))
        })();
        match parsed {
            Some((kind, header, size)) => {
                let body = &data[header..size];
                let body_at = offset + header;
                data = &data[size..];
                offset += size;
                Some(Ok((kind, body_at, body)))
            }
            None => {
                data = &[];
                Some(Err(()))
            }
        }
    })
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// What a `moof` says about its fragment.
#[derive(Debug, PartialEq, Eq)]
struct Fragment {
    base_decode_90k: u64,
    samples: u64,
    duration_90k: u64,
    /// Bytes of sample data the `trun` describes.
    data_bytes: u64,
    /// `trun` data offset from the start of the `moof`, when given.
    data_offset: Option<i64>,
}

/// Reads a `moof` body with one `traf` (`tfhd`, `tfdt`, one `trun`; ISO/IEC 14496-12 8.8).
fn parse_moof(moof: &[u8]) -> Option<Fragment> {
    let mut trafs = children(moof).filter_map(|c| match c {
        Ok((kind, body)) if &kind == b"traf" => Some(Ok(body)),
        Ok(_) => None,
        Err(()) => Some(Err(())),
    });
    let traf = trafs.next()?.ok()?;
    if trafs.next().is_some() {
        return None;
    }
    let (mut tfhd, mut tfdt, mut trun) = (None, None, None);
    for child in children(traf) {
        let (kind, body) = child.ok()?;
        let slot = match &kind {
            b"tfhd" => &mut tfhd,
            b"tfdt" => &mut tfdt,
            b"trun" => &mut trun,
            _ => continue,
        };
        if slot.replace(body).is_some() {
            return None;
        }
    }
    let (tfhd, tfdt, trun) = (tfhd?, tfdt?, trun?);

    // tfhd: version/flags, track_ID, then the optional fields its flags announce.
    let tfhd_flags = be_u32(tfhd, 0)? & 0x00ff_ffff;
    let mut at = 8;
    if tfhd_flags & 0x01 != 0 {
        at += 8; // base_data_offset
    }
    if tfhd_flags & 0x02 != 0 {
        at += 4; // sample_description_index
    }
    let default_duration = if tfhd_flags & 0x08 != 0 {
        let d = be_u32(tfhd, at)?;
        at += 4;
        Some(d)
    } else {
        None
    };
    let default_size = if tfhd_flags & 0x10 != 0 {
        Some(be_u32(tfhd, at)?)
    } else {
        None
    };

    let base_decode_90k = match tfdt.first()? {
        1 => be_u64(tfdt, 4)?,
        0 => u64::from(be_u32(tfdt, 4)?),
        _ => return None,
    };

    let trun_flags = be_u32(trun, 0)? & 0x00ff_ffff;
    let samples = be_u32(trun, 4)?;
    let mut at = 8;
    let data_offset = if trun_flags & 0x001 != 0 {
        let o = be_u32(trun, at)? as i32;
        at += 4;
        Some(i64::from(o))
    } else {
        None
    };
    if trun_flags & 0x004 != 0 {
        at += 4; // first_sample_flags
    }
    let has_duration = trun_flags & 0x100 != 0;
    let has_size = trun_flags & 0x200 != 0;
    let entry = 4 * [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| trun_flags & f != 0)
        .count();
    // The entries must fit in the box before any is read.
    if trun.len() < at + entry * samples as usize {
        return None;
    }
    let (mut duration_90k, mut data_bytes) = (0u64, 0u64);
    for _ in 0..samples {
        let mut field = at;
        let duration = if has_duration {
            field += 4;
            be_u32(trun, field - 4)?
        } else {
            default_duration?
        };
        let size = if has_size {
            be_u32(trun, field)?
        } else {
            default_size?
        };
        duration_90k += u64::from(duration);
        data_bytes += u64::from(size);
        at += entry;
    }
    Some(Fragment {
        base_decode_90k,
        samples: u64::from(samples),
        duration_90k,
        data_bytes,
        data_offset,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use xl_core::camera::VideoCodec;
    use xl_media::fmp4::{FragmentPolicy, Fragmenter, VideoTrack, init_segment};

    use super::*;

    /// A key frame as a camera sends it: SPS, PPS, then the IDR slice (xl-media's example).
    fn key_frame() -> Vec<u8> {
        [
            &[
                0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8,
            ][..],
            &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
            &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x2b],
        ]
        .concat()
    }

    /// A segment of `gops` fragments of 5 samples (3600 ticks each) from decode time `base`;
    /// returns it and where each fragment starts.
    fn segment(gops: usize, base: u64) -> (Vec<u8>, Vec<usize>) {
        let key = key_frame();
        let p = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x10];
        let track = VideoTrack::from_key_frame(VideoCodec::H264, &key, 640, 360).unwrap();
        let mut out = init_segment(&track).to_vec();
        let mut starts = Vec::new();
        let mut f = Fragmenter::new(&track, FragmentPolicy::Gop).with_base_decode_time(base);
        for i in 0..gops * 5 {
            let data: &[u8] = if i % 5 == 0 { &key } else { &p };
            if let Some(fragment) = f.push_sample(data, i as i64 * 3_600, i % 5 == 0).unwrap() {
                starts.push(out.len());
                out.extend_from_slice(&fragment);
            }
        }
        starts.push(out.len());
        out.extend_from_slice(&f.flush().unwrap());
        (out, starts)
    }

    fn scan_bytes(data: &[u8]) -> Result<Option<Kept>, ScanError> {
        scan(&mut Cursor::new(data), data.len() as u64)
    }

    #[test]
    fn a_whole_segment_is_kept_whole() {
        let (data, starts) = segment(3, 1 << 33);
        assert_eq!(starts.len(), 3);
        let kept = scan_bytes(&data).unwrap().unwrap();
        assert_eq!(
            kept,
            Kept {
                end: data.len() as u64,
                fragments: 3,
                samples: 15,
                media_start_90k: 1 << 33,
                media_end_90k: (1 << 33) + 15 * 3_600,
                cut_reason: None,
            }
        );
    }

    #[test]
    fn a_cut_anywhere_in_the_last_fragment_keeps_exactly_the_fragments_before_it() {
        let (data, starts) = segment(3, 0);
        let last = starts[2];
        for cut in last..data.len() {
            let kept = scan_bytes(&data[..cut]).unwrap().unwrap();
            assert_eq!(
                (kept.end, kept.fragments, kept.samples, kept.media_end_90k),
                (last as u64, 2, 10, 10 * 3_600),
                "cut at {cut}"
            );
        }
        // And anywhere in the first fragment or the init segment: nothing usable.
        for cut in 0..starts[1] {
            assert!(scan_bytes(&data[..cut]).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn a_fragment_whose_trun_does_not_match_its_mdat_is_cut() {
        let (mut data, starts) = segment(3, 0);
        // The second fragment's mdat one byte longer than its samples: it and what follows go.
        let moof_size = u32::from_be_bytes(data[starts[1]..starts[1] + 4].try_into().unwrap());
        let mdat = starts[1] + moof_size as usize;
        let size = u32::from_be_bytes(data[mdat..mdat + 4].try_into().unwrap());
        data.insert(mdat + 8, 0);
        data[mdat..mdat + 4].copy_from_slice(&(size + 1).to_be_bytes());
        let kept = scan_bytes(&data).unwrap().unwrap();
        assert_eq!((kept.end, kept.fragments), (starts[1] as u64, 1));
        assert_eq!(kept.cut_reason, Some("trun does not match its mdat"));
    }

    #[test]
    fn what_is_not_a_fragmented_mp4_is_an_error_never_a_panic() {
        for garbage in [
            &b"not an mp4 at all, just text"[..],
            &[0, 0, 0, 0, b'f', b't', b'y', b'p'],
            &[0, 0, 0, 4, b'f', b't', b'y', b'p'],
            &[
                0, 0, 0, 8, b'f', b'r', b'e', b'e', 0, 0, 0, 8, b'm', b'o', b'o', b'v',
            ],
            &[
                0, 0, 0, 8, b'f', b't', b'y', b'p', 0, 0, 0, 8, b'm', b'd', b'a', b't',
            ],
            // ftyp + moov without mvex: a plain MP4.
            &[
                0, 0, 0, 8, b'f', b't', b'y', b'p', 0, 0, 0, 8, b'm', b'o', b'o', b'v',
            ],
        ] {
            assert!(
                matches!(scan_bytes(garbage), Err(ScanError::NotSegment { .. })),
                "{garbage:?}"
            );
        }
        // Random tails after a good init segment: whatever comes out, no panic.
        let (data, starts) = segment(1, 0);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..2_000 {
            let mut file = data[..starts[0]].to_vec();
            let n = round % 200;
            file.extend((0..n).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            }));
            if round % 3 == 0 && file.len() > starts[0] + 8 {
                // A plausible moof header in front of the noise.
                file[starts[0] + 4..starts[0] + 8].copy_from_slice(b"moof");
            }
            assert!(scan_bytes(&file).unwrap().is_none());
        }
    }

    #[test]
    fn moof_parsing_takes_defaults_from_tfhd_and_refuses_short_truns() {
        fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
            let mut b = ((12 + body.len()) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(kind);
            b.extend_from_slice(&((u32::from(version) << 24) | flags).to_be_bytes());
            b.extend_from_slice(body);
            b
        }
        let tfhd = full(
            b"tfhd",
            0,
            0x18,
            &[0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0, 100],
        );
        let tfdt = full(b"tfdt", 0, 0, &[0, 0, 0, 7]);
        let trun = full(b"trun", 0, 0, &[0, 0, 0, 3]);
        let mut traf = ((8 + tfhd.len() + tfdt.len() + trun.len()) as u32)
            .to_be_bytes()
            .to_vec();
        traf.extend_from_slice(b"traf");
        for b in [&tfhd, &tfdt, &trun] {
            traf.extend_from_slice(b);
        }
        assert_eq!(
            parse_moof(&traf),
            Some(Fragment {
                base_decode_90k: 7,
                samples: 3,
                duration_90k: 3 * 3_600,
                data_bytes: 300,
                data_offset: None,
            })
        );
        // A trun that claims more samples than it holds.
        let trun = full(b"trun", 0, 0x300, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        let mut traf = ((8 + tfhd.len() + tfdt.len() + trun.len()) as u32)
            .to_be_bytes()
            .to_vec();
        traf.extend_from_slice(b"traf");
        for b in [&tfhd, &tfdt, &trun] {
            traf.extend_from_slice(b);
        }
        assert_eq!(parse_moof(&traf), None);
    }

    #[test]
    fn scanned_fragments_say_where_the_fields_a_clip_rewrites_lie() {
        let (data, starts) = segment(3, 1 << 33);
        let scan = scan_segment(&mut Cursor::new(&data), data.len() as u64)
            .unwrap()
            .unwrap();
        assert_eq!(scan.init_bytes, starts[0] as u64);
        assert_eq!(scan.fragments.len(), 3);
        for (k, f) in scan.fragments.iter().enumerate() {
            assert_eq!(f.offset, starts[k] as u64);
            let end = starts.get(k + 1).copied().unwrap_or(data.len());
            assert_eq!(f.offset + f.moof_bytes + f.mdat_bytes, end as u64);
            assert_eq!(&data[starts[k] + f.moof_bytes as usize + 4..][..4], b"mdat");
            assert_eq!((f.samples, f.duration_90k), (5, 5 * 3_600));
            let fields = f.fields.unwrap();
            assert!(fields.decode_time_wide);
            let moof = &data[starts[k]..];
            let sequence = be_u32(moof, fields.sequence_at).unwrap();
            assert_eq!(sequence, k as u32 + 1);
            let decode_90k = be_u64(moof, fields.decode_time_at).unwrap();
            assert_eq!(decode_90k, (1 << 33) + k as u64 * 5 * 3_600);
            assert_eq!(decode_90k, f.base_decode_90k);
        }
        // A tfhd with a base data offset (positions in the file): cannot be moved.
        let mut moved = data.clone();
        let tfhd = starts[0] + 8 + 16 + 8;
        assert_eq!(&moved[tfhd + 4..tfhd + 8], b"tfhd");
        moved[tfhd + 11] |= 0x01;
        let scan = scan_segment(&mut Cursor::new(&moved), moved.len() as u64)
            .unwrap()
            .unwrap();
        assert_eq!(
            scan.fragments[0].fields,
            Err("tfhd gives a base data offset in the file")
        );
    }

    #[test]
    fn repair_truncates_the_file_and_leaves_an_empty_one_alone() {
        let dir = std::env::temp_dir().join(format!(
            "xl-record-repair-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (data, starts) = segment(2, 0);
        let torn = dir.join("torn.mp4");
        std::fs::write(&torn, &data[..data.len() - 3]).unwrap();
        assert_eq!(
            repair(&torn).unwrap(),
            Repaired::Kept {
                bytes: starts[1] as u64,
                truncated_bytes: (data.len() - 3 - starts[1]) as u64,
                fragments: 1,
                samples: 5,
                media_start_90k: 0,
                media_end_90k: 5 * 3_600,
            }
        );
        assert_eq!(std::fs::read(&torn).unwrap(), &data[..starts[1]]);
        // Repairing again changes nothing.
        assert!(matches!(
            repair(&torn).unwrap(),
            Repaired::Kept {
                truncated_bytes: 0,
                ..
            }
        ));
        let init_only = dir.join("init.mp4");
        std::fs::write(&init_only, &data[..starts[0] + 5]).unwrap();
        assert_eq!(repair(&init_only).unwrap(), Repaired::Empty);
        assert_eq!(
            std::fs::metadata(&init_only).unwrap().len(),
            starts[0] as u64 + 5
        );
        let missing = repair(&dir.join("missing.mp4")).unwrap_err();
        assert_eq!(missing.kind(), xl_core::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
