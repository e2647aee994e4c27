//! The packet pool: preallocated sample blocks shared by reference count.
//!
//! A [`Pool`] owns a fixed number of slots, each a [`Header`] and a block of `words` 32-bit
//! values (an `f32` or `i32` per value, reinterpreted with `bytemuck`). A [`Packet`] is a counted
//! reference to one slot: cloning it for a fan-out increments the count, dropping the last one
//! returns the slot to the free list. A stage that writes calls [`Packet::make_mut`]: in place
//! when its handle is the only one, otherwise into a fresh slot (copy-on-write).
//!
//! Why our own: `Arc` allocates per packet, and pools of `Arc`s cannot tell "last reference
//! dropped" from "one of two dropped at once" without this count (measured and argued in
//! `docs/ARCHITECTURE.md`). The free list is `crossbeam_queue::ArrayQueue`, lock-free and
//! allocation-free after construction.
//!
//! This is the crate's one `unsafe` module. The invariant every block relies on:
//! **a slot's header and data are written only through a [`Packet`] whose count is 1 (its
//! handle is unique and borrowed mutably), or while the slot is free and owned by the thread that
//! popped it; they are read only through a handle that holds a count.**
#![allow(unsafe_code)]

use crate::packet::Header;
use crate::sync::{fence, Arc, AtomicUsize, Cell, Ordering};
use std::fmt;

struct Slot {
    /// Number of live [`Packet`] handles; 0 while the slot is on the free list.
    refs: AtomicUsize,
    header: Cell<Header>,
    data: Cell<Box<[u32]>>,
}

// SAFETY: the cells are only accessed under the module invariant above: writes through a unique
// handle (count 1, `&mut Packet`) or by the thread that popped the slot from the free list, reads
// through a counted handle. The count's Release decrement and Acquire fence order every read
// before the slot is reused.
unsafe impl Sync for Slot {}

#[cfg(not(loom))]
type FreeList = crossbeam_queue::ArrayQueue<u32>;

/// loom cannot see inside crossbeam's atomics; under the model a mutex-guarded stack stands in.
#[cfg(loom)]
struct FreeList(loom::sync::Mutex<Vec<u32>>);
#[cfg(loom)]
impl FreeList {
    fn new(n: usize) -> Self {
        FreeList(loom::sync::Mutex::new(Vec::with_capacity(n)))
    }
    fn push(&self, v: u32) -> Result<(), u32> {
        self.0.lock().unwrap().push(v);
        Ok(())
    }
    fn pop(&self) -> Option<u32> {
        self.0.lock().unwrap().pop()
    }
}

struct Shared {
    slots: Box<[Slot]>,
    free: FreeList,
    words: usize,
    in_use: AtomicUsize,
    high_water: AtomicUsize,
    exhausted: AtomicUsize,
}

/// A fixed set of packet buffers, sized when the graph is built.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// The pool had no free slot. Counted in [`PoolStats::exhausted`]; the caller's overflow
/// policy decides what happens to the packet it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet pool exhausted")]
pub struct PoolExhausted;

/// A snapshot of a pool's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolStats {
    pub capacity: usize,
    pub words_per_packet: usize,
    pub in_use: usize,
    pub high_water: usize,
    pub exhausted: usize,
}

impl Pool {
    /// `packets` slots of `words` values each, all allocated now.
    pub fn new(packets: usize, words: usize) -> Pool {
        assert!(packets > 0 && packets <= u32::MAX as usize, "pool size out of range");
        let slots: Box<[Slot]> = (0..packets)
            .map(|_| Slot {
                refs: AtomicUsize::new(0),
                header: Cell::new(Header::default()),
                data: Cell::new(vec![0u32; words].into_boxed_slice()),
            })
            .collect();
        let free = FreeList::new(packets);
        for i in 0..packets as u32 {
            let _ = free.push(i);
        }
        Pool {
            shared: Arc::new(Shared {
                slots,
                free,
                words,
                in_use: AtomicUsize::new(0),
                high_water: AtomicUsize::new(0),
                exhausted: AtomicUsize::new(0),
            }),
        }
    }

    /// Takes a free slot and gives it `header`. The samples are whatever the slot held last:
    /// the caller writes all `header.len()` of them through [`Packet::make_mut`].
    pub fn acquire(&self, header: Header) -> Result<Packet, PoolExhausted> {
        acquire(&self.shared, header)
    }

    /// Values per packet.
    pub fn words(&self) -> usize {
        self.shared.words
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            capacity: s.slots.len(),
            words_per_packet: s.words,
            in_use: s.in_use.load(Ordering::Relaxed),
            high_water: s.high_water.load(Ordering::Relaxed),
            exhausted: s.exhausted.load(Ordering::Relaxed),
        }
    }
}

