//! Model checks of the data plane's own synchronisation: the pool's reference count and free
//! list, copy-on-write, the park/unpark handshake of `Waker`, and the `Handoff` that brings a
//! live edit back from a pipeline thread.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p pipeline --test loom --release`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use pipeline::handoff::Handoff;
use pipeline::wake::Waker;
use pipeline::{Header, Kind, Pool};

fn header() -> Header {
    Header { kind: Kind::Raw, channels: 1, samples: 2, ..Header::default() }
}

#[test]
fn concurrent_drops_return_the_slot_exactly_once() {
    loom::model(|| {
        let pool = Pool::new(2, 2);
        let a = pool.acquire(header()).unwrap();
        let b = a.clone();
        let t = loom::thread::spawn(move || drop(b));
        drop(a);
        t.join().unwrap();
        assert_eq!(pool.stats().in_use, 0);
        // Both slots are free again: two acquires succeed, a third does not.
        let x = pool.acquire(header()).unwrap();
        let y = pool.acquire(header()).unwrap();
        assert!(pool.acquire(header()).is_err());
        drop((x, y));
    });
}

#[test]
fn write_after_share_copies_and_reader_sees_old_values() {
    loom::model(|| {
        let pool = Pool::new(2, 2);
        let mut a = pool.acquire(header()).unwrap();
        a.make_mut().unwrap().with_mut(|_, d| d[0] = 1);
        let b = a.clone();
        let t = loom::thread::spawn(move || b.with(|_, d| d[0]));
        a.make_mut().unwrap().with_mut(|_, d| d[0] = 2);
        assert_eq!(t.join().unwrap(), 1);
        a.with(|_, d| assert_eq!(d[0], 2));
    });
}

#[test]
fn writer_reuses_slot_after_reader_drops() {
    loom::model(|| {
        let pool = Pool::new(2, 2);
        let mut a = pool.acquire(header()).unwrap();
        let b = a.clone();
        let t = loom::thread::spawn(move || {
            let v = b.with(|_, d| d[0]);
            drop(b);
            v
        });
        // Whether or not the reader is done, the write is safe: in place if unique, else a copy.
        a.make_mut().unwrap().with_mut(|_, d| d[0] = 7);
        t.join().unwrap();
        a.with(|_, d| assert_eq!(d[0], 7));
    });
}

#[test]
fn waker_never_loses_a_wakeup() {
    // The waiter runs on the spawned thread and the model's main thread wakes it, then joins:
    // loom aborts if a thread blocked in `join` is unparked (tokio-rs/loom#249), which std
    // allows and our protocol does not rely on either way.
    loom::model(|| {
        let w = Arc::new(Waker::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (w2, f2) = (w.clone(), flag.clone());
        let waiter = loom::thread::spawn(move || {
            w2.bind_current();
            w2.wait_until(|| f2.load(Ordering::Acquire));
        });
        flag.store(true, Ordering::Release);
        w.wake();
        waiter.join().unwrap();
    });
}

#[test]
fn handoff_delivers_the_answer_once_and_wakes_the_waiter() {
    // The waiter runs on the spawned thread (see `waker_never_loses_a_wakeup` for why).
    loom::model(|| {
        let (tx, rx) = loom::sync::mpsc::channel();
        let waiter = loom::thread::spawn(move || {
            let h = Arc::new(Handoff::new());
            tx.send(h.clone()).unwrap();
            h.wait()
        });
        let h: Arc<Handoff<Box<u32>>> = rx.recv().unwrap();
        assert!(h.claim());
        h.put(Box::new(7));
        assert_eq!(waiter.join().unwrap().map(|b| *b), Some(7));
    });
}

#[test]
fn handoff_cancel_and_claim_exclude_each_other() {
    loom::model(|| {
        let (tx, rx) = loom::sync::mpsc::channel();
        let waiter = loom::thread::spawn(move || {
            let h = Arc::new(Handoff::new());
            tx.send(h.clone()).unwrap();
            if h.cancel() {
                None
            } else {
                // Claimed first: the answer comes, whatever the interleaving.
                h.wait()
            }
        });
        let h: Arc<Handoff<u32>> = rx.recv().unwrap();
        let applied = h.claim();
        if applied {
            h.put(1);
        }
        let answer = waiter.join().unwrap();
        assert_eq!(answer, applied.then_some(1), "exactly one of cancel and claim wins");
    });
}
