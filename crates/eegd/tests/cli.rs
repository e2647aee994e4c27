//! End-to-end tests of the `eegd` binary: `validate`, `run`, `stages`.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn eegd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eegd"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pipelines").join(name)
}

/// Runs `eegd validate` on a fixture; returns (exit code, stderr).
fn validate(name: &str) -> (i32, String) {
    let out: Output = eegd().arg("validate").arg(fixture(name)).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts `stderr` has a `name:line:col: error:` line containing every one of `parts`.
fn assert_error(stderr: &str, file: &str, line: usize, col: usize, parts: &[&str]) {
    let prefix = format!("{file}:{line}:{col}: error: ");
    let found = stderr.lines().any(|l| l.contains(&prefix) && parts.iter().all(|p| l.contains(p)));
    assert!(found, "no `{prefix}` line with {parts:?} in:\n{stderr}");
}

#[test]
fn rejects_unknown_parameter_suggesting_the_right_one() {
    let (code, err) = validate("unknown_param.yaml");
    assert_eq!(code, 2);
    assert_error(&err, "unknown_param.yaml", 4, 13, &["unknown parameter `factr`", "did you mean `factor`"]);
}

#[test]
fn rejects_unknown_stage_type_suggesting_the_closest() {
    let (code, err) = validate("unknown_type.yaml");
    assert_eq!(code, 2);
    assert_error(
        &err,
        "unknown_type.yaml",
        2,
        5,
        &["unknown stage type `emulater`", "did you mean `emulator`"],
    );
}

#[test]
fn rejects_out_of_range_value() {
    let (code, err) = validate("out_of_range.yaml");
    assert_eq!(code, 2);
    assert_error(&err, "out_of_range.yaml", 2, 27, &["`channels`", "64", "out of range"]);
}

#[test]
fn rejects_unknown_input() {
    let (code, err) = validate("unknown_input.yaml");
    assert_eq!(code, 2);
    assert_error(
        &err,
        "unknown_input.yaml",
        4,
        27,
        &["unknown input `to_volts`", "did you mean `to_voltage`"],
    );
}

#[test]
fn rejects_duplicate_name() {
    let (code, err) = validate("duplicate_name.yaml");
    assert_eq!(code, 2);
    assert_error(&err, "duplicate_name.yaml", 5, 5, &["duplicate stage name `null_sink`"]);
}

#[test]
fn rejects_cycle() {
    let (code, err) = validate("cycle.yaml");
    assert_eq!(code, 2);
    assert!(err.contains("cycle: a → b → a"), "{err}");
    assert_error(&err, "cycle.yaml", 4, 5, &["`a` is part of a cycle"]);
}

#[test]
fn rejects_spectrum_into_a_time_series_stage() {
    let (code, err) = validate("kind_mismatch.yaml");
    assert_eq!(code, 2);
    assert_error(&err, "kind_mismatch.yaml", 6, 33, &["`fft` gives spectrum", "takes only voltage"]);
}

#[test]
fn reports_all_three_mistakes_of_a_file() {
    let (code, err) = validate("three_mistakes.yaml");
    assert_eq!(code, 2);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 3, "{err}");
    assert_error(
        &err,
        "three_mistakes.yaml",
        3,
        17,
        &["unknown parameter `chanels`", "did you mean `channels`"],
    );
    assert_error(
        &err,
        "three_mistakes.yaml",
        5,
        5,
        &["unknown stage type `bandpas`", "did you mean `bandpass`"],
    );
    assert_error(
        &err,
        "three_mistakes.yaml",
        6,
        41,
        &["unknown input `to_voltag`", "did you mean `to_voltage`"],
    );
}

#[test]
fn accepts_the_shipped_pipelines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        let out = eegd().arg("validate").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn stages_json_lists_schemas_and_defaults() {
    let out = eegd().args(["stages", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    let emu = list.iter().find(|s| s["type"] == "emulator").expect("emulator listed");
    assert_eq!(emu["defaults"]["rate"], 4000);
    assert_eq!(emu["defaults"]["channels"], 8);
    assert!(emu["params_schema"]["properties"]["channels"].is_object());
    let gain = list.iter().find(|s| s["type"] == "gain").unwrap();
    assert!(gain["defaults"].is_null(), "`factor` has no default");
}

const BATCH: usize = 10;

fn csv_pipeline(dir: &Path) -> PathBuf {
    let yaml = format!(
        "stages:\n  - emulator: {{ channels: 4, rate: 1000, batch: {BATCH}, signal: sine }}\n  - to_voltage: {{}}\n  - csv_sink: {{ path: {} }}\n",
        dir.join("out.csv").display()
    );
    let file = dir.join("p.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

/// Checks the CSV has one row per sample, 1 ms apart with no gap, and as many samples as the
/// emulator reported producing in its final stats line.
fn assert_every_sample_once(dir: &Path, stderr: &str) {
    let text = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,Fp1,Fp2,C3,C4"));
    let mut prev: Option<i64> = None;
    let mut rows = 0usize;
    for l in lines {
        let cols: Vec<&str> = l.split(',').collect();
        assert_eq!(cols.len(), 5, "complete row: {l}");
        let (s, us) = cols[0].split_once('.').unwrap();
        assert_eq!(us.len(), 6);
        let t = s.parse::<i64>().unwrap() * 1_000_000 + us.parse::<i64>().unwrap();
        if let Some(p) = prev {
            assert_eq!(t - p, 1000, "rows are exactly one sample apart, no gap, no repeat");
        }
        prev = Some(t);
        rows += 1;
    }
    // The run's summary: `  stream emulator: N samples × …`.
    let produced = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("stream emulator: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no emulator stats in:\n{stderr}"));
    assert!(produced > 0);
    assert_eq!(produced % BATCH, 0, "whole packets of {BATCH}");
    assert_eq!(rows, produced, "every produced sample written exactly once");
}

#[test]
fn run_with_duration_drains_every_sample_to_csv() {
    let dir = tempfile::tempdir().unwrap();
    let file = csv_pipeline(dir.path());
    let out = eegd().arg("run").arg(&file).args(["--duration", "1.5"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_every_sample_once(dir.path(), &stderr);
}

#[test]
fn ctrl_c_drains_before_exit() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let file = csv_pipeline(dir.path());
    let child = eegd().arg("run").arg(&file).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait until data is flowing (the sink flushes at least once a second).
    let csv = dir.path().join("out.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0) < 2_000 {
        assert!(std::time::Instant::now() < deadline, "no data written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Interrupted; draining"), "{stderr}");
    assert_every_sample_once(dir.path(), &stderr);
}

#[test]
fn validate_names_the_thread_groups_to_pin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - csv_sink: { path: out.csv }\n  - notch: { inputs: [to_voltage], group: dsp }\n  - null_sink: {}\n",
    )
    .unwrap();
    let out = eegd().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (5 stages; thread groups: acquire, dsp, io)"), "{stdout}");
}
