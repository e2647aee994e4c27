//! Hardware triggers through `eegd serve`: the emulator's simulated TTL pulse train on GPIO1,
//! read as `triggers: { gpio1: stim }`, reaches every control client as a `marker` event with
//! `origin: "trigger"` on the exact sample of the data frames, once per rise; a typed marker is
//! never a trigger; a recording's markers file has the triggers on their samples.
mod daemon_common;

use daemon_common::{Daemon, Ws};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A rise every 100 samples (100 ms at 1000 SPS), first on sample 100.
const PIPELINE: &str = "stages:
  - emulator: { channels: 2, rate: 1000, batch: 10, signal: sine,
      trigger_signal: { gpio: 1, period_ms: 100, width_ms: 5 }, triggers: { gpio1: stim } }
  - to_voltage: {}
  - websocket_sink: { topic: eeg }
recording: { format: csv }
";
const MS: i64 = 1_000_000;

async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no event within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn triggers_reach_control_clients_on_their_samples_and_the_recording() {
    let d = Daemon::start_with(PIPELINE, &["--bind", "127.0.0.1:0"], None);
    let (mut ctl, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/control")).await.unwrap();
    let (mut data, _) = tokio_tungstenite::connect_async(d.ws_url("/ws/data?topic=eeg")).await.unwrap();
    assert_eq!(next_event(&mut ctl).await["event"], "state");
    // A typed marker: pushed by the controller and the marker tap, never as a trigger.
    let (code, _) = d.send("POST", "/api/markers", r#"{"label": "typed"}"#).await;
    assert_eq!(code, 200);
    let mut triggers = Vec::new();
    while triggers.len() < 4 {
        let e = next_event(&mut ctl).await;
        if e["event"] != "marker" {
            continue;
        }
        let m = &e["marker"];
        if m["label"] == "typed" {
            assert_ne!(m["origin"], "trigger", "{e}");
            continue;
        }
        assert_eq!((m["label"].as_str(), m["origin"].as_str()), (Some("stim"), Some("trigger")), "{e}");
        triggers.push(m["timestamp_ns"].as_i64().unwrap());
    }
    // The data frames up to the last trigger: sample k is in frame k / 10 at its time + (k % 10) ms.
    let mut frames = BTreeMap::new();
    while frames.last_key_value().is_none_or(|(_, &t): (_, &i64)| t < triggers[3]) {
        let f = daemon_common::next_frame(&mut data).await;
        frames.insert(f.seq, f.timestamp_ns);
    }
    let (&seq, &ts) = frames.first_key_value().unwrap();
    let sample_0 = ts - seq as i64 * 10 * MS;
    let samples: Vec<i64> = triggers.iter().map(|t| (t - sample_0) / MS).collect();
    for (t, k) in triggers.iter().zip(&samples) {
        assert_eq!(sample_0 + k * MS, *t, "trigger at {t} is not on a sample");
        assert_eq!(k % 100, 0, "sample {k} is not where the pin rose");
    }
    assert!(samples.windows(2).all(|w| w[1] - w[0] == 100), "one marker per rise: {samples:?}");

    // A recording: its markers file holds the triggers, each on a row of the data file.
    let (code, r) = d.send("POST", "/api/recording/start", "{}").await;
    assert_eq!(code, 200, "{r}");
    let mut seen = 0;
    while seen < 3 {
        let e = next_event(&mut ctl).await;
        seen += (e["event"] == "marker" && e["marker"]["origin"] == "trigger") as usize;
    }
    let (code, r) = d.send("POST", "/api/recording/stop", "").await;
    assert_eq!(code, 200, "{r}");
    let dir = d.data_dir.join(r["session"].as_str().unwrap());
    let rows = std::fs::read_to_string(dir.join("recording.csv")).unwrap();
    let stamps: Vec<&str> = rows.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let marks = std::fs::read_to_string(dir.join("recording.markers.csv")).unwrap();
    let marks: Vec<(&str, &str)> = marks.lines().skip(1).filter_map(|l| l.split_once(',')).collect();
    assert!(marks.len() >= 2, "{marks:?}");
    let rows: Vec<usize> = marks
        .iter()
        .map(|(ts, text)| {
            assert_eq!(*text, "\"stim\"");
            stamps.iter().position(|s| s == ts).unwrap_or_else(|| panic!("no row at {ts}"))
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[1] - w[0] == 100), "{rows:?}");
}
