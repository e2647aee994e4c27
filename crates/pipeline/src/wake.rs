//! Blocking waits without sleep-polling: a thread parks, and whoever makes its condition true
//! unparks it.
//!
//! Protocol (a Dekker handshake, model-checked in `tests/loom.rs`): the waiter announces itself
//! (`sleeping = true`), then re-checks its condition, and parks only if it still fails; a waker
//! first makes the condition true, then looks at `sleeping` and unparks. The two SeqCst fences
//! guarantee that at least one side sees the other, and `park`'s token makes an unpark that
//! comes before the park harmless. A waker that finds nobody sleeping costs one load.
use crate::sync::{fence, thread, AtomicBool, Ordering};
use std::sync::OnceLock;

/// One per thread group: the handle other threads use to wake it.
#[derive(Debug, Default)]
pub struct Waker {
    thread: OnceLock<thread::Thread>,
    sleeping: AtomicBool,
}

impl Waker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the waker to the calling thread; must run on the waiting thread before it waits.
    pub fn bind_current(&self) {
        let _ = self.thread.set(thread::current());
    }

    /// Wakes the bound thread if it is parked (or about to park). Call after making the
    /// condition true.
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    /// Parks the calling (bound) thread until `ready()` holds. Returns at once if it already
    /// does.
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            self.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready() {
                self.sleeping.store(false, Ordering::Relaxed);
                return;
            }
            thread::park();
            self.sleeping.store(false, Ordering::Relaxed);
        }
    }

    /// As [`wait_until`](Waker::wait_until), but gives up at `deadline`. True if `ready()` held.
    /// For control threads waiting on a pipeline thread; pipeline threads never time out.
    #[cfg(not(loom))]
    pub fn wait_until_deadline(&self, deadline: std::time::Instant, mut ready: impl FnMut() -> bool) -> bool {
        loop {
            if ready() {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            self.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready() {
                self.sleeping.store(false, Ordering::Relaxed);
                return true;
            }
            std::thread::park_timeout(deadline - now);
            self.sleeping.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn wait_returns_when_condition_set_by_other_thread() {
        let w = Arc::new(Waker::new());
        w.bind_current();
        let flag = Arc::new(AtomicUsize::new(0));
        let (w2, f2) = (w.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                f2.fetch_add(1, Ordering::SeqCst);
                w2.wake();
            }
        });
        w.wait_until(|| flag.load(Ordering::SeqCst) == 1000);
        t.join().unwrap();
        assert_eq!(flag.load(Ordering::SeqCst), 1000);
    }
}
