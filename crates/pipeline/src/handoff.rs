//! A one-shot answer from a pipeline thread to the control thread that waits for it: how an
//! edit (and whatever it replaced, to be dropped on the control side) comes back.
//!
//! Protocol, model-checked in `tests/loom.rs`: the waiting thread makes the [`Handoff`] and
//! sends it with its request. The pipeline thread [`claim`](Handoff::claim)s it before acting
//! (`PENDING → TAKEN`), acts, and [`put`](Handoff::put)s the answer (`TAKEN → READY`, then a
//! wake). A waiter that stops waiting [`cancel`](Handoff::cancel)s (`PENDING → CANCELLED`):
//! exactly one of the claim and the cancel succeeds, so a request is either applied and
//! answered or never applied. Once the pipeline thread has claimed, the waiter waits for the
//! answer however long it takes (the pipeline thread never waits for the control side).
//!
//! Real-time: `claim` is one compare-exchange, `put` a write into the cell, a store and a wake;
//! neither allocates, locks or blocks.
#![allow(unsafe_code)]

use crate::sync::{AtomicUsize, Cell, Ordering};
use crate::wake::Waker;

const PENDING: usize = 0;
const TAKEN: usize = 1;
const CANCELLED: usize = 2;
const READY: usize = 3;

/// One answer of type `T`, handed from the thread that claims it to the thread that made it.
pub struct Handoff<T> {
    state: AtomicUsize,
    value: Cell<Option<T>>,
    waker: Waker,
}

// SAFETY: `value` is written once, by the thread that won `claim`, before it publishes READY
// with Release; it is read (taken) only by the waiting thread after it observed READY with
// Acquire. No two threads touch the cell at the same time, and `T: Send` lets it move across.
unsafe impl<T: Send> Sync for Handoff<T> {}

impl<T> Handoff<T> {
    /// Made by the thread that will wait for the answer (its waker is bound to that thread).
    pub fn new() -> Self {
        let waker = Waker::new();
        waker.bind_current();
        Handoff { state: AtomicUsize::new(PENDING), value: Cell::new(None), waker }
    }

    /// Pipeline side: takes on the request. False if the waiter has given up: then do not act
    /// on it.
    pub fn claim(&self) -> bool {
        self.state.compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Pipeline side, after a successful [`claim`](Handoff::claim): gives the answer and wakes
    /// the waiter.
    pub fn put(&self, v: T) {
        if self.state.load(Ordering::Relaxed) != TAKEN {
            return;
        }
        // SAFETY: this thread won `claim`, so it is the only writer, and the waiter reads only
        // after the READY store below.
        self.value.with_mut(|p| unsafe { *p = Some(v) });
        self.state.store(READY, Ordering::Release);
        self.waker.wake();
    }

    /// Waiting side: gives up, unless the pipeline thread has claimed the request already.
    /// True if given up (the request will never be applied).
    pub fn cancel(&self) -> bool {
        self.state.compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    fn take(&self) -> Option<T> {
        // SAFETY: READY was observed with Acquire, so the writer's store happened before and it
        // will not touch the cell again; only the waiting thread takes, once.
        self.value.with_mut(|p| unsafe { (*p).take() })
    }

    /// Waiting side: parks until the answer is there. Call only after the request was claimed
    /// or will be (see [`wait_timeout`](Handoff::wait_timeout)).
    pub fn wait(&self) -> Option<T> {
        self.waker.wait_until(|| self.is_ready());
        self.take()
    }

    /// Waiting side: waits up to `timeout` for the pipeline thread to claim the request; if it
    /// has not by then, cancels it and returns `None`. Once claimed, waits for the answer.
    #[cfg(not(loom))]
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        let claimed = || self.state.load(Ordering::Acquire) != PENDING;
        if !self.waker.wait_until_deadline(deadline, claimed) && self.cancel() {
            return None;
        }
        self.wait()
    }
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn answer_crosses_threads() {
        let h = Arc::new(Handoff::new());
        let h2 = h.clone();
        let t = std::thread::spawn(move || {
            assert!(h2.claim());
            h2.put(41 + 1);
        });
        assert_eq!(h.wait_timeout(Duration::from_secs(30)), Some(42));
        t.join().unwrap();
    }

    #[test]
    fn a_cancelled_request_is_never_claimed() {
        let h: Handoff<u8> = Handoff::new();
        assert_eq!(h.wait_timeout(Duration::from_millis(1)), None);
        assert!(!h.claim(), "claim after the waiter gave up");
    }
}
