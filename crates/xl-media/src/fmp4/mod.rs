//! Fragmented MP4 (ISO/IEC 14496-12, with the AVC and HEVC file formats of 14496-15) for one
//! H.264 or H.265 video track, as Media Source Extensions and a segment recorder want it:
//!
//! ```text
//! init segment  = ftyp + moov (mvhd, trak: tkhd, mdia: mdhd, hdlr vide, minf: vmhd, dinf,
//!                 stbl: stsd (avc1 + avcC | hvc1 + hvcC), empty stts/stsc/stsz/stco; mvex: trex)
//! media segment = moof (mfhd, traf: tfhd, tfdt, trun) + mdat, one per fragment
//! ```
//!
//! - [`VideoTrack`] describes the track (decoder configuration record, RFC 6381 codec string);
//!   [`init_segment`] writes its init segment.
//! - [`Fragmenter`] turns access units into media segments: each sample's NAL units with
//!   4-byte lengths instead of start codes, access unit delimiters and parameter sets dropped
//!   (they are in the init segment), everything else kept.
//!
//! Time is on the 90 kHz RTP clock throughout ([`TIMESCALE`]). There are no B-frames: the
//! decode order is the presentation order and every composition offset is 0 (IP cameras'
//! streams, sub streams above all, are encoded without B-frames; a stream with them would play
//! with its frames out of order).

mod boxes;
mod fragmenter;
mod track;

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::Fmp4Error;
pub use fragmenter::{
    DEFAULT_SAMPLE_DURATION_90K, FragmentPolicy, Fragmenter, MAX_ACCESS_UNIT_BYTES,
    MAX_FRAGMENT_BYTES, MAX_SAMPLE_DURATION_90K,
};
pub use track::VideoTrack;

use boxes::{begin, begin_full, end, put_unity_matrix};

/// Ticks per second of the movie, the track and every time in a fragment: the RTP video clock.
pub const TIMESCALE: u32 = 90_000;

/// The track's ID in `tkhd`, `trex` and `tfhd`.
pub const TRACK_ID: u32 = 1;

