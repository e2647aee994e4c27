//! The WebSocket side of the broker: one thread takes packets from the pipeline's broker
//! topics, encodes each once as a binary frame (docs/protocol.md) and fans it out to
//! that topic's clients through a `tokio::sync::broadcast` channel.
//!
//! Why this shape:
//! - The pipeline hands packets to [`stages::broker::Topic`], a bounded drop-oldest queue, and
//!   never waits. Only this thread reads it, so the pipeline never awaits or blocks on the server.
//! - One thread for every topic, parked until a topic has a packet: no thread per client, no
//!   polling. A topic nobody watches is unsubscribed, so it holds no pool packets.
//! - `broadcast` is bounded, and each client's task keeps at most [`CLIENT_BACKLOG`] frames
//!   while its socket is slow, dropping (and counting) the oldest beyond that: a client that
//!   never reads holds a bounded number of shared frames. A receiver dropped by a
//!   disconnecting client's task is simply gone: the sender never fails because of it.
use bytes::Bytes;
use pipeline::wake::Waker;
use pipeline::{Kind, Packet};
use stages::broker::{Broker, Topic};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Topics the hub serves at once. A topic no client watches and no `websocket_sink` publishes
/// is forgotten when its last client leaves, so asking for made-up names costs nothing lasting.
pub const MAX_TOPICS: usize = 64;

/// Frames a client may fall behind before it loses the oldest.
pub const CLIENT_BACKLOG: usize = 64;

/// Bytes of the frame header before the samples.
pub const FRAME_HEADER: usize = 40;
pub const FRAME_MAGIC: &[u8; 4] = b"EEGD";
pub const FRAME_VERSION: u16 = 1;

/// The frame's `kind` code for a packet kind (raw counts are not sent).
pub fn kind_code(k: Kind) -> u16 {
    match k {
        Kind::Voltage | Kind::Raw => 1,
        Kind::Spectrum => 2,
        Kind::BandPower => 3,
    }
}

/// Encodes one packet as a binary frame: the 40-byte little-endian header, then
/// channels × samples `f32`, channel-major.
pub fn encode(pkt: &Packet) -> Bytes {
    let h = pkt.header();
    let values = pkt.f32s();
    let rate = match h.kind {
        // A spectrum's "rate" is its bin spacing in Hz.
        Kind::Spectrum if h.meta.axis.len() >= 2 => h.meta.axis[1] - h.meta.axis[0],
        _ => h.rate,
    };
    let mut b = Vec::with_capacity(FRAME_HEADER + 4 * values.len());
    b.extend_from_slice(FRAME_MAGIC);
    b.extend_from_slice(&FRAME_VERSION.to_le_bytes());
    b.extend_from_slice(&kind_code(h.kind).to_le_bytes());
    b.extend_from_slice(&h.channels.to_le_bytes());
    b.extend_from_slice(&h.samples.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&h.seq.to_le_bytes());
    b.extend_from_slice(&h.timestamp_ns.to_le_bytes());
    match h.kind {
        Kind::Raw => b.extend(pkt.i32s().iter().flat_map(|&v| (v as f32).to_le_bytes())),
        _ => b.extend(values.iter().flat_map(|v| v.to_le_bytes())),
    }
    Bytes::from(b)
}

/// One topic as the server sees it.
pub struct TopicHub {
    pub name: String,
    topic: Arc<Topic>,
    tx: broadcast::Sender<Bytes>,
    clients: AtomicUsize,
    /// Frames handed to the clients' channel.
    pub frames: AtomicU64,
    /// Frames clients lost because they fell behind (summed over clients).
    pub client_drops: AtomicU64,
    /// Wall clock minus the time of the last frame's last sample, ns: how far the stream's
    /// sample clock (first timestamp + n / rate) is from the system clock.
    pub clock_offset_ns: AtomicI64,
}

impl TopicHub {
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Packets the pipeline dropped because this thread had not taken them yet.
    pub fn queue_drops(&self) -> u64 {
        self.topic.dropped.load(Ordering::Relaxed)
    }
}

/// The server's topics and the thread that feeds them.
pub struct Hub {
    topics: Mutex<HashMap<String, Arc<TopicHub>>>,
    /// Bumped whenever the set of watched topics changes, so the thread re-reads it.
    generation: AtomicU64,
    stop: AtomicBool,
    waker: Arc<Waker>,
    /// Data and control WebSocket clients connected now.
    pub data_clients: AtomicUsize,
    pub control_clients: AtomicUsize,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A client's place on a topic; leaving (drop) unsubscribes the topic when it was the last.
pub struct Subscription {
    hub: Arc<Hub>,
    pub topic: Arc<TopicHub>,
    pub rx: broadcast::Receiver<Bytes>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(&self.topic);
    }
}