fn acquire(shared: &Arc<Shared>, header: Header) -> Result<Packet, PoolExhausted> {
    if header.len() > shared.words {
        // A stage asked for more than the graph builder sized for: a bug, reported as exhaustion
        // rather than a panic on the data path.
        shared.exhausted.fetch_add(1, Ordering::Relaxed);
        return Err(PoolExhausted);
    }
    let Some(idx) = shared.free.pop() else {
        shared.exhausted.fetch_add(1, Ordering::Relaxed);
        return Err(PoolExhausted);
    };
    let slot = &shared.slots[idx as usize];
    // SAFETY: the slot was on the free list, so no handle refers to it; popping it made this
    // thread its only owner, and the free list's push/pop ordered the last handle's accesses
    // before ours.
    slot.header.with_mut(|h| unsafe { *h = header });
    slot.refs.store(1, Ordering::Relaxed);
    let n = shared.in_use.fetch_add(1, Ordering::Relaxed) + 1;
    shared.high_water.fetch_max(n, Ordering::Relaxed);
    Ok(Packet { shared: shared.clone(), idx })
}

/// A counted reference to a pooled header and sample block.
pub struct Packet {
    shared: Arc<Shared>,
    idx: u32,
}

impl Packet {
    fn slot(&self) -> &Slot {
        &self.shared.slots[self.idx as usize]
    }

    /// True when this handle is the only one, so [`Packet::make_mut`] works in place.
    pub fn is_unique(&self) -> bool {
        self.slot().refs.load(Ordering::Acquire) == 1
    }

    /// Calls `f` with the header and the `header.len()` values (loom-checkable form of
    /// [`Packet::header`] and [`Packet::words`]).
    pub fn with<R>(&self, f: impl FnOnce(&Header, &[u32]) -> R) -> R {
        let slot = self.slot();
        // SAFETY: this handle holds a count, so no writer exists (a writer needs the only
        // handle) and the slot is not free.
        slot.header.with(|h| {
            slot.data.with(|d| unsafe {
                let h = &*h;
                f(h, &(&*d)[..h.len()])
            })
        })
    }

    /// A packet from the same pool, for stages that emit new packets (spectra, zipped streams).
    pub fn alloc_like(&self, header: Header) -> Result<Packet, PoolExhausted> {
        acquire(&self.shared, header)
    }

    /// Write access: in place when this handle is unique, otherwise a copy into a fresh slot of
    /// the same pool, which then replaces this handle (copy-on-write).
    pub fn make_mut(&mut self) -> Result<PacketMut<'_>, PoolExhausted> {
        if !self.is_unique() {
            let copy = self.with(|h, data| {
                let new = acquire(&self.shared, h.clone())?;
                let slot = new.slot();
                // SAFETY: `new` was just acquired and is the only handle to its slot.
                slot.data.with_mut(|d| unsafe { (&mut *d)[..data.len()].copy_from_slice(data) });
                Ok(new)
            })?;
            *self = copy;
        }
        Ok(PacketMut { pkt: self })
    }
}

#[cfg(not(loom))]
impl Packet {
    pub fn header(&self) -> &Header {
        // SAFETY: this handle holds a count for as long as the borrow lives; see `with`.
        unsafe { &*self.slot().header.0.get() }
    }

    /// The packet's values as raw words (`header.len()` of them).
    pub fn words(&self) -> &[u32] {
        let len = self.header().len();
        // SAFETY: as for `header`.
        unsafe { &(&*self.slot().data.0.get())[..len] }
    }

    /// The values as `f32` (voltage, spectrum, band powers), channel-major.
    pub fn f32s(&self) -> &[f32] {
        bytemuck::cast_slice(self.words())
    }

    /// The values as `i32` (raw counts), channel-major.
    pub fn i32s(&self) -> &[i32] {
        bytemuck::cast_slice(self.words())
    }

    /// One channel's `f32` values.
    pub fn channel_f32(&self, ch: usize) -> &[f32] {
        let n = self.header().samples as usize;
        &self.f32s()[ch * n..(ch + 1) * n]
    }
}

impl Clone for Packet {
    fn clone(&self) -> Packet {
        // Relaxed, as in `Arc`: a new handle can only be made from an existing one, which
        // already keeps the slot alive.
        self.slot().refs.fetch_add(1, Ordering::Relaxed);
        Packet { shared: self.shared.clone(), idx: self.idx }
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        if self.slot().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Order every other handle's reads before the slot is handed out again.
        fence(Ordering::Acquire);
        self.shared.in_use.fetch_sub(1, Ordering::Relaxed);
        // Cannot fail: the free list holds every slot.
        let _ = self.shared.free.push(self.idx);
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|h, _| {
            f.debug_struct("Packet")
                .field("slot", &self.idx)
                .field("kind", &h.kind)
                .field("seq", &h.seq)
                .field("channels", &h.channels)
                .field("samples", &h.samples)
                .finish()
        })
    }
}

/// Write access to a packet whose handle is unique. Obtained from [`Packet::make_mut`].
pub struct PacketMut<'a> {
    pkt: &'a mut Packet,
}

impl PacketMut<'_> {
    /// Calls `f` with mutable header and the whole block (capacity, not just `header.len()`).
    pub fn with_mut<R>(&mut self, f: impl FnOnce(&mut Header, &mut [u32]) -> R) -> R {
        let slot = self.pkt.slot();
        // SAFETY: `PacketMut` exists only for a unique handle, borrowed mutably for its lifetime.
        slot.header.with_mut(|h| slot.data.with_mut(|d| unsafe { f(&mut *h, &mut *d) }))
    }
}