/// The init segment of `track`: `ftyp` (major brand `iso5`, compatible with `iso5`, `iso6`,
/// `mp41`) and `moov` with one video track of unknown duration (fragmented). Send it before the
/// first fragment, and again (with a new [`Fragmenter`]) whenever the track changes.
pub fn init_segment(track: &VideoTrack) -> Bytes {
    let out = &mut BytesMut::with_capacity(720 + track.config_record().len());

    let ftyp = begin(out, b"ftyp");
    out.put_slice(b"iso5"); // major_brand
    out.put_u32(512); // minor_version
    out.put_slice(b"iso5iso6mp41"); // compatible_brands
    end(out, ftyp);

    let moov = begin(out, b"moov");
    let mvhd = begin_full(out, b"mvhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(TIMESCALE);
    out.put_u32(0); // duration: unknown
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(0x0100); // volume 1.0
    out.put_bytes(0, 10); // reserved
    put_unity_matrix(out);
    out.put_bytes(0, 24); // pre_defined
    out.put_u32(TRACK_ID + 1); // next_track_ID
    end(out, mvhd);

    let trak = begin(out, b"trak");
    let tkhd = begin_full(out, b"tkhd", 0, 0x3); // track_enabled | track_in_movie
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(TRACK_ID);
    out.put_u32(0); // reserved
    out.put_u32(0); // duration: unknown
    out.put_bytes(0, 8); // reserved
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(0); // volume: 0 for video
    out.put_u16(0); // reserved
    put_unity_matrix(out);
    out.put_u32(track.width() << 16); // 16.16 fixed point
    out.put_u32(track.height() << 16);
    end(out, tkhd);

    let mdia = begin(out, b"mdia");
    let mdhd = begin_full(out, b"mdhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(TIMESCALE);
    out.put_u32(0); // duration: unknown
    out.put_u16(0x55c4); // language "und", packed ISO 639-2/T
    out.put_u16(0); // pre_defined
    end(out, mdhd);

    let hdlr = begin_full(out, b"hdlr", 0, 0);
    out.put_u32(0); // pre_defined
    out.put_slice(b"vide"); // handler_type
    out.put_bytes(0, 12); // reserved
    out.put_slice(b"VideoHandler\0"); // name
    end(out, hdlr);

    let minf = begin(out, b"minf");
    let vmhd = begin_full(out, b"vmhd", 0, 1);
    out.put_u16(0); // graphicsmode: copy
    out.put_bytes(0, 6); // opcolor
    end(out, vmhd);

    let dinf = begin(out, b"dinf");
    let dref = begin_full(out, b"dref", 0, 0);
    out.put_u32(1); // entry_count
    let url = begin_full(out, b"url ", 0, 1); // self-contained: the data is in this file
    end(out, url);
    end(out, dref);
    end(out, dinf);

    let stbl = begin(out, b"stbl");
    let stsd = begin_full(out, b"stsd", 0, 0);
    out.put_u32(1); // entry_count
    put_visual_sample_entry(out, track);
    end(out, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = begin_full(out, kind, 0, 0);
        out.put_u32(0); // entry_count: the samples are in the fragments
        end(out, b);
    }
    let stsz = begin_full(out, b"stsz", 0, 0);
    out.put_u32(0); // sample_size: per sample
    out.put_u32(0); // sample_count
    end(out, stsz);
    end(out, stbl);
    end(out, minf);
    end(out, mdia);
    end(out, trak);

    let mvex = begin(out, b"mvex");
    let trex = begin_full(out, b"trex", 0, 0);
    out.put_u32(TRACK_ID);
    out.put_u32(1); // default_sample_description_index
    out.put_u32(0); // default_sample_duration: every trun says
    out.put_u32(0); // default_sample_size: every trun says
    out.put_u32(0); // default_sample_flags: every trun says
    end(out, trex);
    end(out, mvex);
    end(out, moov);

    out.split().freeze()
}

/// `avc1` or `hvc1` VisualSampleEntry (ISO/IEC 14496-12 12.1.3) with its configuration box.
fn put_visual_sample_entry(out: &mut BytesMut, track: &VideoTrack) {
    let entry = begin(out, track.sample_entry_type());
    out.put_bytes(0, 6); // reserved
    out.put_u16(1); // data_reference_index
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_bytes(0, 12); // pre_defined
    // VideoTrack keeps both within 16 bits.
    out.put_u16(track.width() as u16);
    out.put_u16(track.height() as u16);
    out.put_u32(0x0048_0000); // horizresolution 72 dpi
    out.put_u32(0x0048_0000); // vertresolution 72 dpi
    out.put_u32(0); // reserved
    out.put_u16(1); // frame_count
    out.put_bytes(0, 32); // compressorname
    out.put_u16(0x0018); // depth: colour, no alpha
    out.put_i16(-1); // pre_defined
    let config = begin(out, track.config_box_type());
    out.put_slice(track.config_record());
    end(out, config);
    end(out, entry);
}

#[cfg(test)]
pub(crate) mod tests {
    use xl_core::camera::VideoCodec;

    use super::boxes::parse::{self, u32_at};
    use super::*;

    pub(crate) fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect()
    }

    pub(crate) fn h264_track() -> VideoTrack {
        let key = annex_b(&[track::tests::X264_SPS, track::tests::X264_PPS]);
        VideoTrack::from_key_frame(VideoCodec::H264, &key, 640, 360).unwrap()
    }

    pub(crate) fn h265_track() -> VideoTrack {
        use track::tests::{X265_PPS, X265_SPS, X265_VPS};
        let key = annex_b(&[X265_VPS, X265_SPS, X265_PPS]);
        VideoTrack::from_key_frame(VideoCodec::H265, &key, 1280, 720).unwrap()
    }

    #[test]
    fn init_segment_boxes_nest_and_sizes_add_up() {
        for track in [h264_track(), h265_track()] {
            let init = init_segment(&track);
            // `boxes` asserts that every level is filled exactly by its boxes' sizes.
            let top = parse::boxes(&init);
            let kinds: Vec<_> = top.iter().map(|b| &b.kind).collect();
            assert_eq!(kinds, [b"ftyp", b"moov"]);
            assert_eq!(top[0].body, b"iso5\0\0\x02\0iso5iso6mp41");

            let moov = top[1].body;
            let kinds: Vec<_> = parse::boxes(moov).into_iter().map(|b| b.kind).collect();
            assert_eq!(kinds, [*b"mvhd", *b"trak", *b"mvex"]);
            let mvhd = parse::path(moov, &[b"mvhd"]);
            assert_eq!(mvhd.whole.len(), 108);
            assert_eq!(u32_at(mvhd.body, 12), TIMESCALE);
            assert_eq!(u32_at(mvhd.body, 96), TRACK_ID + 1);

            let tkhd = parse::path(moov, &[b"trak", b"tkhd"]);
            assert_eq!(tkhd.whole.len(), 92);
            assert_eq!(u32_at(tkhd.body, 0), 3, "version 0, enabled and in movie");
            assert_eq!(u32_at(tkhd.body, 12), TRACK_ID);
            assert_eq!(u32_at(tkhd.body, 76), track.width() << 16);
            assert_eq!(u32_at(tkhd.body, 80), track.height() << 16);

            let mdhd = parse::path(moov, &[b"trak", b"mdia", b"mdhd"]);
            assert_eq!(u32_at(mdhd.body, 12), TIMESCALE);
            let hdlr = parse::path(moov, &[b"trak", b"mdia", b"hdlr"]);
            assert_eq!(&hdlr.body[8..12], b"vide");
            let minf = parse::path(moov, &[b"trak", b"mdia", b"minf"]);
            let kinds: Vec<_> = parse::boxes(minf.body)
                .into_iter()
                .map(|b| b.kind)
                .collect();
            assert_eq!(kinds, [*b"vmhd", *b"dinf", *b"stbl"]);
            let dref = parse::path(minf.body, &[b"dinf", b"dref"]);
            assert_eq!(u32_at(dref.body, 4), 1);
            assert_eq!(parse::child(dref.body, 8, b"url ").body, [0, 0, 0, 1]);

            let stbl = parse::path(minf.body, &[b"stbl"]);
            let kinds: Vec<_> = parse::boxes(stbl.body)
                .into_iter()
                .map(|b| b.kind)
                .collect();
            assert_eq!(kinds, [*b"stsd", *b"stts", *b"stsc", *b"stco", *b"stsz"]);
            for kind in [b"stts", b"stsc", b"stco"] {
                assert_eq!(parse::path(stbl.body, &[kind]).body, [0; 8]);
            }
            assert_eq!(parse::path(stbl.body, &[b"stsz"]).body, [0; 12]);

            let stsd = parse::path(stbl.body, &[b"stsd"]);
            assert_eq!(u32_at(stsd.body, 4), 1, "one sample entry");
            let entry = parse::child(stsd.body, 8, track.sample_entry_type());
            assert_eq!(
                u16::from_be_bytes([entry.body[24], entry.body[25]]),
                track.width() as u16
            );
            assert_eq!(
                u16::from_be_bytes([entry.body[26], entry.body[27]]),
                track.height() as u16
            );
            // 78 bytes of VisualSampleEntry fields, then the configuration box alone.
            let config = parse::child(entry.body, 78, track.config_box_type());
            assert_eq!(config.whole.len(), entry.body.len() - 78);
            assert_eq!(config.body, track.config_record().as_ref());

            let trex = parse::path(moov, &[b"mvex", b"trex"]);
            assert_eq!(
                trex.body,
                [
                    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
                ]
            );
        }
    }

    #[test]
    fn sample_entry_types_follow_the_codec() {
        let h264 = init_segment(&h264_track());
        let h265 = init_segment(&h265_track());
        let stsd = |init: &[u8]| -> Vec<u8> {
            let moov = parse::path(init, &[b"moov"]).body;
            parse::path(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).body[12..16].to_vec()
        };
        assert_eq!(stsd(&h264), b"avc1");
        assert_eq!(stsd(&h265), b"hvc1");
    }
}
