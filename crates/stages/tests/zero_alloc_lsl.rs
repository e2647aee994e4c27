//! `lsl_sink`'s data path allocates nothing: 10,000 packets through its `process`, first with
//! no LSL thread taking the chunks (every packet beyond the queue drops the oldest, counted),
//! then — where liblsl loads (`EEGD_LIBLSL`, or on the library path) — with its outlet and
//! thread running, the LSL thread's Rust side counted too.
//!
//! Run without libtest (`harness = false`): libtest's main thread allocates while the test
//! thread runs, and this measurement is short enough to meet it.
use pipeline::alloc_count::{allocations, CountingAlloc};
use pipeline::testing::Harness;
use pipeline::{Header, Kind, StreamInfo, StreamMeta};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const CH: usize = 8;
const N: usize = 16;

/// Every field given: `Header::default()` would allocate a fresh `StreamMeta`.
fn header(k: i64, meta: &Arc<StreamMeta>) -> Header {
    Header {
        stream_id: 0,
        seq: k as u64,
        ready_ns: 0,
        kind: Kind::Voltage,
        channels: CH as u32,
        samples: N as u32,
        rate: 4000.0,
        timestamp_ns: 1_700_000_000_000_000_000 + k * 4_000_000,
        meta: meta.clone(),
    }
}

fn main() {
    lsl_sink_data_path_allocates_nothing();
    println!("lsl_sink_data_path_allocates_nothing: ok");
}

fn lsl_sink_data_path_allocates_nothing() {
    stages::link();
    let meta =
        Arc::new(StreamMeta { labels: (1..=CH).map(|c| format!("Ch{c}")).collect(), ..Default::default() });
    let input =
        StreamInfo { kind: Kind::Voltage, rate: 4000.0, channels: CH, max_samples: N, meta: meta.clone() };
    let values = vec![1.5f32; CH * N];
    let params = serde_json::json!({"stream_name": "eegd-zero-alloc", "source_id": "eegd-zero-alloc"});

    // No LSL thread: the queue fills, then each packet reuses the oldest chunk.
    let mut h = Harness::new("lsl_sink", params.clone(), std::slice::from_ref(&input), 4).unwrap();
    for k in 0..100 {
        h.push(0, h.packet_f32(header(k, &meta), &values)).unwrap();
    }
    let before = allocations();
    for k in 100..10_100 {
        h.push(0, h.packet_f32(header(k, &meta), &values)).unwrap();
    }
    assert_eq!(allocations() - before, 0, "allocations on lsl_sink's data path");
    let queued = stages::lsl_sink::CHUNKS as u64;
    assert_eq!(
        h.stats().drops.load(Ordering::Relaxed),
        10_100 - queued,
        "every packet beyond the queue counted"
    );

    if lsl::available().is_err() {
        eprintln!("liblsl not loadable here: the outlet half of this test needs EEGD_LIBLSL");
        return;
    }
    // With the outlet: the LSL thread takes every chunk, and its Rust side allocates nothing.
    let mut h = Harness::new("lsl_sink", params, std::slice::from_ref(&input), 4).unwrap();
    h.start().unwrap();
    for k in 0..100 {
        h.push(0, h.packet_f32(header(k, &meta), &values)).unwrap();
    }
    let before = allocations();
    for k in 100..10_100 {
        h.push(0, h.packet_f32(header(k, &meta), &values)).unwrap();
    }
    let after = allocations();
    h.finish().unwrap();
    assert_eq!(after - before, 0, "allocations with the outlet running");
}
