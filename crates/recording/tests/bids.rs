//! Format `bids` end to end through the real executor: the run's files in the dataset, the
//! sidecars' contents, and a second run extending the same dataset. (The BIDS validator and
//! MNE-BIDS check the result from outside in `interop/test_bids.py`.)
use pipeline::exec::Pipeline;
use pipeline::topology::file::RecordingFormat;
use pipeline::topology::graph::plan;
use recording::{Session, SessionMeta, SessionOptions};
use std::path::Path;

const SRC: &str = "stages:
  - emulator: { channels: 3, rate: 250, samples: 500, line_hz: 60 }
  - to_voltage: {}
  - notch: { hz: 60 }
  - null_sink: {}
recording: { format: bids, task: restingstate }
";

/// Records the 2 s the emulator gives, with markers 0.5 s and 0.9 s after the start.
fn record(data: &Path, opts: &SessionOptions) -> SessionMeta {
    stages::link();
    let mut p = plan("s.yaml", SRC).unwrap();
    let mut s = Session::create(data, &mut p, opts).unwrap();
    let pipeline = Pipeline::start(p).unwrap();
    s.attach(pipeline.shared().clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    s.add_marker_at(now + 500_000_000, "open").unwrap();
    s.add_marker_at(now + 900_000_000, "close").unwrap();
    // The emulator ends after its 500 samples; the pipeline then drains and finishes.
    pipeline.shared().wait_finished(None);
    pipeline.join();
    s.finish().unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_bids_run_writes_the_data_and_its_sidecars_and_the_next_run_extends_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let opts = SessionOptions { participant: "p-07".into(), session: Some("1".into()), ..Default::default() };
    let meta = record(data, &opts);
    assert_eq!((meta.status.as_str(), meta.format.as_str()), ("complete", "bids"), "{meta:#?}");
    let b = meta.bids.as_ref().unwrap();
    assert_eq!(
        (b.subject.as_str(), b.session.as_deref(), b.task.as_str(), b.run),
        ("p07", Some("1"), "restingstate", 1)
    );
    let stem = "bids/sub-p07/ses-1/eeg/sub-p07_ses-1_task-restingstate_run-1";
    assert_eq!(
        b.files,
        ["_eeg.bdf", "_eeg.json", "_channels.tsv", "_events.tsv", "_events.json"]
            .iter()
            .map(|s| format!("{stem}{s}"))
            .chain(["bids/sub-p07/ses-1/sub-p07_ses-1_scans.tsv".to_string()])
            .collect::<Vec<_>>()
    );
    // eegd's own files, where BIDS keeps files of its own.
    let source = data.join("bids/sourcedata/eegd/sub-p07_ses-1_task-restingstate_run-1");
    assert_eq!(read(&source.join("pipeline.yaml")), SRC);
    let on_disk: SessionMeta = serde_json::from_str(&read(&source.join("session_meta.json"))).unwrap();
    assert_eq!(on_disk, meta);
    assert_eq!(recording::list(data).unwrap(), vec![(source, meta.clone())]);

    let eeg: serde_json::Value = serde_json::from_str(&read(&data.join(format!("{stem}_eeg.json")))).unwrap();
    assert_eq!(eeg["TaskName"], "restingstate");
    assert_eq!(eeg["SamplingFrequency"], 250.0);
    assert_eq!(eeg["PowerLineFrequency"], 60.0);
    assert_eq!(eeg["SoftwareFilters"], "n/a", "to_voltage is recorded: unfiltered");
    assert_eq!(eeg["EEGChannelCount"], 3);
    assert_eq!(eeg["Manufacturer"], "eegd");
    let duration = eeg["RecordingDuration"].as_f64().unwrap();
    assert!(
        duration >= meta.samples_written as f64 / 250.0 && meta.samples_written == 500,
        "{duration} {}",
        meta.samples_written
    );

    let channels = read(&data.join(format!("{stem}_channels.tsv")));
    let rows: Vec<Vec<&str>> = channels.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0], ["name", "type", "units", "sampling_frequency", "status", "status_description"]);
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, meta.labels.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows[1..].iter().all(|r| r[1..4] == ["EEG", "µV", "250"]), "{channels}");

    let events = read(&data.join(format!("{stem}_events.tsv")));
    let ev: Vec<Vec<&str>> = events.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    assert_eq!(ev.iter().map(|r| r[2]).collect::<Vec<_>>(), ["open", "close"], "{events}");
    let onsets: Vec<f64> = ev.iter().map(|r| r[0].parse().unwrap()).collect();
    let samples: Vec<i64> = ev.iter().map(|r| r[3].parse().unwrap()).collect();
    for (o, s) in onsets.iter().zip(&samples) {
        assert_eq!((o * 250.0).round() as i64, *s, "the onset is its sample's");
    }
    assert_eq!(samples[1] - samples[0], 100, "0.4 s apart at 250 Hz: {events}");

    // A second run of the same participant and session: run 2, same dataset, one participant.
    let meta2 = record(data, &opts);
    assert_eq!(meta2.bids.as_ref().unwrap().run, 2);
    assert_eq!(read(&data.join("bids/participants.tsv")), "participant_id\nsub-p07\n");
    let scans = read(&data.join("bids/sub-p07/ses-1/sub-p07_ses-1_scans.tsv"));
    assert_eq!(scans.lines().count(), 3, "{scans}");
    let desc: serde_json::Value =
        serde_json::from_str(&read(&data.join("bids/dataset_description.json"))).unwrap();
    assert_eq!((desc["BIDSVersion"].as_str(), desc["DatasetType"].as_str()), (Some("1.9.0"), Some("raw")));
    assert_eq!(recording::list(data).unwrap().len(), 2);

    // Without a participant code, a BIDS run cannot be named.
    let mut p = plan("s.yaml", SRC).unwrap();
    let anon = SessionOptions { format: Some(RecordingFormat::Bids), ..Default::default() };
    assert!(matches!(Session::create(data, &mut p, &anon), Err(recording::SessionError::Bids(_))));
}
