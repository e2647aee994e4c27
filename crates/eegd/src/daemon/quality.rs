//! Signal quality, impedance and self-test (`GET /api/signal-quality`, `POST
//! /api/impedance/start|stop`, `POST /api/selftest`).
//!
//! The figures come from the acquisition sources' lock-free boards (`stages::quality`); the
//! switches go through the ordinary live-parameter path (`Controller::patch`), so a source
//! applies them between packets and `GET /api/pipeline` shows them. Both are refused (409)
//! while a session records: the lead-off current and the test inputs would be in the data.
use super::control::Controller;
use super::error::{ApiError, ApiResult};
use super::{blocking, json_body, AppState};
use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use pipeline::exec::Shared;
use serde::Deserialize;
use serde_json::{json, Value};
use stages::quality::{self as q, QualityBoard};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stage types that carry a quality board.
const SOURCES: [&str; 2] = ["emulator", "ads1299"];
/// The internal test signal: ±(VREFP − VREFN) / 2400 at fCLK / 2^21 (SBAS499, CONFIG2 register
/// description: CAL_AMP0 = 0, CAL_FREQ = 00).
pub const TEST_AMPLITUDE_UV: f64 = 4.5 / 2400.0 * 1e6;
pub const TEST_FREQUENCY_HZ: f64 = 2.048e6 / (1u64 << 21) as f64;
/// Pass bands of the self-test: the test signal's amplitude within 10 % and frequency within
/// 5 % of the datasheet; shorted-input noise between a quarter of and 1.5 × the datasheet's
/// typical rms, and its peak-to-peak at most 1.5 × the datasheet's.
const AMPLITUDE_TOL: f64 = 0.10;
const FREQUENCY_TOL: f64 = 0.05;
const NOISE_MAX: f64 = 1.5;
const NOISE_MIN: f64 = 0.25;
/// Time for the chip's digital filter to settle after an input change before measuring.
const SETTLE: Duration = Duration::from_millis(100);

/// What the daemon remembers: lead-off settings to restore after an impedance check, and the
/// latest self-test (it goes into the next session's `session_meta.json`).
#[derive(Default)]
struct Memory {
    saved_lead_off: HashMap<String, Value>,
    selftest: Option<Value>,
}

fn memory() -> &'static Mutex<Memory> {
    static M: std::sync::OnceLock<Mutex<Memory>> = std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}

