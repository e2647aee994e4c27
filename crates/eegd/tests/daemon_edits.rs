//! Live edits through `eegd serve`: `POST /api/pipeline/stages`, a pipeline file applied live
//! by `POST /api/pipeline/start`, and SIGHUP.
mod daemon_common;

use daemon_common::{Daemon, PIPELINE};
use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn names(p: &Value) -> Vec<String> {
    p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

fn stage<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name}"))
}

/// Waits until stage `name` has taken more than `n` packets.
async fn wait_stage_packets(d: &Daemon, name: &str, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = d.get("/api/pipeline").await;
        let now = p["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["packets"].as_u64());
        if let Some(now) = now.filter(|&k| k > n) {
            return now;
        }
        assert!(Instant::now() < deadline, "`{name}` stayed at {now:?} packets");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stages_are_added_removed_and_replaced_while_the_source_runs() {
    let d = Daemon::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/control")).await.unwrap();
    let before = d.wait_packets_above(5).await;

    let add = r#"{"add": {"fft": {"size": 64, "hop": 32, "inputs": ["bandpass"]}}}"#;
    let (code, r) = d.send("POST", "/api/pipeline/stages", add).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["applied"], "live");
    assert_eq!(r["edits"][0]["op"], "add");
    let (code, r) = d
        .send(
            "POST",
            "/api/pipeline/stages",
            r#"{"add": {"null_sink": {"name": "spectra", "inputs": ["fft"]}}}"#,
        )
        .await;
    assert_eq!(code, 200, "{r}");
    wait_stage_packets(&d, "spectra", 2).await;
    let (_, p) = d.get("/api/pipeline").await;
    assert!(names(&p).ends_with(&["fft".to_string(), "spectra".to_string()]), "{:?}", names(&p));
    assert!(p["config"]["source"].as_str().unwrap().contains("spectra"), "the running config shows the edit");

    // Every edit reaches /ws/control.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "edit events: {seen:?}");
        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["event"] == "edit" {
                seen.push(v["edit"]["stage"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(seen, ["fft", "spectra"]);

    // Removing a stage others need, without cascade: 409 naming them.
    let (code, r) = d.send("POST", "/api/pipeline/stages", r#"{"remove": "fft"}"#).await;
    assert_eq!(code, 409, "{r}");
    assert!(r["error"].as_str().unwrap().contains("`spectra`"), "{r}");
    // Unknown: 404. Invalid: 400 at its place in the request, and nothing changes.
    let (code, _) = d.send("POST", "/api/pipeline/stages", r#"{"remove": "nope"}"#).await;
    assert_eq!(code, 404);
    let bad = "{\"add\": {\"fft\": {\"size\": 64, \"name\": \"fft2\",\n  \"inputs\": [\"bandpas\"]}}}";
    let (code, r) = d.send("POST", "/api/pipeline/stages", bad).await;
    assert_eq!(code, 400, "{r}");
    assert_eq!(r["errors"][0]["line"], 2, "{r}");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("did you mean `bandpass`"), "{r}");
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(names(&p).len(), 7);

    let (code, r) = d.send("POST", "/api/pipeline/stages", r#"{"remove": "fft", "cascade": true}"#).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["edits"][0]["removed"], serde_json::json!(["fft", "spectra"]));

    // Replace bandpass with highpass: the websocket sink after it keeps being fed.
    let (code, r) = d
        .send("POST", "/api/pipeline/stages", r#"{"replace": "bandpass", "with": {"highpass": {"hz": 1}}}"#)
        .await;
    assert_eq!(code, 200, "{r}");
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(stage(&p, "bandpass")["type"], "highpass");
    let n = stage(&p, "websocket_sink")["packets"].as_u64().unwrap();
    wait_stage_packets(&d, "websocket_sink", n + 5).await;
    // The source never restarted.
    assert!(d.source_packets().await > before);
    assert_eq!(p["stages"][0]["state"], "running");
}

#[tokio::test]
async fn a_recording_locks_what_feeds_it_against_edits() {
    let d = Daemon::start();
    d.wait_packets_above(5).await;
    let (code, r) = d.send("POST", "/api/recording/start", "{}").await;
    assert_eq!(code, 200, "{r}");
    let (code, r) = d
        .send("POST", "/api/pipeline/stages", r#"{"replace": "to_voltage", "with": {"to_voltage": {}}}"#)
        .await;
    assert_eq!(code, 409, "{r}");
    assert!(r["error"].as_str().unwrap().contains("records"), "{r}");
    let (code, _) = d.send("POST", "/api/recording/stop", "{}").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_file_with_the_same_sources_is_applied_live_and_one_with_new_sources_restarts() {
    let d = Daemon::start();
    let before = d.wait_packets_above(5).await;
    let edited = PIPELINE.replace("high_hz: 40", "high_hz: 30").replace(
        "  - websocket_sink: { topic: eeg }\n",
        "  - websocket_sink: { topic: eeg }\n  - null_sink: { name: extra, inputs: [bandpass] }\n",
    );
    let (code, r) = d.send("POST", "/api/pipeline/start", edited.clone()).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["applied"], "live", "{r}");
    let ops: Vec<&str> = r["edits"].as_array().unwrap().iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["params", "add"], "{r}");
    assert_eq!(stage(&r, "bandpass")["params"]["high_hz"], 30.0);
    wait_stage_packets(&d, "extra", 2).await;
    assert!(d.source_packets().await > before, "the source went on counting");

    let faster = edited.replace("rate: 1000", "rate: 500");
    let (code, r) = d.send("POST", "/api/pipeline/start", faster).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["applied"], "restart", "{r}");
}

#[tokio::test]
async fn sighup_applies_the_edited_config_file_and_ignores_a_broken_one() {
    let d = Daemon::start();
    d.wait_packets_above(5).await;
    let cfg = d.data_dir.parent().unwrap().join("pipeline.yaml");
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);

    std::fs::write(&cfg, PIPELINE.replace("hz: 50 }", "hz: 60 }")).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = d.get("/api/pipeline").await;
        if stage(&p, "notch")["params"]["hz"] == 60.0 {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not apply the file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = d.source_packets().await;

    std::fs::write(&cfg, "stages:\n  - emulator: { channels: 4, rate: 1000 }\n  - notch: { hzz: 50 }\n")
        .unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The running pipeline goes on, unchanged.
    d.wait_packets_above(n + 20).await;
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["state"], "running");
    assert_eq!(stage(&p, "notch")["params"]["hz"], 60.0);
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// The issue's acceptance run: the default pipeline, a client on `/ws/data?topic=eeg`, a csv_sink
/// recording the whole time; a 5 s BDF session started and stopped, an `fft` branch added and
/// removed. The stream never breaks, and the BDF holds every sample from within a packet of the
/// start request to the stop request.
#[tokio::test]
async fn recording_and_an_added_branch_never_break_the_live_stream() {
    let default = include_str!("../../../pipelines/default.yaml");
    let pipeline = format!(
        "{default}  - csv_sink: {{ name: everything, path: everything.csv, inputs: [to_voltage] }}\nrecording: {{ format: bdf }}\n"
    );
    let d = Daemon::start_with(&pipeline, &["--bind", "127.0.0.1:0"], None);
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg")).await.unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        loop {
            tokio::select! {
                _ = stop_rx.changed() => return frames,
                m = ws.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        let f = daemon_common::parse_frame(&b);
                        frames.push((f.seq, f.timestamp_ns, f.samples, f.rate));
                    }
                    Some(Ok(_)) => {}
                    _ => return frames,
                },
            }
        }
    });
    d.wait_packets_above(50).await;

    let start_req = now_ns();
    let (code, r) = d.send("POST", "/api/recording/start", r#"{"participant": "acc"}"#).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["format"], "bdf");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stop_req = now_ns();
    let (code, meta) = d.send("POST", "/api/recording/stop", "").await;
    assert_eq!(code, 200, "{meta}");
    assert_eq!(meta["status"], "complete", "{meta}");

    let (code, r) = d
        .send(
            "POST",
            "/api/pipeline/stages",
            r#"{"add": {"fft": {"name": "fft2", "size": 256, "inputs": ["bandpass"]}}}"#,
        )
        .await;
    assert_eq!(code, 200, "{r}");
    let (code, r) = d
        .send(
            "POST",
            "/api/pipeline/stages",
            r#"{"add": {"null_sink": {"name": "fft2_sink", "inputs": ["fft2"]}}}"#,
        )
        .await;
    assert_eq!(code, 200, "{r}");
    wait_stage_packets(&d, "fft2_sink", 3).await;
    let (code, r) = d.send("POST", "/api/pipeline/stages", r#"{"remove": "fft2", "cascade": true}"#).await;
    assert_eq!(code, 200, "{r}");
    let n = d.source_packets().await;
    d.wait_packets_above(n + 50).await;
    let _ = stop_tx.send(true);
    let frames = reader.await.unwrap();
    // Frames the daemon dropped for this client (a slow reader) or before the broker, counted.
    let metrics = d.client().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let dropped: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("eegd_ws_dropped_frames_total{topic=\"eeg\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let (code, _) = d.send("POST", "/api/pipeline/stop", "").await;
    assert_eq!(code, 200);

    // The live stream: seq + 1 and timestamp + samples / rate, every frame, all the way; a
    // larger step only where a counted drop explains it (and then the time steps with it).
    assert!(frames.len() > 1000, "{} frames", frames.len());
    let mut skipped = 0;
    for w in frames.windows(2) {
        let ((s0, t0, n0, rate), (s1, t1, _, _)) = (w[0], w[1]);
        assert!(s1 > s0, "seq went from {s0} to {s1}: the source's counter reset");
        skipped += s1 - s0 - 1;
        let step = ((s1 - s0) as f64 * n0 as f64 * 1e9 / rate).round() as i64;
        assert_eq!(t1 - t0, step, "timestamp after seq {s0}");
    }
    assert!(skipped <= dropped, "{skipped} frames missing, {dropped} counted as dropped");
    let packet_ns = (frames[0].2 as f64 * 1e9 / frames[0].3) as i64;

    // The BDF: from within one packet of the start request, every sample to the stop request.
    let rate = meta["rate"].as_f64().unwrap();
    let first = meta["first_sample_ns"].as_i64().expect("a first sample");
    let written = meta["samples_written"].as_u64().unwrap();
    assert_eq!(meta["gaps"], 0, "{meta}");
    assert_eq!(meta["samples_dropped_upstream"], 0, "{meta}");
    assert!(
        first >= start_req - packet_ns,
        "first sample {first} before the request {start_req} by more than a packet"
    );
    assert!(first < start_req + 1_000_000_000, "first sample {first} long after the request {start_req}");
    // What the recorder was given runs to the stop request; the file holds it in whole data
    // records (a last partial record is counted as `samples_unwritten`, not padded).
    let unwritten = meta["samples_unwritten"].as_u64().unwrap_or(0);
    let given_last = first + ((written + unwritten - 1) as f64 * 1e9 / rate).round() as i64;
    assert!(
        given_last >= stop_req - packet_ns,
        "the recorder's last sample {given_last} is more than a packet before the stop request {stop_req}"
    );
    let last = first + ((written - 1) as f64 * 1e9 / rate).round() as i64;
    // The csv_sink that ran the whole time has exactly those samples in that span.
    let session = d.sessions().into_iter().next().unwrap();
    let bdf = std::fs::read(session.join("recording.bdf")).unwrap();
    assert!(bdf.len() > 256, "a BDF with data");
    let csv = std::fs::read_to_string(d.data_dir.join("everything.csv")).unwrap();
    let times: Vec<i64> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let t = l.split(',').next().unwrap();
            let (s, us) = t.split_once('.').unwrap();
            s.parse::<i64>().unwrap() * 1_000_000 + us.parse::<i64>().unwrap()
        })
        .collect();
    let in_span = times.iter().filter(|&&t| t >= first / 1000 && t <= last / 1000).count();
    assert_eq!(in_span as u64, written, "the BDF holds every sample the csv_sink saw in its span");
}
