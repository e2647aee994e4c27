//! The hand-off between `websocket_sink` stages and whoever serves their topics (the daemon's
//! WebSocket broker, or a benchmark standing in for it).
//!
//! A sink pushes packets (counted references, no copy) into its topic's bounded queue with
//! drop-oldest: the pipeline never waits for a reader. A topic with no subscriber takes nothing,
//! so an unwatched topic holds no pool packets.
use crossbeam_queue::ArrayQueue;
use pipeline::wake::Waker;
use pipeline::Packet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One topic's queue and counters.
pub struct Topic {
    pub name: String,
    queue: ArrayQueue<Packet>,
    subscribers: AtomicUsize,
    reader: Mutex<Option<Arc<Waker>>>,
    pub published: AtomicU64,
    pub dropped: AtomicU64,
}

/// Packets a topic holds for a slow reader before it drops the oldest.
pub const TOPIC_CAPACITY: usize = 4;

impl Topic {
    fn new(name: &str) -> Topic {
        Topic {
            name: name.to_string(),
            queue: ArrayQueue::new(TOPIC_CAPACITY),
            subscribers: AtomicUsize::new(0),
            reader: Mutex::new(None),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Called by the sink on the data path: never blocks, never allocates.
    pub fn publish(&self, pkt: Packet) {
        if self.subscribers.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.published.fetch_add(1, Ordering::Relaxed);
        if self.queue.force_push(pkt).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // `try_lock`: the reader registers once; the data path never waits on that.
        if let Ok(r) = self.reader.try_lock() {
            if let Some(w) = r.as_ref() {
                w.wake();
            }
        }
    }

    /// Registers a reader; packets are queued from now on.
    pub fn subscribe(&self, waker: Option<Arc<Waker>>) {
        if let Ok(mut r) = self.reader.lock() {
            *r = waker;
        }
        self.subscribers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unsubscribe(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        while self.queue.pop().is_some() {}
    }

    pub fn has_packets(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next queued packet, if any.
    pub fn pop(&self) -> Option<Packet> {
        self.queue.pop()
    }
}

/// Topics by name, shared by the whole process.
#[derive(Default)]
pub struct Broker {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

impl Broker {
    /// The process's broker.
    pub fn global() -> &'static Broker {
        static B: OnceLock<Broker> = OnceLock::new();
        B.get_or_init(Broker::default)
    }

    /// The topic called `name`, made on first use (at graph build time, not on the data path).
    pub fn topic(&self, name: &str) -> Arc<Topic> {
        let mut t = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        t.entry(name.to_string()).or_insert_with(|| Arc::new(Topic::new(name))).clone()
    }

    /// Drops topic `name` from the broker unless someone other than the broker and the one
    /// caller still holding it (the reader giving it up) has it: a topic no sink publishes
    /// does not outlive its last reader.
    pub fn forget(&self, name: &str) {
        let mut t = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if t.get(name).is_some_and(|topic| Arc::strong_count(topic) <= 2) {
            t.remove(name);
        }
    }

    /// Topics the broker holds now.
    pub fn len(&self) -> usize {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
