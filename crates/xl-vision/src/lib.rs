//! The vision logic of the hub that needs no model and does no I/O: the motion gate and the
//! detector crops it asks for ([`motion`]), the per-camera tracker ([`track`]), and zones with
//! their schedules, which turn tracks into [`VisionEvent`]s ([`zone`]).
//!
//! Everything here is sans-IO and synchronous: frames, detections and timestamps in, regions,
//! tracks and events out. The caller owns the clock (every call takes the frame's
//! `received_at`), so gate events and vision events share one clock and tests replay any
//! timeline. The per-frame paths (`MotionGate::process`, `Tracker::update`, `Zones::update`)
//! allocate nothing in the steady state; they reuse buffers sized when they were built.

mod error;
mod event;
mod geom;
pub mod motion;
pub mod track;
pub mod zone;

pub use error::VisionError;
pub use event::{ObjectClass, TrackId, VisionEvent};
pub use geom::{NormRect, PixelRect};

/// Counts heap allocations per thread, so tests can prove the per-frame paths allocate nothing.
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: forwards to the system allocator; the counter is a const-initialised thread local
    // without a destructor, so touching it never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Heap allocations (including reallocations) `f` made on this thread.
    pub fn allocations_in(f: impl FnOnce()) -> usize {
        let before = ALLOCATIONS.with(Cell::get);
        f();
        ALLOCATIONS.with(Cell::get) - before
    }
}
