//! `GET /metrics`: Prometheus text format, every name prefixed `eegd_`.
//!
//! Written by hand rather than through the `prometheus` crate: the counters already live in the
//! pipeline's lock-free stats, and a registry would copy each of them into a second set of
//! atomics on every scrape; the text format itself is a few lines per family.
use super::control::Controller;
use super::hub::Hub;
use pipeline::stage::Role;
use pipeline::stats::Histogram;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Histogram bucket bounds in seconds (10 µs … 1 s).
const BOUNDS_S: [f64; 14] =
    [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 1.0];

/// Escapes a label value (`\`, `"`, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP eegd_{name} {help}");
    let _ = writeln!(out, "# TYPE eegd_{name} {kind}");
}

/// A nanosecond histogram as a Prometheus histogram in seconds.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let bounds_ns: Vec<u64> = BOUNDS_S.iter().map(|s| (s * 1e9) as u64).collect();
    for (b, c) in BOUNDS_S.iter().zip(h.cumulative(&bounds_ns)) {
        let _ = writeln!(out, "eegd_{name}_bucket{{{labels},le=\"{b}\"}} {c}");
    }
    let n = h.count();
    let _ = writeln!(out, "eegd_{name}_bucket{{{labels},le=\"+Inf\"}} {n}");
    let _ = writeln!(out, "eegd_{name}_sum{{{labels}}} {}", h.sum() as f64 / 1e9);
    let _ = writeln!(out, "eegd_{name}_count{{{labels}}} {n}");
}

