//! Bounded queues between thread groups.
//!
//! An [`Edge`] carries packets from one group's stage to another group's stage. It never grows:
//! with [`Overflow::Block`] a full queue makes the producer park until the consumer pops (lossless
//! back-pressure); with [`Overflow::DropOldest`] the oldest queued packet is dropped and counted.
//! Both sides park on their group's [`Waker`] rather than sleep-poll.
//!
//! Why `crossbeam_queue::ArrayQueue`: it is bounded, allocation-free after construction, and
//! `force_push` is exactly drop-oldest, which a single-producer ring (rtrb) cannot do from the
//! producer side. `benches/queues.rs` measures it against rtrb and crossbeam-channel; the
//! figures are in `docs/ARCHITECTURE.md`.
use crate::pool::Packet;
pub use crate::topology::file::Overflow;
use crate::wake::Waker;
use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters of one edge, readable while the pipeline runs.
#[derive(Debug, Default)]
pub struct EdgeStats {
    pub pushed: AtomicU64,
    pub dropped: AtomicU64,
    pub high_water: AtomicUsize,
}

/// A snapshot of an edge for the API and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeSnapshot {
    pub from: String,
    pub to: String,
    pub capacity: usize,
    pub depth: usize,
    pub high_water: usize,
    pub pushed: u64,
    pub dropped: u64,
    pub overflow: Overflow,
}

pub struct Edge {
    pub from: String,
    pub to: String,
    q: ArrayQueue<Packet>,
    overflow: Overflow,
    consumer: Arc<Waker>,
    producer: Arc<Waker>,
    /// The producer will push no more: once empty, the consumer's input has ended.
    closed: AtomicBool,
    /// The consumer is gone (its thread ended): pushes are dropped and counted, never block.
    abandoned: AtomicBool,
    pub stats: EdgeStats,
}

impl Edge {
    pub fn new(
        from: String,
        to: String,
        capacity: usize,
        overflow: Overflow,
        producer: Arc<Waker>,
        consumer: Arc<Waker>,
    ) -> Edge {
        Edge {
            from,
            to,
            q: ArrayQueue::new(capacity.max(1)),
            overflow,
            consumer,
            producer,
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            stats: EdgeStats::default(),
        }
    }

    /// Queues a packet by the edge's overflow policy. With `Block` this parks the calling
    /// (producer) thread while the queue is full.
    pub fn push(&self, mut pkt: Packet) {
        match self.overflow {
            Overflow::Block => loop {
                if self.abandoned.load(Ordering::Acquire) {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                match self.q.push(pkt) {
                    Ok(()) => break,
                    Err(back) => {
                        pkt = back;
                        self.producer
                            .wait_until(|| !self.q.is_full() || self.abandoned.load(Ordering::Acquire));
                    }
                }
            },
            Overflow::DropOldest => {
                if self.q.force_push(pkt).is_some() {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.stats.pushed.fetch_add(1, Ordering::Relaxed);
        self.stats.high_water.fetch_max(self.q.len(), Ordering::Relaxed);
        self.consumer.wake();
    }

    /// Takes the oldest packet, if any, and lets a blocked producer go on.
    pub fn pop(&self) -> Option<Packet> {
        let p = self.q.pop();
        if p.is_some() && self.overflow == Overflow::Block {
            self.producer.wake();
        }
        p
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Called by the producer when its stage has finished: nothing more will come.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.consumer.wake();
    }

    /// Closed and drained: the consumer has seen every packet.
    pub fn is_finished(&self) -> bool {
        self.closed.load(Ordering::Acquire) && self.q.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Called when the consumer's thread ends: a producer never blocks on it again.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        while self.q.pop().is_some() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.producer.wake();
    }

    pub fn snapshot(&self) -> EdgeSnapshot {
        EdgeSnapshot {
            from: self.from.clone(),
            to: self.to.clone(),
            capacity: self.q.capacity(),
            depth: self.q.len(),
            high_water: self.stats.high_water.load(Ordering::Relaxed),
            pushed: self.stats.pushed.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            overflow: self.overflow,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::packet::Header;
    use crate::pool::Pool;

    fn edge(cap: usize, overflow: Overflow) -> (Edge, Pool) {
        let w = Arc::new(Waker::new());
        w.bind_current();
        (Edge::new("a".into(), "b".into(), cap, overflow, w.clone(), w), Pool::new(8, 1))
    }

    fn pkt(pool: &Pool, seq: u64) -> Packet {
        pool.acquire(Header { seq, ..Header::default() }).unwrap()
    }

    #[test]
    fn drops_oldest_when_full() {
        let (e, pool) = edge(2, Overflow::DropOldest);
        for s in 0..4 {
            e.push(pkt(&pool, s));
        }
        assert_eq!(e.snapshot().dropped, 2);
        assert_eq!(e.pop().unwrap().header().seq, 2);
        assert_eq!(e.pop().unwrap().header().seq, 3);
        assert!(e.pop().is_none());
        assert_eq!(pool.stats().in_use, 0, "dropped packets went back to the pool");
    }

    #[test]
    fn block_waits_for_consumer_and_loses_nothing() {
        let wp = Arc::new(Waker::new());
        let wc = Arc::new(Waker::new());
        let e = Arc::new(Edge::new("a".into(), "b".into(), 2, Overflow::Block, wp.clone(), wc.clone()));
        let pool = Pool::new(8, 1);
        let e2 = e.clone();
        let producer = std::thread::spawn(move || {
            wp.bind_current();
            for s in 0..1000 {
                e2.push(pkt(&pool, s));
            }
            e2.close();
        });
        wc.bind_current();
        let mut next = 0;
        loop {
            wc.wait_until(|| !e.is_empty() || e.is_closed());
            while let Some(p) = e.pop() {
                assert_eq!(p.header().seq, next);
                next += 1;
            }
            if e.is_finished() {
                break;
            }
        }
        producer.join().unwrap();
        assert_eq!(next, 1000);
        assert_eq!(e.snapshot().dropped, 0);
        assert!(e.snapshot().high_water <= 2);
    }

    #[test]
    fn abandoned_edge_never_blocks() {
        let (e, pool) = edge(1, Overflow::Block);
        e.push(pkt(&pool, 0));
        e.abandon();
        e.push(pkt(&pool, 1));
        assert_eq!(e.snapshot().dropped, 2);
    }
}
