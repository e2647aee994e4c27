//! Event markers: how an event ("stimulus on", "eyes closed") gets into a recording.
//!
//! Whoever has an event — the daemon's `POST /api/markers`, a session, `file_source` replaying a
//! file's annotations — [`post`](MarkerHub::post)s a [`Marker`] with the time it happened. Every
//! recording sink that runs subscribes at start and gets its own bounded queue; between packets
//! it drains that queue and writes each marker at the sample whose time matches the marker's
//! (an EDF+/BDF+ annotation, or a row of the CSV markers side file). Packets are untouched.
//!
//! Real-time contract: posting and draining never lock and never allocate (the subscriber list
//! is an `ArcSwap`, read without a lock; the text is an `Arc<str>`, shared by every queue). Only
//! subscribing and unsubscribing, at a sink's start and finish, allocate.
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use pipeline::wake::Waker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// When it happened, ns since the UNIX epoch (the clock of packet timestamps).
    pub timestamp_ns: i64,
    /// How long it lasted, if it has a duration.
    pub duration_ns: Option<i64>,
    pub text: Arc<str>,
}

impl Marker {
    pub fn new(timestamp_ns: i64, text: &str) -> Marker {
        Marker { timestamp_ns, duration_ns: None, text: Arc::from(text) }
    }
}

/// Markers a subscriber holds before it drops new ones (and counts them).
pub const QUEUE_CAPACITY: usize = 256;

/// One recording sink's view of the markers.
pub struct Subscription {
    queue: ArrayQueue<Marker>,
    /// Markers lost because this subscriber's queue was full.
    pub dropped: AtomicU64,
    /// Woken after each marker, for a subscriber with a thread of its own (the daemon's tap).
    waker: Option<Arc<Waker>>,
}

impl Subscription {
    /// The next marker posted since the last call, if any. Never blocks or allocates.
    pub fn pop(&self) -> Option<Marker> {
        self.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Where markers are posted and recording sinks subscribe.
pub struct MarkerHub {
    subscribers: ArcSwap<Vec<Arc<Subscription>>>,
    /// Markers posted so far.
    pub posted: AtomicU64,
}

impl Default for MarkerHub {
    fn default() -> Self {
        MarkerHub { subscribers: ArcSwap::from_pointee(Vec::new()), posted: AtomicU64::new(0) }
    }
}

impl MarkerHub {
    /// The process's hub: every recording sink of the running pipeline subscribes here.
    pub fn global() -> &'static MarkerHub {
        static HUB: OnceLock<MarkerHub> = OnceLock::new();
        HUB.get_or_init(MarkerHub::default)
    }

    /// Hands `marker` to every subscriber; returns how many took it.
    pub fn post(&self, marker: Marker) -> usize {
        self.posted.fetch_add(1, Ordering::Relaxed);
        let subs = self.subscribers.load();
        let mut took = 0;
        for s in subs.iter() {
            if s.queue.push(marker.clone()).is_ok() {
                took += 1;
                if let Some(w) = &s.waker {
                    w.wake();
                }
            } else {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        took
    }

    /// A new subscriber: gets every marker posted from now on.
    pub fn subscribe(&self) -> Arc<Subscription> {
        self.subscribe_with(None)
    }

    /// A subscriber whose `waker` is woken after each marker it takes (a thread that waits for
    /// markers rather than draining between packets).
    pub fn subscribe_waking(&self, waker: Arc<Waker>) -> Arc<Subscription> {
        self.subscribe_with(Some(waker))
    }

    fn subscribe_with(&self, waker: Option<Arc<Waker>>) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            queue: ArrayQueue::new(QUEUE_CAPACITY),
            dropped: AtomicU64::new(0),
            waker,
        });
        self.subscribers.rcu(|v| {
            let mut v = (**v).clone();
            v.push(sub.clone());
            v
        });
        sub
    }

    pub fn unsubscribe(&self, sub: &Arc<Subscription>) {
        self.subscribers.rcu(|v| v.iter().filter(|s| !Arc::ptr_eq(s, sub)).cloned().collect::<Vec<_>>());
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_marker_until_it_leaves() {
        let hub = MarkerHub::default();
        assert_eq!(hub.post(Marker::new(1, "nobody")), 0);
        let (a, b) = (hub.subscribe(), hub.subscribe());
        assert_eq!(hub.post(Marker::new(2, "both")), 2);
        hub.unsubscribe(&a);
        assert_eq!(hub.post(Marker::new(3, "b only")), 1);
        assert_eq!(a.pop().map(|m| m.timestamp_ns), Some(2));
        assert_eq!(a.pop(), None);
        assert_eq!(b.pop().map(|m| m.timestamp_ns), Some(2));
        assert_eq!(b.pop().map(|m| m.text.to_string()), Some("b only".to_string()));
    }

    #[test]
    fn a_full_queue_counts_what_it_drops() {
        let hub = MarkerHub::default();
        let s = hub.subscribe();
        for i in 0..QUEUE_CAPACITY + 3 {
            hub.post(Marker::new(i as i64, "x"));
        }
        assert_eq!(s.dropped.load(Ordering::Relaxed), 3);
    }
}
