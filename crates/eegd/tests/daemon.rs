//! End-to-end tests of `eegd serve` over HTTP and WebSocket: the real binary on a free port.
mod daemon_common;

use daemon_common::{next_frame, Daemon};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn stage<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

#[tokio::test]
async fn health_state_stages_and_live_parameters() {
    let d = Daemon::start();
    assert_eq!(d.get("/api/health").await, (200, json!({"status": "ok"})));

    let (code, p) = d.get("/api/pipeline").await;
    assert_eq!(code, 200);
    assert_eq!(p["state"], "running");
    assert!(p["cpu_percent"].as_f64().is_some_and(|c| c >= 0.0), "{p}");
    let names: Vec<&str> =
        p["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["emulator", "to_voltage", "notch", "bandpass", "websocket_sink"]);
    let tv = stage(&p, "to_voltage");
    assert_eq!(tv["output"]["channels"], 4);
    assert_eq!(tv["output"]["units"], "uV");
    assert_eq!(tv["output"]["labels"].as_array().unwrap().len(), 4);
    assert_eq!(stage(&p, "bandpass")["params"]["high_hz"], 40.0);

    let (code, cat) = d.get("/api/stages").await;
    assert_eq!(code, 200);
    let bp = cat.as_array().unwrap().iter().find(|s| s["type"] == "bandpass").unwrap();
    assert!(bp["params_schema"]["properties"]["high_hz"].is_object(), "{bp}");

    let (code, r) = d.send("PATCH", "/api/stages/bandpass/params", r#"{"high_hz": 30}"#).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["params"]["high_hz"], 30.0);
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(stage(&p, "bandpass")["params"]["high_hz"], 30.0);
    assert_eq!(p["config"]["overrides"]["bandpass"]["high_hz"], 30.0);

    let (code, r) = d.send("PATCH", "/api/stages/bandpass/params", r#"{"high_hz": -5}"#).await;
    assert_eq!(code, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("high_hz"), "{r}");
    let (code, _) = d.send("PATCH", "/api/stages/bandpass/params", r#"{"hgh_hz": 5}"#).await;
    assert_eq!(code, 400);
    let (code, _) = d.send("PATCH", "/api/stages/bandpass/params", "not json").await;
    assert_eq!(code, 400);
    let (code, r) = d.send("PATCH", "/api/stages/nope/params", r#"{"hz": 5}"#).await;
    assert_eq!(code, 404, "{r}");
    // The refused changes left the applied one in place.
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(stage(&p, "bandpass")["params"]["high_hz"], 30.0);
}

#[tokio::test]
async fn recording_locks_upstream_and_leaves_a_session_folder() {
    let d = Daemon::start();
    let (code, r) =
        d.send("POST", "/api/recording/start", r#"{"participant": "p01", "notes": "eyes closed"}"#).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["format"], "csv");
    let (code, _) = d.send("POST", "/api/recording/start", "{}").await;
    assert_eq!(code, 409, "a second recording");

    // The recorder takes `to_voltage`: it and the emulator are locked, the filters after it not.
    let (code, r) = d.send("PATCH", "/api/stages/to_voltage/params", r#"{"vref": 2.5}"#).await;
    assert_eq!(code, 409, "{r}");
    let (code, _) = d.send("PATCH", "/api/stages/emulator/params", r#"{"amplitude_uv": 10}"#).await;
    assert_eq!(code, 409);
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(stage(&p, "emulator")["locked"], true);
    assert_eq!(stage(&p, "bandpass")["locked"], false);
    let (code, r) = d.send("PATCH", "/api/stages/notch/params", r#"{"hz": 60}"#).await;
    assert_eq!(code, 200, "{r}");
    // A file with other sources would restart the pipeline: refused while recording.
    let other = daemon_common::PIPELINE.replace("rate: 1000", "rate: 500");
    let (code, _) = d.send("POST", "/api/pipeline/start", other).await;
    assert_eq!(code, 409, "replacing the pipeline while recording");
    let (code, m) = d.send("POST", "/api/markers", r#"{"label": "stimulus"}"#).await;
    assert_eq!(code, 200, "{m}");

    let before = d.source_packets().await;
    d.wait_packets_above(before + 20).await;
    let (code, r) = d.send("POST", "/api/recording/stop", "").await;
    assert_eq!(code, 200, "{r}");
    let sessions = d.sessions();
    assert_eq!(sessions.len(), 1);
    let dir = &sessions[0];
    assert_eq!(r["session"], dir.file_name().unwrap().to_str().unwrap());
    assert!(dir.file_name().unwrap().to_str().unwrap().ends_with("_p01"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session_meta.json")).unwrap()).unwrap();
    assert_eq!(meta["participant"], "p01");
    assert_eq!(meta["notes"], "eyes closed");
    assert!(meta["stop_time"].is_string(), "{meta}");
    assert_eq!(meta["markers"][0]["text"], "stimulus");
    assert_eq!(meta["channels"], 4);
    assert_eq!(meta["status"], "complete", "{meta}");
    let yaml = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    assert_eq!(yaml, daemon_common::PIPELINE, "the exact running config");
    let csv = std::fs::read_to_string(dir.join("recording.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap().split(',').count(), 5, "timestamp + 4 channels");
    assert!(lines.count() >= 200, "20 packets of 10 samples");

    // Unlocked again; the recording is listed.
    let (code, _) = d.send("PATCH", "/api/stages/to_voltage/params", r#"{"vref": 2.5}"#).await;
    assert_eq!(code, 200);
    let (_, list) = d.get("/api/recordings").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["participant"], "p01");
    // Its files download by the listed path; nothing outside the data directory does.
    let url = d.url(&format!("/api/recordings/{}/recording.csv", list[0]["path"].as_str().unwrap()));
    let got = d.client().get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.headers()["content-disposition"].to_str().unwrap().contains("recording.csv"));
    assert_eq!(got.text().await.unwrap(), csv);
    for bad in ["/api/recordings/../secret", "/api/recordings/%2e%2e/x", "/api/recordings/nope/recording.csv"]
    {
        let code = d.client().get(d.url(bad)).send().await.unwrap().status();
        assert!(code == 404 || code == 400, "{bad}: {code}");
    }
    let (code, _) = d.send("POST", "/api/recording/stop", "").await;
    assert_eq!(code, 409, "nothing to stop");
}

#[tokio::test]
async fn bad_pipeline_is_refused_and_the_old_one_runs_on_then_stop_and_restart() {
    let d = Daemon::start();
    d.send("PATCH", "/api/stages/bandpass/params", r#"{"high_hz": 35}"#).await;
    let bad = "stages:\n  - emulater: {}\n  - notch: { hz: -1 }\n";
    let (code, r) = d.send("POST", "/api/pipeline/start", bad).await;
    assert_eq!(code, 400, "{r}");
    let errors = r["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{r}");
    assert_eq!((errors[0]["line"].as_u64(), errors[0]["column"].as_u64()), (Some(2), Some(5)), "{r}");
    assert!(errors[0]["message"].as_str().unwrap().contains("did you mean `emulator`"), "{r}");
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["state"], "running");
    assert_eq!(stage(&p, "bandpass")["params"]["high_hz"], 35.0, "the old pipeline, untouched");
    let n = d.source_packets().await;
    d.wait_packets_above(n).await;

    let (code, p) = d.send("POST", "/api/pipeline/stop", "").await;
    assert_eq!(code, 200);
    assert_eq!(p["state"], "stopped");
    let (code, _) = d.send("PATCH", "/api/stages/bandpass/params", r#"{"high_hz": 20}"#).await;
    assert_eq!(code, 409, "nothing runs");

    // Restart keeps the live change.
    let (code, p) = d.send("POST", "/api/pipeline/restart", "").await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["state"], "running");
    assert_eq!(stage(&p, "bandpass")["params"]["high_hz"], 35.0);
    d.wait_packets_above(0).await;

    // A JSON pipeline replaces it; then a preset by name.
    let j = json!({"stages": [{"emulator": {"channels": 2, "rate": 250}}, {"to_voltage": {}}, {"websocket_sink": {"topic": "eeg"}}]});
    let (code, p) = d.send("POST", "/api/pipeline/start", j.to_string()).await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(stage(&p, "to_voltage")["output"]["channels"], 2);
    let (_, presets) = d.get("/api/presets").await;
    assert!(presets.as_array().unwrap().iter().any(|p| p["name"] == "default"), "{presets}");
    let (code, p) = d.send("POST", "/api/pipeline/start?preset=default", "").await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["config"]["name"], "pipelines/default.yaml");
    let (code, _) = d.send("POST", "/api/pipeline/start?preset=nope", "").await;
    assert_eq!(code, 404);
    let (code, _) = d.send("POST", "/api/pipeline/start", "#".repeat(2 << 20)).await;
    assert_eq!(code, 413, "a body over the limit");
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["config"]["name"], "pipelines/default.yaml", "still the preset");
}

#[tokio::test]
async fn data_frames_carry_the_configured_channels() {
    let d = Daemon::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg")).await.unwrap();
    let a = next_frame(&mut ws).await;
    let b = next_frame(&mut ws).await;
    assert_eq!(a.kind, 1);
    assert_eq!(a.channels, 4);
    assert_eq!(a.samples, 10);
    assert_eq!(a.rate, 1000.0);
    assert!(b.seq > a.seq);
    assert_eq!((b.timestamp_ns - a.timestamp_ns) as u64, (b.seq - a.seq) * 10_000_000, "10 ms per packet");
    assert!(a.values.iter().all(|v| v.is_finite()));
}

#[tokio::test]
async fn control_socket_applies_changes_and_pushes_them_to_every_client() {
    let d = Daemon::start();
    let (mut a, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/control")).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/control")).await.unwrap();
    async fn next_json(ws: &mut daemon_common::Ws) -> Value {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(next_json(&mut a).await["event"], "state");
    assert_eq!(next_json(&mut b).await["event"], "state");
    let cmd = json!({"id": 7, "stage_id": "bandpass", "cmd": "UpdateParam", "key": "high_hz", "value": 30});
    a.send(Message::Text(cmd.to_string().into())).await.unwrap();
    let (mut answer, mut pushed_a) = (None, None);
    for _ in 0..2 {
        let m = next_json(&mut a).await;
        if m["id"] == 7 {
            answer = Some(m)
        } else {
            pushed_a = Some(m)
        }
    }
    assert_eq!(answer.unwrap()["ok"], true);
    assert_eq!(pushed_a.unwrap()["params"]["high_hz"], 30.0);
    let pushed = next_json(&mut b).await;
    assert_eq!((pushed["event"].clone(), pushed["stage"].clone()), (json!("params"), json!("bandpass")));
    assert_eq!(pushed["params"]["high_hz"], 30.0);

    let patch = json!([{"op": "replace", "path": "/bandpass/high_hz", "value": -1}]);
    a.send(Message::Text(patch.to_string().into())).await.unwrap();
    let r = next_json(&mut a).await;
    assert_eq!((r["ok"].clone(), r["status"].clone()), (json!(false), json!(400)), "{r}");
    let patch = json!([{"op": "replace", "path": "/notch/hz", "value": 60}]);
    a.send(Message::Text(patch.to_string().into())).await.unwrap();
    let pushed = next_json(&mut b).await;
    assert_eq!(pushed["params"]["hz"], 60.0);
}

#[tokio::test]
async fn metrics_are_exported() {
    let d = Daemon::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg")).await.unwrap();
    next_frame(&mut ws).await;
    let text = d.client().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "eegd_stage_packets_total{stage=\"emulator\"",
        "eegd_stage_errors_total",
        "eegd_process_cpu_seconds_total",
        "eegd_stage_drops_total",
        "eegd_stage_overruns_total{stage=\"emulator\"",
        "eegd_stage_drift_ppm{stage=\"emulator\"",
        "eegd_stage_processing_seconds_bucket",
        "eegd_sink_latency_seconds_count{stage=\"websocket_sink\"",
        "eegd_pool_in_use",
        "eegd_clock_offset_seconds{topic=\"eeg\"}",
        "eegd_ws_clients{endpoint=\"data\"} 1",
        "eegd_ws_dropped_frames_total{topic=\"eeg\",where=\"client\"}",
        "eegd_recording_active 0",
        "eegd_recording_bytes",
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
}

#[tokio::test]
async fn off_loopback_requires_the_token() {
    let d = Daemon::start_with(daemon_common::PIPELINE, &["--bind", "0.0.0.0:0"], Some("s3cret"));
    let plain = reqwest::Client::new();
    for path in ["/api/health", "/api/pipeline", "/metrics", "/ws/data?topic=eeg"] {
        let r = plain.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = plain.get(d.url("/api/health")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(d.get("/api/health").await.0, 200, "with the token");
    let r = plain.get(d.url("/api/health?token=s3cret")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "token in the query, as browsers' WebSockets send it");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg&token=s3cret")).await.unwrap();
    next_frame(&mut ws).await;
}

#[test]
fn off_loopback_without_a_token_does_not_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eegd"))
        .args(["serve", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(std::env::temp_dir().join("eegd-test-no-token"))
        .env_remove("EEGD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

#[tokio::test]
async fn sigterm_closes_the_recording_and_exits_cleanly() {
    let mut d = Daemon::start();
    let (code, _) = d.send("POST", "/api/recording/start", "{}").await;
    assert_eq!(code, 200);
    let n = d.source_packets().await;
    d.wait_packets_above(n + 5).await;
    assert_eq!(d.terminate(), Some(0));
    let dir = &d.sessions()[0];
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session_meta.json")).unwrap()).unwrap();
    assert!(meta["stop_time"].is_string(), "{meta}");
    let csv = std::fs::read_to_string(dir.join("recording.csv")).unwrap();
    assert!(csv.lines().count() > 50);
}

#[tokio::test]
async fn serves_the_built_in_ui() {
    let d = Daemon::start();
    let r = reqwest::get(d.url("/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html"));
    assert_eq!(reqwest::get(d.url("/no/such/file.js")).await.unwrap().status().as_u16(), 404);
    assert_eq!(reqwest::get(d.url("/api/nothing")).await.unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn file_paths_stay_inside_the_data_directory() {
    let d = Daemon::start();
    let escape =
        "stages:\n  - emulator: { channels: 2, rate: 250 }\n  - csv_sink: { path: /tmp/eegd-escape.csv }\n";
    let (code, r) = d.send("POST", "/api/pipeline/start", escape).await;
    assert_eq!(code, 400, "{r}");
    assert_eq!(
        (r["errors"][0]["line"].as_u64(), r["errors"][0]["column"].as_u64()),
        (Some(3), Some(23)),
        "{r}"
    );
    let up = "stages:\n  - emulator: { channels: 2, rate: 250 }\n  - csv_sink: { path: ../up.csv }\n";
    assert_eq!(d.send("POST", "/api/pipeline/start", up).await.0, 400);
    let inside = "stages:\n  - emulator: { channels: 2, rate: 250 }\n  - csv_sink: { path: inside.csv }\n";
    let (code, r) = d.send("POST", "/api/pipeline/start", inside).await;
    assert_eq!(code, 200, "{r}");
    d.wait_packets_above(0).await;
    d.send("POST", "/api/pipeline/stop", "").await;
    assert!(d.data_dir.join("inside.csv").is_file());
}

/// Runs `eegd serve` with a config file called `name` holding `yaml`, which it must refuse.
fn serve_config(name: &str, yaml: &str) -> std::process::Output {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join(name);
    std::fs::write(&cfg, yaml).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_eegd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap()
}

#[test]
fn an_invalid_config_file_is_refused_at_start() {
    let out = serve_config("bad.yaml", "stages:\n  - emulator: { chanels: 4 }\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:") && err.contains("did you mean `channels`"), "{err}");
}

#[tokio::test]
async fn an_oversized_control_message_closes_the_socket() {
    let d = Daemon::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/control")).await.unwrap();
    ws.next().await.unwrap().unwrap(); // the state event
    let big = format!("{{\"cmd\": \"UpdateParam\", \"pad\": \"{}\"}}", "x".repeat(100 << 10));
    let _ = ws.send(Message::Text(big.into())).await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(Message::Text(t))) if t.as_str().contains("\"ok\"") => return false,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(end, "the oversized message was answered instead of refused");
    assert_eq!(d.get("/api/health").await.0, 200);
}

#[test]
fn a_config_file_writing_outside_the_data_directory_is_refused_at_start() {
    let out =
        serve_config("out.yaml", "stages:\n  - emulator: {}\n  - csv_sink: { path: /tmp/eegd-out.csv }\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out.yaml:3:23:"));
}

/// Each thread of process `pid`: its name, nice value and the CPUs it may run on (as
/// `/proc/<pid>/task/<tid>/status` lists them).
fn threads_of(pid: u32) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let dir = task.path();
        let (Ok(stat), Ok(status)) =
            (std::fs::read_to_string(dir.join("stat")), std::fs::read_to_string(dir.join("status")))
        else {
            continue; // the thread ended meanwhile
        };
        let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        // Fields after the name: state is field 3, nice field 19.
        let nice = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(16).unwrap().parse().unwrap();
        let cpus =
            status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
        out.push((name, nice, cpus));
    }
    out
}

#[tokio::test]
async fn pipelines_started_through_the_api_are_not_confined_with_the_server() {
    let cpu = pipeline::rt::allowed_cpus()[0];
    let server_cpus = cpu.to_string();
    let d = Daemon::start_with(
        daemon_common::PIPELINE,
        &["--bind", "127.0.0.1:0", "--server-cpus", &server_cpus],
        None,
    );
    let everywhere = threads_of(d.child.id()).into_iter().find(|t| t.0 == "eegd").unwrap().2;
    // Started at launch, then by the API (the recorder joins by a restart, too).
    for restart in [None, Some("/api/pipeline/restart"), Some("/api/recording/start")] {
        if let Some(path) = restart {
            assert_eq!(d.send("POST", path, "{}").await.0, 200, "{path}");
        }
        let n = d.source_packets().await;
        d.wait_packets_above(n).await;
        let threads = threads_of(d.child.id());
        let pipeline: Vec<_> = threads.iter().filter(|t| t.0 == "eegd-acquire").collect();
        let server: Vec<_> = threads.iter().filter(|t| t.0 == "eegd-http" || t.0 == "eegd-broker").collect();
        assert!(!pipeline.is_empty() && !server.is_empty(), "{threads:?}");
        for (name, nice, cpus) in pipeline {
            assert_eq!((*nice, cpus.as_str()), (0, everywhere.as_str()), "{name} after {restart:?}");
        }
        for (name, nice, cpus) in server {
            assert!(*nice > 0, "{name} runs at nice {nice}");
            assert_eq!(cpus, &server_cpus, "{name}");
        }
    }
    assert_eq!(d.send("POST", "/api/recording/stop", "").await.0, 200);
}

#[tokio::test]
async fn server_threads_keep_off_the_cpus_the_pipeline_pins() {
    let cpus = pipeline::rt::allowed_cpus();
    let Some((&last, rest)) = cpus.split_last().filter(|(_, r)| !r.is_empty()) else {
        eprintln!("one CPU: nothing to keep apart");
        return;
    };
    let list = |c: &[usize]| c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let (everywhere, others) = (list(&cpus), list(rest));
    let pinned =
        format!("{}runtime: {{ groups: {{ acquire: {{ cpu: {last} }} }} }}\n", daemon_common::PIPELINE);
    let d = Daemon::start_with(&pinned, &["--bind", "127.0.0.1:0"], None);
    let placed = |name: &'static str| {
        let pid = d.child.id();
        move || -> Vec<String> { threads_of(pid).into_iter().filter(|t| t.0 == name).map(|t| t.2).collect() }
    };
    // Linux writes ranges (`0-2`); compare as sets.
    let expand = |l: &str| pipeline::rt::parse_cpu_list(l).unwrap();
    // The runtime starts its threads as it goes: wait for them (at most 10 s).
    let all_at = |threads: &dyn Fn() -> Vec<String>, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = threads();
            if !t.is_empty() && t.iter().all(|t| expand(t) == expand(want)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (http, broker, acquire) = (placed("eegd-http"), placed("eegd-broker"), placed("eegd-acquire"));
    assert!(all_at(&acquire, &last.to_string()), "{:?}", acquire());
    assert!(all_at(&http, &others) && all_at(&broker, &others), "{:?} {:?}", http(), broker());
    // Stopped, or running a pipeline that pins nothing: the server may use every CPU again.
    assert_eq!(d.send("POST", "/api/pipeline/stop", "").await.0, 200);
    assert!(all_at(&http, &everywhere) && all_at(&broker, &everywhere), "{:?} {:?}", http(), broker());
    assert_eq!(d.send("POST", "/api/pipeline/start", daemon_common::PIPELINE).await.0, 200);
    assert!(all_at(&http, &everywhere), "{:?}", http());
    // And off again when the pins come back.
    assert_eq!(d.send("POST", "/api/pipeline/start", pinned.clone()).await.0, 200);
    assert!(all_at(&http, &others) && all_at(&broker, &others), "{:?} {:?}", http(), broker());
}
