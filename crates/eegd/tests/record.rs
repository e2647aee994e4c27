//! `eegd run --record DIR`: a session folder with the data file, the metadata and the exact
//! pipeline text; markers from standard input land in both.
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn run_with_record_writes_a_session_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let src = "stages:\n  - emulator: { channels: 2, rate: 250, batch: 10 }\n  - to_voltage: {}\nrecording: { format: csv }\n";
    std::fs::write(&file, src).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_eegd"))
        .args(["run", file.to_str().unwrap(), "--duration", "1.5", "--record", data.to_str().unwrap()])
        .args(["--participant", "P1", "--stdin-markers"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(session.starts_with(&data));
    assert_eq!(std::fs::read_to_string(session.join("pipeline.yaml")).unwrap(), src);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(session.join("session_meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "complete");
    assert_eq!(meta["format"], "csv");
    assert_eq!(meta["participant"], "P1");
    assert_eq!(meta["markers"][0]["text"], "go");
    assert_eq!(meta["samples_dropped_upstream"], 0);
    let rows = std::fs::read_to_string(session.join("recording.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows as u64, meta["samples_written"].as_u64().unwrap());
    let markers = std::fs::read_to_string(session.join("recording.markers.csv")).unwrap();
    assert!(markers.starts_with("timestamp,text\n") && markers.trim_end().ends_with(",\"go\""), "{markers}");
}
