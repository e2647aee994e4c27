//! What one request (or one misbehaving client) can do to a running `eegd serve`: each test is
//! an attack that used to crash, stall or fool the daemon, and what it does now.
mod daemon_common;

use daemon_common::Daemon;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// One raw HTTP/1.1 request; returns the status code and the body.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn state(d: &Daemon) -> String {
    let (_, body) =
        raw(&d.addr, &format!("GET /api/pipeline HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", d.addr));
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_origin_cannot_stop_the_pipeline_or_open_a_socket() {
    let d = Daemon::start();
    d.wait_packets_above(0).await;
    // A page on another site posting text/plain (no CORS preflight) to the loopback daemon.
    let (status, body) = raw(
        &d.addr,
        &format!(
            "POST /api/pipeline/stop HTTP/1.1\r\nHost: {}\r\nOrigin: http://evil.example\r\n\
             Content-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
            d.addr
        ),
    );
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("evil.example"), "{v}");
    assert_eq!(state(&d), "running");

    // The WebSocket upgrades refuse the foreign origin too.
    for path in ["/ws/control", "/ws/data?topic=eeg"] {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(d.ws_url(path))
                .unwrap();
        req.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403, "{path}"),
            other => panic!("{path}: expected 403, got {:?}", other.map(|_| ())),
        }
    }

    // The daemon's own origin (the UI) and a client sending none (a script) may.
    let (status, _) = raw(
        &d.addr,
        &format!(
            "POST /api/markers HTTP/1.1\r\nHost: {a}\r\nOrigin: http://{a}\r\nContent-Type: application/json\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\n{{\"label\": \"ok\"}}",
            a = d.addr
        ),
    );
    assert_ne!(status, 403);
    let (status, _) = d.send("POST", "/api/pipeline/stop", "").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_origin_may_and_a_rebound_host_may_not() {
    let d = Daemon::start_with(
        daemon_common::PIPELINE,
        &["--bind", "127.0.0.1:0", "--allow-origin", "http://lab.example:3000"],
        None,
    );
    let post = |host: &str, origin: &str| {
        raw(
            &d.addr,
            &format!(
                "POST /api/pipeline/restart HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    };
    assert_eq!(post(&d.addr, "http://lab.example:3000").0, 200);
    assert_eq!(post(&d.addr, "http://lab.example:3001").0, 403);
    // DNS rebinding: evil.example resolves to 127.0.0.1, so the page is "same-origin", but its
    // Host names it. Even a GET (which could read recordings) is refused.
    let port = d.addr.rsplit(':').next().unwrap();
    let evil = format!("evil.example:{port}");
    let (status, body) = post(&evil, &format!("http://{evil}"));
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        raw(&d.addr, &format!("GET /api/recordings HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not name this daemon"), "{body}");
    let (status, _) =
        raw(&d.addr, &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_is_the_json_error() {
    let d = Daemon::start();
    let big = "x".repeat(2 << 20);
    let r = d.client().post(d.url("/api/pipeline/start")).body(big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");

    for (method, path, status) in [
        ("GET", "/ws/data", 400),                   // no topic
        ("GET", "/ws/control", 400),                // not an upgrade
        ("DELETE", "/api/pipeline", 405),           // wrong method
        ("GET", "/no/such/asset.js", 404),          // UI file that is not there
        ("PATCH", "/api/stages/notch/params", 400), // empty body
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = d.client().request(m, d.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/json", "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_time_out_and_never_lock_the_api_out() {
    let d = Daemon::start_with(
        daemon_common::PIPELINE,
        &["--bind", "127.0.0.1:0", "--max-connections", "300", "--idle-timeout", "1"],
        None,
    );
    // Three hundred sockets that send nothing, and one with half a request head.
    let mut idle: Vec<TcpStream> = (0..299).map(|_| TcpStream::connect(&d.addr).unwrap()).collect();
    let mut half = TcpStream::connect(&d.addr).unwrap();
    half.write_all(b"GET /api/health HTTP/1.1\r\nHost: x").unwrap();
    idle.push(half);
    // The cap is reached: a new connection is told so, in JSON, at once.
    let (status, body) =
        raw(&d.addr, &format!("GET /api/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", d.addr));
    if status != 200 {
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("too many connections"), "{body}");
    }
    // Every idle socket is closed by the daemon (EOF) after the idle timeout...
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 512];
        let mut n = 1;
        while n > 0 {
            n = s.read(&mut buf).unwrap_or(0);
        }
    }
    // ...and the API answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = raw(
            &d.addr,
            &format!("GET /api/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", d.addr),
        );
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the API stayed unreachable ({status})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_does_not_wait_for_a_half_sent_request() {
    let mut d = Daemon::start();
    d.wait_packets_above(0).await;
    // The head is complete; the body never comes.
    let mut s = TcpStream::connect(&d.addr).unwrap();
    s.write_all(
        format!("POST /api/markers HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"la", d.addr)
            .as_bytes(),
    )
    .unwrap();
    // The daemon has the request once the API answers on another connection.
    assert_eq!(state(&d), "running");
    let started = Instant::now();
    let code = d.terminate();
    assert_eq!(code, Some(0));
    // Bounded by the shutdown grace period (5 s), not by the client: a hang fails the suite.
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(s);
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_nobody_publishes_are_forgotten() {
    let d = Daemon::start();
    let metrics = || async {
        let r = d.client().get(d.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    };
    for k in 0..100 {
        let (ws, _) =
            tokio_tungstenite::connect_async(d.ws_url(&format!("/ws/data?topic=made-up-{k}"))).await.unwrap();
        drop(ws);
    }
    // Each close reaches the daemon in time; wait until the last is gone from the metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics().await;
        if !text.contains("made-up-") {
            break;
        }
        assert!(Instant::now() < deadline, "unwatched topics are still listed:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A published topic stays after its client leaves.
    let (ws, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg")).await.unwrap();
    let mut ws = ws;
    daemon_common::next_frame(&mut ws).await;
    drop(ws);
    assert!(metrics().await.contains("topic=\"eeg\""));

    // No more than the topic cap at once: the next is refused with 503 JSON.
    let mut held = Vec::new();
    for k in 0..64 {
        match tokio_tungstenite::connect_async(d.ws_url(&format!("/ws/data?topic=held-{k}"))).await {
            Ok((ws, _)) => held.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 503);
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("65 topics were all accepted");
}

/// Starts `yaml` through the API; (status, body).
async fn start(d: &Daemon, yaml: &str) -> (u16, Value) {
    d.send("POST", "/api/pipeline/start", yaml.to_string()).await
}

fn with_sink(path: &str) -> String {
    format!("stages:\n  - emulator: {{ channels: 2, rate: 250 }}\n  - csv_sink: {{ path: \"{path}\" }}\n")
}

fn with_source(path: &str) -> String {
    format!("stages:\n  - file_source: {{ path: \"{path}\", realtime: false }}\n  - null_sink: {{}}\n")
}

/// Asserts a 400 with its error at line `line` mentioning `part`, and the old pipeline running.
async fn assert_refused_and_running(d: &Daemon, (code, r): (u16, Value), line: u64, part: &str) {
    assert_eq!(code, 400, "{r}");
    let e = &r["errors"][0];
    assert_eq!(e["line"].as_u64(), Some(line), "{r}");
    assert!(e["message"].as_str().unwrap_or_default().contains(part), "{part:?} in {r}");
    let (_, p) = d.get("/api/pipeline").await;
    assert_eq!(p["state"], "running", "the running pipeline was disturbed: {p}");
    let before = d.source_packets().await;
    d.wait_packets_above(before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sinks_never_write_into_a_session_or_out_through_a_symlink() {
    let d = Daemon::start();
    d.wait_packets_above(0).await;
    // Record a session, then try to overwrite its files.
    assert_eq!(d.send("POST", "/api/recording/start", "{}").await.0, 200);
    let before = d.source_packets().await;
    d.wait_packets_above(before + 5).await;
    let (code, r) = d.send("POST", "/api/recording/stop", "").await;
    assert_eq!(code, 200, "{r}");
    let session = r["session"].as_str().unwrap().to_string();
    let dir = d.data_dir.join(&session);
    let recorded = std::fs::read(dir.join("recording.csv")).unwrap();
    let meta = std::fs::read(dir.join("session_meta.json")).unwrap();
    for file in ["recording.csv", "session_meta.json", "new.csv"] {
        let reply = start(&d, &with_sink(&format!("{session}/{file}"))).await;
        assert_refused_and_running(&d, reply, 3, "recorded session").await;
    }
    assert_eq!(std::fs::read(dir.join("recording.csv")).unwrap(), recorded);
    assert_eq!(std::fs::read(dir.join("session_meta.json")).unwrap(), meta);

    // A symlink inside the data directory does not lead a sink out of it.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), d.data_dir.join("escape")).unwrap();
    let reply = start(&d, &with_sink("escape/x.csv")).await;
    assert_refused_and_running(&d, reply, 3, "leaves the data directory").await;
    std::os::unix::fs::symlink(outside.path().join("f.csv"), d.data_dir.join("link.csv")).unwrap();
    let reply = start(&d, &with_sink("link.csv")).await;
    assert_refused_and_running(&d, reply, 3, "symbolic link").await;
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside");

    // A sink into a folder that does not exist is refused before anything stops.
    let reply = start(&d, &with_sink("no/such/folder/x.csv")).await;
    assert_refused_and_running(&d, reply, 3, "does not exist").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn file_source_is_confined_before_it_opens_and_reads_only_regular_files() {
    let d = Daemon::start();
    d.wait_packets_above(0).await;
    std::os::unix::fs::symlink("/etc/passwd", d.data_dir.join("passwd.csv")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.data_dir.join("zero.csv")).unwrap();
    let fifo = d.data_dir.join("fifo.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // The same answer whether the file outside exists or not.
    let mut outside_errors = Vec::new();
    for path in ["/etc/passwd", "/etc/no-such-file", "../x.csv", "passwd.csv"] {
        let reply = start(&d, &with_source(path)).await;
        outside_errors.push(reply.1["errors"][0]["message"].as_str().unwrap_or_default().replace(path, "P"));
        assert_refused_and_running(&d, reply, 2, "not a file inside the data directory").await;
    }
    outside_errors.dedup();
    assert_eq!(outside_errors.len(), 1, "{outside_errors:?}");
    // A FIFO inside: refused without opening (opening it would block forever). A link to a
    // device is a link out of the data directory.
    let reply = start(&d, &with_source("fifo.csv")).await;
    assert_refused_and_running(&d, reply, 2, "not a regular file").await;
    let reply = start(&d, &with_source("zero.csv")).await;
    assert_refused_and_running(&d, reply, 2, "not a file inside the data directory").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_the_daemon_recorded_replays_by_its_path_in_the_data_dir() {
    let d = Daemon::start();
    d.wait_packets_above(0).await;
    assert_eq!(d.send("POST", "/api/recording/start", "{}").await.0, 200);
    let before = d.source_packets().await;
    d.wait_packets_above(before + 20).await;
    let (_, r) = d.send("POST", "/api/recording/stop", "").await;
    let session = r["session"].as_str().unwrap();
    let (code, r) = start(&d, &with_source(&format!("{session}/recording.csv"))).await;
    assert_eq!(code, 200, "{r}");
    // The replay runs to the end of the file and the pipeline finishes on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = d.get("/api/pipeline").await;
        if p["stages"][1]["packets"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing replayed: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_sink_input_is_a_400_not_a_500() {
    let d = Daemon::start();
    d.wait_packets_above(0).await;
    for sink in ["csv_sink: { inputs: [emulatr], path: x.csv }", "bdf_sink: { inputs: emulatr, path: x.bdf }"]
    {
        let yaml = format!("stages:\n  - emulator: {{ channels: 2, rate: 250 }}\n  - {sink}\n");
        let reply = start(&d, &yaml).await;
        assert_refused_and_running(&d, reply, 3, "unknown input `emulatr`").await;
    }
}
