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
    let placed = s.add_marker("task start").unwrap();
    assert_eq!(placed.recorded, s.meta().status == "recording", "recorded while it records");
    let null = pipeline.shared().stage("null_sink").unwrap().stats.clone();
    while null.packets_in.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(report_for(s.file()).is_some(), "the recorder reports to the session");
    let folder = s.dir().to_path_buf();
    let rec = pipeline.shared().stage("session_recorder").map(|st| st.stats.clone());
    pipeline.join();
    if let Some(rec) = rec.filter(|r| r.state() == pipeline::stats::StageState::Finished) {
        // Exact boundaries: every sample the recorder took, from its first to its last, and
        // nothing more.
        let took = rec.packets_in.load(Ordering::Relaxed) * 10;
        assert_eq!(report_for(s.file()).unwrap().samples.load(Ordering::Relaxed), took);
    }
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
    assert_eq!(r.header().records_in_header as u64 * 10, meta.samples_written, "records of one packet");
    assert_eq!(meta.samples_unwritten, 0);
    assert_eq!(r.header().start_ns(), meta.first_sample_ns.unwrap());
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
    assert_eq!(n, meta.samples_written, "exactly what the meta says: no padding");
}

#[test]
fn a_recorder_whose_disk_fails_stops_and_the_meta_says_why() {
    let data = tempfile::tempdir().unwrap();
    // The data file is a link to a full disk: every write fails with ENOSPC.
    let (meta, _) = record(data.path(), |s| std::os::unix::fs::symlink("/dev/full", s.file()).unwrap());
    assert_eq!(meta.status, "failed");
    assert!(meta.error.as_deref().unwrap_or_default().contains("No space left"), "{:?}", meta.error);
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

fn meta_on_disk(dir: &std::path::Path) -> SessionMeta {
    serde_json::from_str(&std::fs::read_to_string(dir.join("session_meta.json")).unwrap()).unwrap()
}

#[test]
fn a_failed_recorder_shows_on_disk_while_the_pipeline_runs() {
    stages::link();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut p = plan("s.yaml", SRC).unwrap();
    let mut s = Session::create(data.path(), &mut p, &SessionOptions::default()).unwrap();
    std::os::unix::fs::symlink("/dev/full", s.file()).unwrap();
    let pipeline = Pipeline::start(p).unwrap();
    s.attach(pipeline.shared().clone());
    let rec = pipeline.shared().stage("session_recorder").unwrap().stats.clone();
    while rec.state() == pipeline::stats::StageState::Running {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(meta_on_disk(s.dir()).status, "recording", "nobody looked yet");
    let st = s.status();
    assert_eq!(st.status, "failed");
    assert!(st.error.unwrap_or_default().contains("No space left"));
    let on_disk = meta_on_disk(s.dir());
    assert_eq!(on_disk.status, "failed", "the meta says so at once");
    assert!(on_disk.error.unwrap_or_default().contains("No space left"));
    let m = s.add_marker("after the failure").unwrap();
    assert!(!m.recorded, "a marker is not recorded by a recorder that stopped");
    assert_eq!(meta_on_disk(s.dir()).markers.len(), 1, "but it is in the meta");
    pipeline.join();
    assert_eq!(s.finish().unwrap().status, "failed");
}

#[test]
fn markers_outside_the_recording_are_refused_and_placed_ones_reach_the_meta_at_once() {
    stages::link();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut p = plan("s.yaml", SRC).unwrap();
    let mut s = Session::create(data.path(), &mut p, &SessionOptions::default()).unwrap();
    let pipeline = Pipeline::start(p).unwrap();
    s.attach(pipeline.shared().clone());
    let ok = s.add_marker("first").unwrap();
    assert!(ok.recorded);
    let on_disk = meta_on_disk(s.dir());
    assert_eq!(on_disk.status, "recording");
    assert_eq!(on_disk.markers.len(), 1, "written as it comes, not at stop");
    let first = stages::recorder::report_for(s.file()).unwrap().first_sample_ns().unwrap();
    let before = s.add_marker_at(first - 3_600_000_000_000, "an hour before").unwrap_err();
    assert!(matches!(before, recording::MarkerRefused::BeforeStart { .. }), "{before}");
    assert!(s.add_marker_at(-5, "negative").is_err());
    let ahead = ok.entry.timestamp_ns + 10_000_000_000;
    assert!(matches!(
        s.add_marker_at(ahead, "10 s ahead"),
        Err(recording::MarkerRefused::TooFarAhead { .. })
    ));
    assert_eq!(meta_on_disk(s.dir()).markers.len(), 1, "refused markers are nowhere");
    pipeline.join();
    let meta = s.finish().unwrap();
    assert_eq!(meta.markers.len(), 1);
    assert_eq!(meta.markers_dropped, 0);
}

#[test]
fn a_session_left_recording_is_found_interrupted() {
    let done = tempfile::tempdir().unwrap();
    let (complete, _) = record(done.path(), |_| {});
    assert_eq!(
        recording::recover(done.path()).unwrap(),
        Vec::<std::path::PathBuf>::new(),
        "{}",
        complete.status
    );
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut p = plan("s.yaml", SRC).unwrap();
    let mut s = Session::create(data.path(), &mut p, &SessionOptions::default()).unwrap();
    let dir = s.dir().to_path_buf();
    let pipeline = Pipeline::start(p).unwrap();
    s.attach(pipeline.shared().clone());
    s.add_marker("before the crash").unwrap();
    let null = pipeline.shared().stage("null_sink").unwrap().stats.clone();
    while null.packets_in.load(Ordering::Relaxed) < 300 {
        std::thread::sleep(Duration::from_millis(2));
    }
    pipeline.join();
    // As after a crash: the session is never finished (its file is, by the pipeline's stop).
    drop(s);
    assert_eq!(recording::recover(data.path()).unwrap(), vec![dir.clone()]);
    let meta = meta_on_disk(&dir);
    assert_eq!(meta.status, "interrupted");
    assert!(meta.error.is_some());
    assert_eq!(meta.markers.len(), 1, "markers sent before the crash are kept");
    let mut r = Reader::open(File::open(dir.join("recording.bdf")).unwrap()).unwrap();
    let (mut rec, mut n) = (Record::default(), 0u64);
    while r.read_record(&mut rec).unwrap() {
        n += rec.digital[0].len() as u64;
    }
    assert!(n >= 3000);
    assert_eq!(meta.samples_written, n, "read back from the file");
    assert_eq!(recording::list(data.path()).unwrap()[0].1.status, "interrupted");
}
