//! Sessions end to end through the real executor: folder, files, metadata, markers, and a
//! recorder whose disk fails.
use formats::edf::{Reader, Record};
use pipeline::exec::Pipeline;
use pipeline::topology::graph::plan;
use recording::{Session, SessionMeta, SessionOptions};
use stages::recorder::report_for;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SRC: &str = "stages:
  - emulator: { channels: 3, rate: 250, batch: 10, realtime: false }
  - to_voltage: {}
  - notch: {}
  - null_sink: {}
recording: { format: bdf }
";

/// Markers go to every recorder in the process: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `SRC` with a session until the recorder has `samples`, marking sample 100.
fn record(dir: &std::path::Path, prepare: impl FnOnce(&Session)) -> (SessionMeta, std::path::PathBuf) {
    stages::link();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = plan("s.yaml", SRC).unwrap();
    let opts = SessionOptions {
        participant: "P 07/ä".into(),
        notes: "eyes closed".into(),
        format: None,
        ..Default::default()
    };
    let mut s = Session::create(dir, &mut p, &opts).unwrap();
    prepare(&s);
    let pipeline = Pipeline::start(p).unwrap();
    s.attach(pipeline.shared().clone());
    s.add_marker("task start");
    let null = pipeline.shared().stage("null_sink").unwrap().stats.clone();
    while null.packets_in.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(report_for(s.file()).is_some(), "the recorder reports to the session");
    let folder = s.dir().to_path_buf();
    pipeline.join();
    (s.finish().unwrap(), folder)
}

#[test]
fn a_session_writes_its_folder_file_and_metadata() {
    let data = tempfile::tempdir().unwrap();
    let (meta, dir) = record(data.path(), |_| {});
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("Z_P_07"), "{name}");
    assert_eq!(std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap(), SRC);
    let on_disk: SessionMeta =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session_meta.json")).unwrap()).unwrap();
    assert_eq!(on_disk, meta);
    assert_eq!(meta.status, "complete");
    assert_eq!(meta.participant, "P 07/ä");
    assert_eq!(meta.notes, "eyes closed");
    assert_eq!((meta.format.as_str(), meta.input.as_str()), ("bdf", "to_voltage"));
    assert_eq!((meta.rate, meta.channels), (250.0, 3));
    assert_eq!(meta.labels.len(), 3);
    assert_eq!(meta.samples_dropped_upstream, 0);
    assert_eq!(meta.packets_dropped_upstream, 0);
    assert!(meta.samples_written >= 2000, "{}", meta.samples_written);
    assert!(meta.stop_ns.unwrap() >= meta.start_ns);
    let listed = recording::list(data.path()).unwrap();
    assert_eq!(listed, vec![(dir.clone(), meta.clone())], "the session is listed");
    let rec = meta.recorder.as_ref().unwrap();
    assert_eq!((rec.state.as_str(), rec.closed, rec.error.as_deref()), ("finished", true, None));

    let mut r = Reader::open(File::open(dir.join("recording.bdf")).unwrap()).unwrap();
    assert_eq!(r.header().records_in_header as u64, meta.samples_written.div_ceil(250));
    assert!(r.header().patient.starts_with("P_07 "));
    let mut n = 0u64;
    let mut rec = Record::default();
    let mut texts = Vec::new();
    while r.read_record(&mut rec).unwrap() {
        n += rec.digital[0].len() as u64;
        texts.extend(rec.annotations.iter().map(|a| a.text.clone()));
    }
    assert_eq!(texts, ["task start"]);
    assert_eq!(meta.markers.len(), 1);
    assert_eq!(meta.markers[0].text, "task start");
    assert_eq!(n, meta.samples_written.div_ceil(250) * 250);
}

#[test]
fn a_recorder_whose_disk_fails_stops_and_the_meta_says_why() {
    let data = tempfile::tempdir().unwrap();
    // The data file is a link to a full disk: every write fails with ENOSPC.
    let (meta, _) = record(data.path(), |s| std::os::unix::fs::symlink("/dev/full", s.file()).unwrap());
    assert_eq!(meta.status, "failed");
    let rec = meta.recorder.unwrap();
    assert_eq!(rec.state, "stopped", "drain_then_stop");
    assert!(!rec.closed);
    assert!(rec.error.unwrap_or_default().contains("No space left"));
}

#[test]
fn a_session_whose_pipeline_cannot_start_is_closed_as_failed() {
    stages::link();
    let data = tempfile::tempdir().unwrap();
    let src =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - csv_sink: { path: /nonexistent/dir/x.csv }\n";
    let mut p = plan("s.yaml", src).unwrap();
    let s = Session::create(data.path(), &mut p, &SessionOptions::default()).unwrap();
    let dir = s.dir().to_path_buf();
    assert!(dir.to_string_lossy().ends_with("Z_anonymous"), "{}", dir.display());
    let err = Pipeline::start(p).err().expect("the csv_sink cannot open its file");
    let meta = s.abandon(&err.to_string()).unwrap();
    assert_eq!(meta.status, "failed");
    let on_disk: SessionMeta =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session_meta.json")).unwrap()).unwrap();
    assert!(on_disk.recorder.unwrap().error.unwrap().contains("csv_sink"));
}
