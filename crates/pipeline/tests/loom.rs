//! Model checks of the data plane's own synchronisation: the pool's reference count and free
//! list, copy-on-write, and the park/unpark handshake of `Waker`.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p pipeline --test loom --release`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
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
