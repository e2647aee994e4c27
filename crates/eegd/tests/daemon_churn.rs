//! The daemon under WebSocket load: clients that come and go by the hundred, and a client that
//! never reads. Neither may panic the server, leak clients, stall the pipeline or grow memory.
mod daemon_common;

use daemon_common::{next_frame, Daemon};
use futures_util::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A metric's value from the Prometheus text (first line starting with `prefix`).
async fn metric(d: &Daemon, prefix: &str) -> Option<f64> {
    let text = d.client().get(d.url("/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `metric(prefix)` satisfies `ok` (fails after `secs`).
async fn wait_metric(d: &Daemon, prefix: &str, secs: u64, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = metric(d, prefix).await;
        if let Some(v) = v.filter(|v| ok(*v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "{prefix} stayed at {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_coming_and_going_leave_the_server_healthy() {
    let d = Daemon::start();
    let url = d.ws_url("/ws/data?topic=eeg");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else { continue };
                match (i + round) % 3 {
                    // Reads a frame, then closes politely.
                    0 => {
                        next_frame(&mut ws).await;
                        let _ = ws.send(Message::Close(None)).await;
                    }
                    // Closes before any frame.
                    1 => {
                        let _ = ws.close(None).await;
                    }
                    // Vanishes: the TCP connection is dropped without a close.
                    _ => drop(ws),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("a client task panicked");
    }
    // The server lives, the pipeline runs, every client is gone, and new clients are served.
    assert_eq!(d.get("/api/health").await.0, 200);
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["state"], "running");
    assert!(p["stages"].as_array().unwrap().iter().all(|s| s["errors"] == 0), "{p}");
    wait_metric(&d, "eegd_ws_clients{endpoint=\"data\"}", 20, |v| v == 0.0).await;
    wait_metric(&d, "eegd_ws_topic_clients{topic=\"eeg\"}", 20, |v| v == 0.0).await;
    let n = d.source_packets().await;
    d.wait_packets_above(n).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let f = next_frame(&mut ws).await;
    assert_eq!(f.channels, 4);
}

/// Emulator with 32 channels at 8000 SPS: about 1 MB/s of frames, to fill a stalled socket fast.
const FAST: &str = "stages:
  - emulator: { channels: 32, rate: 8000, batch: 32, signal: sine }
  - to_voltage: {}
  - websocket_sink: { topic: eeg }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_loses_frames_and_slows_no_one() {
    let d = Daemon::start_with(FAST, &["--bind", "127.0.0.1:0"], None);
    let url = d.ws_url("/ws/data?topic=eeg");
    // The stalled client: a small receive buffer, and it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(d.addr.parse().unwrap()).await.unwrap();
    let (_stalled, _) = tokio_tungstenite::client_async(&url, stream).await.unwrap();
    let (mut reader, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let rss_before = d.rss_kb();

    // Frames flow to the reader while the stalled client's backlog overflows and is counted.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last_seq = next_frame(&mut reader).await.seq;
    let mut frames = 0u64;
    loop {
        let f = next_frame(&mut reader).await;
        assert!(f.seq > last_seq, "frames arrive in order");
        last_seq = f.seq;
        frames += 1;
        if frames.is_multiple_of(50)
            && metric(&d, "eegd_ws_dropped_frames_total{topic=\"eeg\",where=\"client\"}").await.unwrap_or(0.0)
                > 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled client never lost a frame");
    }
    // Keep streaming a while longer: the reader goes on, memory stays bounded.
    for _ in 0..500 {
        next_frame(&mut reader).await;
    }
    let rss_after = d.rss_kb();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "the daemon grew from {rss_before} kB to {rss_after} kB with a stalled client"
    );
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["state"], "running");
    assert_eq!(p["stages"][2]["drops"], 0, "the sink never waited for a client");
}

/// Not a test but the measurement behind BENCHMARKS.md ("Daemon"): the default pipeline's
/// source → `websocket_sink` latency over 20 s, alone and with 200 clients connecting and
/// disconnecting throughout, then with one client that never reads, twice: with every thread free to run anywhere, then isolated —
/// the pipeline's group pinned to the last CPU (`runtime.groups.acquire.cpu`), which moves the
/// daemon's server threads to the others, and this test's clients there too, as clients on
/// other machines would be. Run it on a release build:
/// `cargo test --release -p eegd --test daemon_churn -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run by hand for BENCHMARKS.md"]
fn latency_with_and_without_churning_clients() {
    let default = include_str!("../../../pipelines/default.yaml");
    measure_churn("shared", default, &[], None);
    let cpus = pipeline::rt::allowed_cpus();
    let Some((pipeline_cpu, others)) = cpus.split_last().filter(|(_, o)| !o.is_empty()) else {
        println!("one CPU: no isolated run");
        return;
    };
    // The daemon moves its server threads off the pinned CPU by itself.
    let pinned = format!("{default}runtime:\n  groups: {{ acquire: {{ cpu: {pipeline_cpu} }} }}\n");
    measure_churn("isolated", &pinned, &[], Some(others.to_vec()));
}

/// One run of [`latency_with_and_without_churning_clients`]; `client_cpus` confines this test's
/// own threads.
fn measure_churn(run: &str, pipeline: &str, args: &[&str], client_cpus: Option<Vec<usize>>) {
    if let Some(c) = &client_cpus {
        pipeline::rt::pin_to_cpus(c);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || pipeline::rt::pin_to_cpus(client_cpus.as_deref().unwrap_or_default()))
        .build()
        .unwrap();
    let args: Vec<&str> = ["--bind", "127.0.0.1:0"].into_iter().chain(args.iter().copied()).collect();
    let d = Daemon::start_with(pipeline, &args, None);
    rt.block_on(async {
        let window = Duration::from_secs(20);
        let measure = |label: &'static str| {
            let d = &d;
            async move {
                let (_, p) = d.get("/api/pipeline").await;
                let sink =
                    p["stages"].as_array().unwrap().iter().find(|s| s["name"] == "websocket_sink").unwrap();
                let l = &sink["latency_us"];
                println!(
                    "{run}, {label}: websocket_sink latency over {} packets: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
                    l["count"], l["p50"], l["p99"], l["p999"], l["max"]
                );
            }
        };
        // One reader, so the topic is live in both runs.
        let url = d.ws_url("/ws/data?topic=eeg");
        let (mut reader, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let read = tokio::spawn(async move {
            loop {
                next_frame(&mut reader).await;
            }
        });
        d.send("POST", "/api/pipeline/restart", "").await;
        tokio::time::sleep(window).await;
        measure("alone").await;

        d.send("POST", "/api/pipeline/restart", "").await;
        let end = Instant::now() + window;
        let mut tasks = Vec::new();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        for _ in 0..200 {
            let (url, n) = (url.clone(), connections.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
                        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        next_frame(&mut ws).await;
                        let _ = ws.close(None).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        measure("200 churning clients").await;
        println!("{run}: connections made: {}", connections.load(std::sync::atomic::Ordering::Relaxed));

        // A client that never reads, with a small receive buffer: its backlog overflows at once.
        d.send("POST", "/api/pipeline/restart", "").await;
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let stream = sock.connect(d.addr.parse().unwrap()).await.unwrap();
        let (_stalled, _) = tokio_tungstenite::client_async(&url, stream).await.unwrap();
        tokio::time::sleep(window).await;
        measure("a client that never reads").await;
        let dropped = metric(&d, "eegd_ws_dropped_frames_total{topic=\"eeg\",where=\"client\"}").await;
        println!("{run}: frames the stalled client lost: {dropped:?}");
        read.abort();
    });
}