#[cfg(not(loom))]
impl PacketMut<'_> {
    pub fn header(&self) -> &Header {
        self.pkt.header()
    }

    pub fn header_mut(&mut self) -> &mut Header {
        // SAFETY: unique handle, mutably borrowed for the lifetime of the returned reference.
        unsafe { &mut *self.pkt.slot().header.0.get() }
    }

    /// Values per packet this block can hold.
    pub fn capacity(&self) -> usize {
        self.pkt.shared.words
    }

    /// Changes the shape (a downsampler shortens the packet, an FFT changes the bin count).
    /// Returns `Err` if it would not fit.
    pub fn set_shape(&mut self, channels: usize, samples: usize) -> Result<(), PoolExhausted> {
        if channels * samples > self.capacity() {
            return Err(PoolExhausted);
        }
        let h = self.header_mut();
        h.channels = channels as u32;
        h.samples = samples as u32;
        Ok(())
    }

    /// The `header.len()` values as raw words.
    pub fn words_mut(&mut self) -> &mut [u32] {
        let len = self.header().len();
        // SAFETY: as for `header_mut`; the header and data cells are distinct, and `len` was
        // read before the data borrow starts.
        unsafe { &mut (&mut *self.pkt.slot().data.0.get())[..len] }
    }

    pub fn f32s_mut(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(self.words_mut())
    }

    pub fn i32s_mut(&mut self) -> &mut [i32] {
        bytemuck::cast_slice_mut(self.words_mut())
    }

    /// Header and `f32` values at once.
    pub fn parts_f32(&mut self) -> (&mut Header, &mut [f32]) {
        let len = self.header().len();
        let slot = self.pkt.slot();
        // SAFETY: distinct cells of a slot whose only handle is mutably borrowed by `self`.
        unsafe {
            let h = &mut *slot.header.0.get();
            let d = &mut (&mut *slot.data.0.get())[..len];
            (h, bytemuck::cast_slice_mut(d))
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::packet::Kind;

    fn header(channels: u32, samples: u32) -> Header {
        Header { kind: Kind::Voltage, channels, samples, ..Header::default() }
    }

    #[test]
    fn last_drop_returns_slot() {
        let pool = Pool::new(2, 8);
        let a = pool.acquire(header(2, 4)).unwrap();
        let b = a.clone();
        assert_eq!(pool.stats().in_use, 1);
        drop(a);
        assert_eq!(pool.stats().in_use, 1);
        drop(b);
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(pool.stats().high_water, 1);
    }

    #[test]
    fn exhaustion_is_counted_not_grown() {
        let pool = Pool::new(1, 8);
        let _a = pool.acquire(header(1, 1)).unwrap();
        assert_eq!(pool.acquire(header(1, 1)).unwrap_err(), PoolExhausted);
        assert_eq!(pool.stats().exhausted, 1);
    }

    #[test]
    fn oversized_header_is_refused() {
        let pool = Pool::new(1, 8);
        assert!(pool.acquire(header(3, 3)).is_err());
    }

    #[test]
    fn unique_packet_is_written_in_place() {
        let pool = Pool::new(1, 4);
        let mut a = pool.acquire(header(1, 4)).unwrap();
        a.make_mut().unwrap().f32s_mut().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(a.f32s(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(pool.stats().in_use, 1);
    }

    #[test]
    fn shared_packet_is_copied_on_write() {
        let pool = Pool::new(2, 4);
        let mut a = pool.acquire(header(1, 2)).unwrap();
        a.make_mut().unwrap().f32s_mut().copy_from_slice(&[1.0, 2.0]);
        let b = a.clone();
        a.make_mut().unwrap().f32s_mut()[0] = 9.0;
        assert_eq!(a.f32s(), &[9.0, 2.0]);
        assert_eq!(b.f32s(), &[1.0, 2.0], "the other owner keeps its view");
        assert_eq!(pool.stats().in_use, 2);
        drop(b);
        assert!(a.is_unique());
    }

    #[test]
    fn set_shape_checks_capacity() {
        let pool = Pool::new(1, 8);
        let mut a = pool.acquire(header(2, 4)).unwrap();
        let mut m = a.make_mut().unwrap();
        assert!(m.set_shape(3, 3).is_err());
        m.set_shape(2, 2).unwrap();
        assert_eq!(a.header().len(), 4);
    }

    #[test]
    fn packets_cross_threads() {
        let pool = Pool::new(4, 16);
        let mut a = pool.acquire(header(1, 16)).unwrap();
        a.make_mut().unwrap().i32s_mut().iter_mut().enumerate().for_each(|(i, v)| *v = i as i32);
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let p = a.clone();
                std::thread::spawn(move || p.i32s().iter().sum::<i32>())
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 120);
        }
        drop(a);
        assert_eq!(pool.stats().in_use, 0);
    }
}