impl Hub {
    /// Starts the thread that feeds the topics; it runs `setup` first.
    pub fn start(setup: impl FnOnce() + Send + 'static) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            topics: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            waker: Arc::new(Waker::new()),
            data_clients: AtomicUsize::new(0),
            control_clients: AtomicUsize::new(0),
            thread: Mutex::new(None),
        });
        let h = hub.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let t = std::thread::Builder::new()
            .name("eegd-broker".into())
            .spawn(move || {
                setup();
                h.waker.bind_current();
                let _ = ready_tx.send(());
                h.run();
            })
            .expect("spawning the broker thread");
        let _ = ready_rx.recv();
        *hub.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        hub
    }

    /// Stops the thread and waits for it.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// Every topic a client has asked for so far.
    pub fn topics(&self) -> Vec<Arc<TopicHub>> {
        let mut v: Vec<_> = self.topics.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Joins topic `name` (it need not exist in the running pipeline yet); `None` when
    /// [`MAX_TOPICS`] others are served.
    pub fn join(self: &Arc<Self>, name: &str) -> Option<Subscription> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if !topics.contains_key(name) && topics.len() >= MAX_TOPICS {
            return None;
        }
        let th = topics
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(TopicHub {
                    name: name.to_string(),
                    topic: Broker::global().topic(name),
                    tx: broadcast::channel(CLIENT_BACKLOG).0,
                    clients: AtomicUsize::new(0),
                    frames: AtomicU64::new(0),
                    client_drops: AtomicU64::new(0),
                    clock_offset_ns: AtomicI64::new(0),
                })
            })
            .clone();
        let rx = th.tx.subscribe();
        if th.clients.fetch_add(1, Ordering::Relaxed) == 0 {
            th.topic.subscribe(Some(self.waker.clone()));
            self.generation.fetch_add(1, Ordering::Release);
            self.waker.wake();
        }
        Some(Subscription { hub: self.clone(), topic: th, rx })
    }

    fn leave(&self, th: &TopicHub) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if th.clients.fetch_sub(1, Ordering::Relaxed) == 1 {
            th.topic.unsubscribe();
            // Held by the broker's map and this hub only: no `websocket_sink` publishes it.
            if Arc::strong_count(&th.topic) <= 2 {
                topics.remove(&th.name);
                Broker::global().forget(&th.name);
            }
            self.generation.fetch_add(1, Ordering::Release);
            self.waker.wake();
        }
    }

    fn run(&self) {
        let mut gen = u64::MAX;
        let mut watched: Vec<Arc<TopicHub>> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let g = self.generation.load(Ordering::Acquire);
            if g != gen {
                gen = g;
                watched = self.topics().into_iter().filter(|t| t.clients() > 0).collect();
            }
            for th in &watched {
                while let Some(pkt) = th.topic.pop() {
                    let frame = encode(&pkt);
                    let (series, end) = {
                        let h = pkt.header();
                        let end = h.timestamp_ns + (h.samples as f64 * 1e9 / h.rate.max(1e-9)) as i64;
                        (matches!(h.kind, Kind::Voltage | Kind::Raw), end)
                    };
                    drop(pkt);
                    if series {
                        th.clock_offset_ns.store(now_ns() - end, Ordering::Relaxed);
                    }
                    th.frames.fetch_add(1, Ordering::Relaxed);
                    // Fails only when no receiver is left; the frame is then simply not needed.
                    let _ = th.tx.send(frame);
                }
            }
            let stop = &self.stop;
            self.waker.wait_until(|| {
                stop.load(Ordering::Relaxed)
                    || self.generation.load(Ordering::Acquire) != gen
                    || watched.iter().any(|t| t.topic.has_packets())
            });
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::voltage_header;
    use pipeline::Pool;

    #[test]
    fn frame_header_is_little_endian_and_data_channel_major() {
        let pool = Pool::new(1, 6);
        let mut hdr = voltage_header(2, 3, 250.0);
        hdr.seq = 7;
        hdr.timestamp_ns = 1_000_000_123;
        let mut p = pool.acquire(hdr).unwrap();
        p.make_mut().unwrap().f32s_mut().copy_from_slice(&[1.0, 2.0, 3.0, -1.0, -2.0, -3.0]);
        let f = encode(&p);
        assert_eq!(f.len(), FRAME_HEADER + 6 * 4);
        assert_eq!(&f[0..4], b"EEGD");
        assert_eq!(u16::from_le_bytes([f[4], f[5]]), 1);
        assert_eq!(u16::from_le_bytes([f[6], f[7]]), 1);
        assert_eq!(u32::from_le_bytes(f[8..12].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(f[12..16].try_into().unwrap()), 3);
        assert_eq!(f64::from_le_bytes(f[16..24].try_into().unwrap()), 250.0);
        assert_eq!(u64::from_le_bytes(f[24..32].try_into().unwrap()), 7);
        assert_eq!(i64::from_le_bytes(f[32..40].try_into().unwrap()), 1_000_000_123);
        let v: Vec<f32> = f[40..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(v, [1.0, 2.0, 3.0, -1.0, -2.0, -3.0]);
    }
}