/// The running sources: (stage name, its current params, its board).
fn sources(ctl: &Controller) -> ApiResult<Vec<(String, Value, Arc<QualityBoard>)>> {
    let p = ctl.pipeline();
    if p["state"] != "running" {
        return Err(ApiError::Conflict("no pipeline is running".into()));
    }
    let found: Vec<_> = p["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| SOURCES.iter().any(|t| s["type"] == *t))
        .filter_map(|s| {
            let name = s["name"].as_str()?.to_string();
            let board = q::board(&name)?;
            Some((name, s["params"].clone(), board))
        })
        .collect();
    if found.is_empty() {
        return Err(ApiError::NotFound("no `emulator` or `ads1299` source is running".into()));
    }
    Ok(found)
}

fn refuse_while_recording(ctl: &Controller, what: &str) -> ApiResult<()> {
    if ctl.recording_state().is_some() {
        return Err(ApiError::Conflict(format!(
            "a recording is running: {what} would be in the data; stop it first"
        )));
    }
    Ok(())
}

/// A timestamp (ns since the UNIX epoch), or `null` for "not yet".
fn ns(ns: i64) -> Value {
    if ns <= 0 {
        return Value::Null;
    }
    json!(ns)
}

/// The quality boards of `sh`'s sources.
fn boards_of(sh: &Shared) -> Vec<(String, Arc<QualityBoard>)> {
    sh.stages()
        .iter()
        .filter(|s| SOURCES.contains(&s.type_name))
        .filter_map(|s| Some((s.name.clone(), q::board(&s.name)?)))
        .collect()
}

/// The quality of the channels of `boards`.
fn snapshot_of(boards: &[(String, Arc<QualityBoard>)]) -> Value {
    let mut channels = Vec::new();
    let mut list = Vec::new();
    let (mut measured, mut impedance) = (0i64, 0i64);
    for (name, b) in boards {
        let (mode, current) = b.lead_off();
        let ch = b.channels();
        for c in &ch {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["stage"] = json!(name);
            channels.push(v);
        }
        measured = measured.max(b.measured_ns());
        impedance = impedance.max(b.impedance_ns());
        list.push(json!({
            "stage": name,
            "measured_ns": ns(b.measured_ns()),
            "impedance_measured_ns": ns(b.impedance_ns()),
            "lead_off": { "mode": mode, "current_na": current },
            "overlapped_frames": b.overlapped.load(std::sync::atomic::Ordering::Relaxed),
            "channels": ch,
        }));
    }
    json!({
        "measured_ns": ns(measured),
        "impedance_measured_ns": ns(impedance),
        "thresholds": {
            "good_below_kohm": q::GOOD_KOHM,
            "fair_below_kohm": q::FAIR_KOHM,
            "railed_at_fraction_of_full_scale": 0.9,
            "flat_peak_to_peak_counts": q::FLAT_COUNTS,
            "noisy_rms_uv": q::NOISY_UV,
        },
        "channels": channels,
        "sources": list,
    })
}

/// The quality of every running source's channels: no channels (and a `reason`) when no
/// acquisition source runs, so a page polling it sees a state, not an error.
pub fn snapshot(ctl: &Controller) -> ApiResult<Value> {
    let boards = ctl.shared().filter(|_| ctl.is_running()).map(|sh| boards_of(&sh)).unwrap_or_default();
    let mut v = snapshot_of(&boards);
    if boards.is_empty() {
        v["reason"] = json!("no `emulator` or `ads1299` source is running");
    }
    Ok(v)
}

/// What `session_meta.json` keeps: the channels' quality as the session starts (from the
/// running pipeline `sh`) and the latest self-test. Called with the controller locked.
pub fn session_record(sh: Option<&Shared>) -> Value {
    let selftest = memory().lock().ok().and_then(|m| m.selftest.clone());
    json!({ "at_start": sh.map(|s| snapshot_of(&boards_of(s))), "selftest": selftest })
}

pub async fn get_signal_quality(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(&st, snapshot).await.map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ImpedanceRequest {
    /// Lead-off current, nA (default: the source's, or 6).
    current_na: Option<u32>,
}

fn impedance(ctl: &Controller, on: bool, req: ImpedanceRequest) -> ApiResult<Value> {
    refuse_while_recording(ctl, "the lead-off current")?;
    let mut done = Vec::new();
    for (name, params, _) in sources(ctl)? {
        let mut mem = memory().lock().map_err(|_| ApiError::Internal(anyhow::anyhow!("poisoned")))?;
        let lead_off = if on {
            let current = params["lead_off"]["mode"]
                .as_str()
                .filter(|m| *m != "off")
                .map(|_| params["lead_off"].clone());
            mem.saved_lead_off
                .entry(name.clone())
                .or_insert_with(|| current.unwrap_or(json!({"mode": "off"})));
            let na =
                req.current_na.or(params["lead_off"]["current_na"].as_u64().map(|n| n as u32)).unwrap_or(6);
            json!({ "mode": "ac", "current_na": na })
        } else {
            mem.saved_lead_off.remove(&name).unwrap_or(json!({"mode": "off", "current_na": 6}))
        };
        drop(mem);
        ctl.patch(&name, json!({ "lead_off": lead_off }))?;
        done.push(json!({ "stage": name, "lead_off": lead_off }));
    }
    Ok(json!({ "impedance": on, "sources": done }))
}

pub async fn impedance_start(State(st): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let req: ImpedanceRequest = json_body(&body)?;
    blocking(&st, move |c| impedance(c, true, req)).await.map(Json)
}

pub async fn impedance_stop(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(&st, |c| impedance(c, false, ImpedanceRequest::default())).await.map(Json)
}

fn d_test_s() -> f64 {
    3.0
}
fn d_noise_s() -> f64 {
    10.0
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SelftestRequest {
    /// Seconds of test signal (default 3: about three periods).
    #[serde(default = "d_test_s")]
    test_seconds: f64,
    /// Seconds of shorted inputs (default 10, the datasheet's window for µVpp).
    #[serde(default = "d_noise_s")]
    noise_seconds: f64,
}

impl Default for SelftestRequest {
    fn default() -> Self {
        SelftestRequest { test_seconds: d_test_s(), noise_seconds: d_noise_s() }
    }
}

/// Runs one measurement of `seconds` on `board` and waits for it.
fn measure(board: &QualityBoard, seconds: f64, hysteresis_uv: f64) -> ApiResult<Vec<q::Measurement>> {
    std::thread::sleep(SETTLE);
    let samples = (seconds * board.rate as f64).round().max(1.0) as u32;
    let gen = board.request_measurement(samples, hysteresis_uv);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds * 2.0 + 5.0);
    loop {
        if let Some(m) = board.measurement(gen) {
            return Ok(m);
        }
        if Instant::now() > deadline {
            return Err(ApiError::Unavailable("the source delivered no samples for the self-test".into()));
        }
        // The control plane waits on the data plane's atomics; it never locks the stage.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn selftest(ctl: &Controller, req: SelftestRequest) -> ApiResult<Value> {
    refuse_while_recording(ctl, "the test inputs")?;
    let ok = (2.2..=60.0).contains(&req.test_seconds) && req.noise_seconds > 0.0 && req.noise_seconds <= 60.0;
    if !ok {
        return Err(ApiError::BadRequest(
            "`test_seconds` must be 2.2–60 (two periods of the ≈ 0.98 Hz test signal) and `noise_seconds` 0–60"
                .into(),
        ));
    }
    let mut all_pass = true;
    let mut out = Vec::new();
    for (name, params, board) in sources(ctl)? {
        let mut restore = json!({
            "input": params.get("input").cloned().unwrap_or(json!("normal")),
            "lead_off": params.get("lead_off").cloned().unwrap_or(json!({"mode": "off"})),
        });
        let off =
            json!({"mode": "off", "current_na": params["lead_off"]["current_na"].as_u64().unwrap_or(6)});
        let mut first = json!({ "input": "test_signal", "lead_off": off });
        if let Some(t) = params.get("test_signal") {
            // `ads1299`'s `test_signal: true` would win over `input: shorted`.
            restore["test_signal"] = t.clone();
            first["test_signal"] = json!(false);
        }
        let run = || -> ApiResult<(Vec<q::Measurement>, Vec<q::Measurement>)> {
            ctl.patch(&name, first.clone())?;
            let test = measure(&board, req.test_seconds, TEST_AMPLITUDE_UV / 2.0)?;
            ctl.patch(&name, json!({ "input": "shorted" }))?;
            let noise = measure(&board, req.noise_seconds, 0.0)?;
            Ok((test, noise))
        };
        let result = run();
        // Whatever happened, the configuration goes back.
        let restored = ctl.patch(&name, restore);
        let (test, noise) = result?;
        restored?;
        for (c, label) in board.labels.iter().enumerate() {
            let gain = board.gains.get(c).copied().unwrap_or(24);
            let (t, n) = (test[c], noise[c]);
            let amplitude = (t.max_uv - t.min_uv) / 2.0;
            let amp_ok = (amplitude - TEST_AMPLITUDE_UV).abs() <= AMPLITUDE_TOL * TEST_AMPLITUDE_UV;
            let freq_ok = t
                .frequency_hz
                .is_some_and(|f| (f - TEST_FREQUENCY_HZ).abs() <= FREQUENCY_TOL * TEST_FREQUENCY_HZ);
            let (ds_rms, ds_pp) = q::shorted_noise_uv(board.rate, gain);
            let pp = n.max_uv - n.min_uv;
            let noise_ok =
                n.rms_uv <= NOISE_MAX * ds_rms && n.rms_uv >= NOISE_MIN * ds_rms && pp <= NOISE_MAX * ds_pp;
            let pass = amp_ok && freq_ok && noise_ok;
            all_pass &= pass;
            out.push(json!({
                "stage": name,
                "label": label,
                "pass": pass,
                "test_signal": {
                    "amplitude_uv": round3(amplitude),
                    "expected_amplitude_uv": TEST_AMPLITUDE_UV,
                    "frequency_hz": t.frequency_hz.map(round3),
                    "expected_frequency_hz": TEST_FREQUENCY_HZ,
                    "pass": amp_ok && freq_ok,
                },
                "shorted": {
                    "rms_uv": round3(n.rms_uv),
                    "pp_uv": round3(pp),
                    "datasheet_rms_uv": round3(ds_rms),
                    "datasheet_pp_uv": round3(ds_pp),
                    "window_s": req.noise_seconds,
                    "pass": noise_ok,
                },
            }));
        }
    }
    let result = json!({
        "pass": all_pass,
        "at_ns": pipeline::rt::realtime_ns(),
        "criteria": {
            "test_amplitude_within": AMPLITUDE_TOL,
            "test_frequency_within": FREQUENCY_TOL,
            "noise_rms_between_fractions_of_datasheet": [NOISE_MIN, NOISE_MAX],
            "noise_pp_at_most_fraction_of_datasheet": NOISE_MAX,
        },
        "channels": out,
    });
    if let Ok(mut m) = memory().lock() {
        m.selftest = Some(result.clone());
    }
    Ok(result)
}

pub async fn post_selftest(State(st): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let req: SelftestRequest = json_body(&body)?;
    blocking(&st, move |c| selftest(c, req)).await.map(Json)
}

/// Per-channel metric lines for `/metrics`.
pub fn metrics(out: &mut String) {
    use std::fmt::Write;
    let boards = q::boards();
    if boards.is_empty() {
        return;
    }
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    type Get = fn(&q::ChannelQuality) -> Option<f64>;
    let families: [(&str, &str, &str, Get); 6] = [
        ("channel_impedance_kohm", "gauge", "Electrode impedance from AC lead-off, kΩ.", |c| {
            c.impedance_kohm
        }),
        ("channel_rms_uv", "gauge", "Channel rms over the last quarter second, µV.", |c| c.rms_uv),
        (
            "channel_railed",
            "gauge",
            "1 if the channel reached 90 % of full scale in the last quarter second.",
            |c| Some(c.railed as u8 as f64),
        ),
        ("channel_flat", "gauge", "1 if the channel did not move in the last quarter second.", |c| {
            Some(c.flat as u8 as f64)
        }),
        ("channel_lead_off", "gauge", "1 if the channel's lead-off comparator tripped.", |c| {
            Some(c.lead_off as u8 as f64)
        }),
        ("channel_railed_samples_total", "counter", "Samples at or beyond 90 % of full scale.", |c| {
            Some(c.railed_samples as f64)
        }),
    ];
    let snaps: Vec<_> = boards.iter().map(|b| (b.stage.clone(), b.channels())).collect();
    for (name, kind, help, get) in families {
        let _ = writeln!(out, "# HELP eegd_{name} {help}");
        let _ = writeln!(out, "# TYPE eegd_{name} {kind}");
        for (stage, chans) in &snaps {
            for c in chans {
                if let Some(v) = get(c) {
                    let _ = writeln!(
                        out,
                        "eegd_{name}{{stage=\"{}\",channel=\"{}\"}} {v}",
                        esc(stage),
                        esc(&c.label)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP eegd_frames_overlapped_total Frames read across the next DRDY's update (corrupt)."
    );
    let _ = writeln!(out, "# TYPE eegd_frames_overlapped_total counter");
    for b in &boards {
        let n = b.overlapped.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "eegd_frames_overlapped_total{{stage=\"{}\"}} {n}", esc(&b.stage));
    }
}
