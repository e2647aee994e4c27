//! `lsl_sink`'s data path allocates nothing: 10,000 packets through its `process`, first with
//! no LSL thread taking the chunks (every packet beyond the queue drops the oldest, counted),
//! then — where liblsl loads (`EEGD_LIBLSL`, or on the library path) — with its outlet and
//! thread running, the LSL thread's Rust side counted too; and `lsl_source` pulling a stream
//! this test publishes, in a running pipeline.
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

    lsl_source_data_path_allocates_nothing();
}

/// `lsl_source` (signal) → `null_sink` in a running pipeline, fed by an outlet of this process:
/// samples pulled, timestamped and emitted (40 packets or more) without an allocation.
fn lsl_source_data_path_allocates_nothing() {
    use pipeline::exec::Pipeline;
    use pipeline::testing::wait_packets_in;
    use pipeline::topology::graph::plan;

    let info = lsl::StreamInfo::new(
        "eegd-zero-alloc-in",
        "EEG",
        4,
        1000.0,
        lsl::Format::Float32,
        "eegd-zero-alloc-in",
    )
    .unwrap();
    let mut outlet = lsl::Outlet::new(&info, 10).unwrap();
    let src =
        "stages:\n  - lsl_source: { stream_name: eegd-zero-alloc-in, timeout_s: 10 }\n  - null_sink: {}\n";
    let p = Pipeline::start(plan("zero_alloc_lsl", src).expect("valid pipeline")).expect("starts");
    let shared = p.shared().clone();
    let sink = shared.stage("null_sink").unwrap().stats.clone();
    let data = vec![2.5f32; 4 * 10];
    let mut stamps = [0.0f64; 10];
    let mut k = 0u64;
    let mut push = |outlet: &mut lsl::Outlet, chunks: u64| {
        for _ in 0..chunks {
            for (j, t) in stamps.iter_mut().enumerate() {
                *t = 1000.0 + (k * 10 + j as u64) as f64 / 1000.0;
            }
            outlet.push_chunk(&data, &stamps).unwrap();
            k += 1;
        }
    };
    // Warm up until packets flow (the inlet connects, the first time correction is taken).
    while sink.packets_in.load(Ordering::Relaxed) < 20 {
        push(&mut outlet, 1);
        std::thread::yield_now();
    }
    let before = allocations();
    let n0 = sink.packets_in.load(Ordering::Relaxed);
    push(&mut outlet, 400);
    // 4,000 samples at most 100 (rate / 10) to a packet: at least 40 packets while they flow.
    wait_packets_in(&[&sink], n0 + 40);
    let after = allocations();
    p.join();
    assert_eq!(after - before, 0, "allocations on lsl_source's data path");
}
