//! Writing ISO BMFF boxes into a `BytesMut`: a box is begun with a zero size, its body
//! written, and its size patched when it ends.

use bytes::{BufMut, BytesMut};

/// Starts a box; returns where it starts, for [`end`].
pub(crate) fn begin(out: &mut BytesMut, kind: &[u8; 4]) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    start
}

/// Starts a full box (version and flags after the header).
pub(crate) fn begin_full(out: &mut BytesMut, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = begin(out, kind);
    out.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Ends the box that starts at `start`: writes its size.
pub(crate) fn end(out: &mut BytesMut, start: usize) {
    // Boxes are bounded: a fragment's data by MAX_FRAGMENT_BYTES, an init segment by its
    // parameter sets (at most a few MiB).
    let size = u32::try_from(out.len() - start).expect("a box is smaller than 4 GiB");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// The unity transformation matrix of `mvhd` and `tkhd`.
pub(crate) fn put_unity_matrix(out: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v);
    }
}

#[cfg(test)]
pub(crate) mod parse {
    //! A reader of box trees, for checking what the writers wrote.

    /// One box: its type, its whole extent in the input and its body's.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Box<'a> {
        pub kind: [u8; 4],
        pub whole: &'a [u8],
        pub body: &'a [u8],
    }

    /// The boxes one after the other in `data`, which they must fill exactly.
    pub(crate) fn boxes(data: &[u8]) -> Vec<Box<'_>> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            assert!(
                rest.len() >= 8,
                "{} bytes left, not a box header",
                rest.len()
            );
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && size <= rest.len(),
                "box size {size} of {} left",
                rest.len()
            );
            let kind: [u8; 4] = rest[4..8].try_into().unwrap();
            out.push(Box {
                kind,
                whole: &rest[..size],
                body: &rest[8..size],
            });
            rest = &rest[size..];
        }
        out
    }

    /// The one child of `body` (a box's body, children from `skip` on) of this type.
    pub(crate) fn child<'a>(body: &'a [u8], skip: usize, kind: &[u8; 4]) -> Box<'a> {
        let found: Vec<_> = boxes(&body[skip..])
            .into_iter()
            .filter(|b| &b.kind == kind)
            .collect();
        assert_eq!(found.len(), 1, "{} boxes", String::from_utf8_lossy(kind));
        found[0]
    }

    /// The box at `path` below `data` (top-level boxes), each step a container box.
    pub(crate) fn path<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Box<'a> {
        let (first, rest) = path.split_first().expect("a path");
        let mut b = child(data, 0, first);
        for kind in rest {
            b = child(b.body, 0, kind);
        }
        b
    }

    pub(crate) fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
    }

    pub(crate) fn u64_at(data: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(data[at..at + 8].try_into().unwrap())
    }
}
