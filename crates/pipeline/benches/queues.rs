//! The measurements behind the data plane's choices (docs/ARCHITECTURE.md, "Why these parts"):
//! - cross-thread hand-off of packets: `crossbeam_queue::ArrayQueue` (what `Edge` uses) against
//!   `rtrb` (SPSC ring) and `crossbeam_channel::bounded`, a producer and a consumer thread
//!   moving 100,000 pooled packets;
//! - the pool: acquire + drop, and a fan-out clone + drop, against `Arc::new` per packet.
//!
//! `cargo bench -p pipeline --bench queues`
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pipeline::{Header, Pool};
use std::hint::black_box;
use std::sync::Arc;

const N: usize = 100_000;

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff_100k_packets");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let pool = Pool::new(1024, 16);
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter(|| {
            let q = Arc::new(crossbeam_queue::ArrayQueue::new(64));
            let q2 = q.clone();
            let p2 = pool.clone();
            let t = std::thread::spawn(move || {
                for _ in 0..N {
                    let mut p = p2.acquire(Header::default()).unwrap();
                    while let Err(back) = q2.push(p) {
                        p = back;
                        std::hint::spin_loop();
                    }
                }
            });
            let mut got = 0;
            while got < N {
                if let Some(p) = q.pop() {
                    black_box(&p);
                    got += 1;
                }
            }
            t.join().unwrap();
        })
    });
    g.bench_function("rtrb_spsc", |b| {
        b.iter(|| {
            let (mut tx, mut rx) = rtrb::RingBuffer::new(64);
            let p2 = pool.clone();
            let t = std::thread::spawn(move || {
                for _ in 0..N {
                    let mut p = p2.acquire(Header::default()).unwrap();
                    loop {
                        match tx.push(p) {
                            Ok(()) => break,
                            Err(rtrb::PushError::Full(back)) => {
                                p = back;
                                std::hint::spin_loop();
                            }
                        }
                    }
                }
            });
            let mut got = 0;
            while got < N {
                if let Ok(p) = rx.pop() {
                    black_box(&p);
                    got += 1;
                }
            }
            t.join().unwrap();
        })
    });
    g.bench_function("crossbeam_channel_bounded", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(64);
            let p2 = pool.clone();
            let t = std::thread::spawn(move || {
                for _ in 0..N {
                    tx.send(p2.acquire(Header::default()).unwrap()).unwrap();
                }
            });
            for _ in 0..N {
                black_box(rx.recv().unwrap());
            }
            t.join().unwrap();
        })
    });
    g.finish();
}

fn pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("packet");
    let pool = Pool::new(64, 32 * 16);
    let header = Header::default();
    g.bench_function("pool_acquire_drop", |b| b.iter(|| black_box(pool.acquire(header.clone()).unwrap())));
    let p = pool.acquire(Header::default()).unwrap();
    g.bench_function("pool_clone_drop", |b| b.iter(|| black_box(p.clone())));
    g.bench_function("arc_new_vec_512", |b| {
        b.iter_batched(|| (), |_| black_box(Arc::new(vec![0f32; 32 * 16])), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, handoff, pool);
criterion_main!(benches);
