//! A counting global allocator: how the zero-allocation contract is proven, in tests and in
//! `eegd bench`, rather than argued.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: pipeline::alloc_count::CountingAlloc = pipeline::alloc_count::CountingAlloc;
//! ```
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DATA_THREAD_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on pipeline group threads once they run (const-initialised, no destructor: reading
    /// it inside the allocator neither allocates nor registers anything).
    static DATA_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if DATA_THREAD.try_with(|d| d.get()).unwrap_or(false) {
        DATA_THREAD_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Marks the calling thread as a pipeline (data) thread for [`data_thread_allocations`]. The
/// executor calls it on each group thread after its set-up, before the first packet.
pub fn mark_data_thread() {
    let _ = DATA_THREAD.try_with(|d| d.set(true));
}

/// Allocations so far on threads marked by [`mark_data_thread`] (0 unless [`CountingAlloc`] is
/// the global allocator): what the control plane does meanwhile is not counted.
pub fn data_thread_allocations() -> u64 {
    DATA_THREAD_ALLOCATIONS.load(Ordering::Relaxed)
}

/// The system allocator, counting every allocation and reallocation in every thread.
pub struct CountingAlloc;

// SAFETY: forwards every call unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counter is a relaxed atomic that never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations so far in the whole process (0 unless [`CountingAlloc`] is the global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}
