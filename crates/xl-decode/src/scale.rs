//! Decoded picture -> I420 at the analysis size, written straight into a pooled buffer.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::frame::video::Video;

/// The analysis size for a source of `src_w` x `src_h`: at most `max_width` wide, the source's
/// aspect ratio kept, both sides even (I420 needs it), never upscaled.
pub(crate) fn analysis_size(src_w: u32, src_h: u32, max_width: u32) -> (u32, u32) {
    let w = src_w.min(max_width).max(2) & !1;
    let h =
        ((u64::from(src_h) * u64::from(w) + u64::from(src_w) / 2) / u64::from(src_w.max(1))) as u32;
    (w, (h.max(2)) & !1)
}

#[derive(Default)]
pub(crate) struct Scaler {
    sws: Option<(Key, scaling::Context)>,
}

#[derive(PartialEq, Clone, Copy)]
struct Key {
    format: Pixel,
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
}

impl Scaler {
    /// Writes `src` as I420 of `dst_w` x `dst_h` into `out` (exactly `Frame::i420_len` bytes).
    pub fn write_i420(
        &mut self,
        src: &Video,
        dst_w: u32,
        dst_h: u32,
        out: &mut [u8],
    ) -> Result<(), ffmpeg_next::Error> {
        let (w, h) = (dst_w as usize, dst_h as usize);
        debug_assert_eq!(out.len(), w * h + 2 * (w / 2) * (h / 2));
        let (y, uv) = out.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut((w / 2) * (h / 2));
        if src.format() == Pixel::YUV420P && src.width() == dst_w && src.height() == dst_h {
            copy_plane(src.data(0), src.stride(0), y, w, h);
            copy_plane(src.data(1), src.stride(1), u, w / 2, h / 2);
            copy_plane(src.data(2), src.stride(2), v, w / 2, h / 2);
            return Ok(());
        }
        let key = Key {
            format: src.format(),
            src_w: src.width(),
            src_h: src.height(),
            dst_w,
            dst_h,
        };
        if self.sws.as_ref().is_none_or(|(k, _)| *k != key) {
            let ctx = scaling::Context::get(
                key.format,
                key.src_w,
                key.src_h,
                Pixel::YUV420P,
                dst_w,
                dst_h,
                scaling::Flags::BILINEAR,
            )?;
            self.sws = Some((key, ctx));
        }
        let Some((_, ctx)) = self.sws.as_mut() else {
            unreachable!("set just above")
        };
        let dst_data = [
            y.as_mut_ptr(),
            u.as_mut_ptr(),
            v.as_mut_ptr(),
            std::ptr::null_mut(),
        ];
        let dst_stride = [w as i32, (w / 2) as i32, (w / 2) as i32, 0];
        // SAFETY: the source pointers and strides come from a decoded AVFrame of the size and
        // format the context was built for; the destination planes are slices of exactly the
        // sizes sws_scale writes for YUV420P at dst_w x dst_h with these strides.
        let rows = unsafe {
            let f = &*src.as_ptr();
            ffmpeg_next::ffi::sws_scale(
                ctx.as_mut_ptr(),
                f.data.as_ptr() as *const *const u8,
                f.linesize.as_ptr(),
                0,
                key.src_h as i32,
                dst_data.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows <= 0 {
            return Err(ffmpeg_next::Error::InvalidData);
        }
        Ok(())
    }
}

fn copy_plane(src: &[u8], src_stride: usize, dst: &mut [u8], w: usize, h: usize) {
    for (row, dst_row) in dst.chunks_exact_mut(w).take(h).enumerate() {
        dst_row.copy_from_slice(&src[row * src_stride..row * src_stride + w]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_size_keeps_aspect_is_even_and_never_upscales() {
        assert_eq!(analysis_size(1280, 720, 640), (640, 360));
        assert_eq!(analysis_size(768, 576, 640), (640, 480));
        assert_eq!(analysis_size(640, 360, 640), (640, 360));
        assert_eq!(analysis_size(352, 288, 640), (352, 288));
        assert_eq!(analysis_size(1920, 1080, 500), (500, 280));
        assert_eq!(
            analysis_size(0, 0, 640),
            (2, 2),
            "degenerate input stays usable"
        );
    }
}