pub fn render(ctl: &Controller, hub: &Hub) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let shared = ctl.shared();
    let running = ctl.is_running();
    family(&mut out, "pipeline_running", "gauge", "1 while a pipeline runs.");
    let _ = writeln!(out, "eegd_pipeline_running {}", u8::from(running));
    family(&mut out, "process_cpu_seconds_total", "counter", "User + system CPU time of the process.");
    let _ = writeln!(out, "eegd_process_cpu_seconds_total {}", super::control::process_cpu_seconds());
    let markers = stages::markers::MarkerHub::global().posted.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP eegd_markers_total Markers posted by any source (page, API, LSL inlets, files)"
    );
    let _ = writeln!(out, "# TYPE eegd_markers_total counter");
    let _ = writeln!(out, "eegd_markers_total {markers}");
    if let Some(sh) = &shared {
        let topo = sh.stages();
        let snaps = topo.snapshots();
        let l = |i: usize| format!("stage=\"{}\",type=\"{}\"", esc(&topo[i].name), topo[i].type_name);
        family(&mut out, "stage_packets_total", "counter", "Packets a stage took in (sources: gave out).");
        for (i, s) in snaps.iter().enumerate() {
            let n = if topo[i].role == Role::Source { s.packets_out } else { s.packets_in };
            let _ = writeln!(out, "eegd_stage_packets_total{{{}}} {n}", l(i));
        }
        family(&mut out, "stage_errors_total", "counter", "Errors a stage reported.");
        for (i, s) in snaps.iter().enumerate() {
            let _ = writeln!(out, "eegd_stage_errors_total{{{}}} {}", l(i), s.errors);
        }
        family(&mut out, "stage_drops_total", "counter", "Packets a stage dropped.");
        for (i, s) in snaps.iter().enumerate() {
            let _ = writeln!(out, "eegd_stage_drops_total{{{}}} {}", l(i), s.drops);
        }
        let sources: Vec<usize> = (0..snaps.len()).filter(|&i| topo[i].role == Role::Source).collect();
        family(
            &mut out,
            "stage_overruns_total",
            "counter",
            "Samples an acquisition source lost to DRDY overruns.",
        );
        for &i in &sources {
            let _ = writeln!(out, "eegd_stage_overruns_total{{{}}} {}", l(i), snaps[i].overruns);
        }
        family(
            &mut out,
            "stage_drift_ppm",
            "gauge",
            "Drift of a source's DRDY events from its nominal sample clock, ppm.",
        );
        for &i in &sources {
            let _ = writeln!(out, "eegd_stage_drift_ppm{{{}}} {}", l(i), snaps[i].drift_ppm);
        }
        family(
            &mut out,
            "stage_processing_seconds",
            "histogram",
            "Time in a stage's process/produce per call.",
        );
        for (i, st) in topo.iter().enumerate() {
            histogram(&mut out, "stage_processing_seconds", &l(i), &st.stats.process_ns);
        }
        family(
            &mut out,
            "sink_latency_seconds",
            "histogram",
            "Source has the packet's last sample → this sink has it.",
        );
        for (i, st) in topo.iter().enumerate().filter(|(_, s)| s.role == Role::Sink) {
            histogram(&mut out, "sink_latency_seconds", &l(i), &st.stats.latency_ns);
        }
        family(&mut out, "edge_queue_depth", "gauge", "Packets waiting on a cross-thread edge.");
        let edges = sh.edge_snapshots();
        for e in &edges {
            let _ = writeln!(
                out,
                "eegd_edge_queue_depth{{from=\"{}\",to=\"{}\"}} {}",
                esc(&e.from),
                esc(&e.to),
                e.depth
            );
        }
        family(&mut out, "edge_dropped_total", "counter", "Packets a drop_oldest edge dropped.");
        for e in &edges {
            let _ = writeln!(
                out,
                "eegd_edge_dropped_total{{from=\"{}\",to=\"{}\"}} {}",
                esc(&e.from),
                esc(&e.to),
                e.dropped
            );
        }
        let pool = sh.pool_stats();
        family(&mut out, "pool_packets", "gauge", "Packets in the pool.");
        let _ = writeln!(out, "eegd_pool_packets {}", pool.capacity);
        family(&mut out, "pool_in_use", "gauge", "Pool packets in use now.");
        let _ = writeln!(out, "eegd_pool_in_use {}", pool.in_use);
        family(&mut out, "pool_high_water", "gauge", "Most pool packets ever in use at once.");
        let _ = writeln!(out, "eegd_pool_high_water {}", pool.high_water);
        family(&mut out, "pool_exhausted_total", "counter", "Times a packet was asked of an empty pool.");
        let _ = writeln!(out, "eegd_pool_exhausted_total {}", pool.exhausted);
    }
    let topics = hub.topics();
    family(
        &mut out,
        "clock_offset_seconds",
        "gauge",
        "System clock minus the sample clock at a topic's newest frame (drift plus latency).",
    );
    for t in &topics {
        let _ = writeln!(
            out,
            "eegd_clock_offset_seconds{{topic=\"{}\"}} {}",
            esc(&t.name),
            t.clock_offset_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
    }
    family(&mut out, "ws_clients", "gauge", "WebSocket clients connected.");
    let _ =
        writeln!(out, "eegd_ws_clients{{endpoint=\"data\"}} {}", hub.data_clients.load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "eegd_ws_clients{{endpoint=\"control\"}} {}",
        hub.control_clients.load(Ordering::Relaxed)
    );
    family(&mut out, "ws_topic_clients", "gauge", "Data clients per topic.");
    for t in &topics {
        let _ = writeln!(out, "eegd_ws_topic_clients{{topic=\"{}\"}} {}", esc(&t.name), t.clients());
    }
    family(&mut out, "ws_frames_total", "counter", "Frames encoded and offered to a topic's clients.");
    for t in &topics {
        let _ = writeln!(
            out,
            "eegd_ws_frames_total{{topic=\"{}\"}} {}",
            esc(&t.name),
            t.frames.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "ws_dropped_frames_total",
        "counter",
        "Frames lost: `client` = a client fell behind, `broker` = the pipeline's topic queue overflowed.",
    );
    for t in &topics {
        let n = esc(&t.name);
        let _ = writeln!(
            out,
            "eegd_ws_dropped_frames_total{{topic=\"{n}\",where=\"client\"}} {}",
            t.client_drops.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "eegd_ws_dropped_frames_total{{topic=\"{n}\",where=\"broker\"}} {}",
            t.queue_drops()
        );
    }
    let rec = ctl.recording_state();
    family(&mut out, "recording_active", "gauge", "1 while a session records (0 once its recorder failed).");
    let _ = writeln!(out, "eegd_recording_active {}", u8::from(rec.is_some_and(|(_, active)| active)));
    family(
        &mut out,
        "recording_failed",
        "gauge",
        "1 while the open session's recorder has failed (until it is stopped).",
    );
    let _ = writeln!(out, "eegd_recording_failed {}", u8::from(rec.is_some_and(|(_, active)| !active)));
    family(&mut out, "recording_bytes", "gauge", "Bytes the current session's data file holds.");
    let _ = writeln!(out, "eegd_recording_bytes {}", rec.map_or(0, |(b, _)| b));
    super::quality::metrics(&mut out);
    out
}
