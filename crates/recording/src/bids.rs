//! Recording format `bids`: each session is one run of a BIDS-EEG dataset under
//! `<data_dir>/bids/` (BIDS 1.9, the EEG extension):
//!
//! ```text
//! bids/
//!   dataset_description.json  README  participants.tsv  participants.json
//!   sub-<p>/[ses-<s>/]sub-<p>[_ses-<s>]_scans.tsv      each run's file and start time
//!   sub-<p>/[ses-<s>/]eeg/
//!     sub-<p>[_ses-<s>]_task-<t>_run-<r>_eeg.bdf        the data (BDF+), as `bdf_sink` writes it
//!     …_eeg.json  …_channels.tsv  …_events.tsv  …_events.json
//!   sourcedata/eegd/sub-<p>[_ses-<s>]_task-<t>_run-<r>/  session_meta.json, pipeline.yaml
//! ```
//!
//! eegd's own files go in `sourcedata/`, which BIDS sets aside for files of its own. The
//! dataset-level files are written once and extended (`participants.tsv`) by later runs, so
//! every session, run and participant of a data directory lands in one dataset. The sidecars
//! are written when the run ends, from the file itself (read back: duration and each marker's
//! annotation at its exact sample) and from the pipeline (rate, labels, hardware, filters).
use crate::session::SessionError;
use formats::edf::{Reader, Record};
use pipeline::topology::graph::Plan;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The dataset's folder inside the data directory.
pub const BIDS_DIR: &str = "bids";
/// The BIDS version the files follow.
pub const BIDS_VERSION: &str = "1.9.0";
/// Task label when neither the request nor `recording.task` gives one.
pub const DEFAULT_TASK: &str = "rest";

/// What a BIDS run is asked to be: `task`, `session` and `run` entities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BidsEntities {
    pub task: Option<String>,
    pub session: Option<String>,
    /// Default: the next run number free for this subject, session and task.
    pub run: Option<u32>,
}

/// A quality verdict for one channel, for `_channels.tsv` (`good`/`bad` and why).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStatus {
    pub good: bool,
    pub description: String,
}

/// The hardware and processing a pipeline implies, for `_eeg.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquisition {
    pub manufacturer: String,
    pub model: String,
    pub reference: String,
    /// Mains frequency, Hz, when the pipeline says it (a source's `line_hz`, a `notch`'s `hz`).
    pub line_hz: Option<f64>,
    /// The stages between the source and the recorded stage that filter, with their parameters;
    /// `None` when the recording is unfiltered.
    pub software_filters: Option<Value>,
}

/// One run of the dataset: where its files go.
#[derive(Debug, Clone)]
pub struct BidsRun {
    /// `<data_dir>/bids`.
    pub root: PathBuf,
    pub subject: String,
    pub session: Option<String>,
    pub task: String,
    pub run: u32,
    /// `sub-<p>[_ses-<s>]_task-<t>_run-<r>`.
    pub stem: String,
    /// `root/sub-<p>[/ses-<s>]/eeg`.
    pub eeg_dir: PathBuf,
    /// `root/sourcedata/eegd/<stem>`: the session folder (`session_meta.json`, `pipeline.yaml`).
    pub source_dir: PathBuf,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SessionError + 'a {
    move |source| SessionError::Io { what, path: path.to_path_buf(), source }
}

/// A BIDS label: letters and digits only (BIDS allows nothing else), at most 64.
pub fn label(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).take(64).collect()
}

impl BidsRun {
    /// Chooses the run's names and folders and creates them, with the dataset-level files if
    /// this is the dataset's first run. Refuses a run whose data file already exists.
    pub fn create(data_dir: &Path, participant: &str, e: &BidsEntities) -> Result<BidsRun, SessionError> {
        let subject = label(participant);
        if subject.is_empty() {
            return Err(SessionError::Bids(
                "a BIDS recording needs a `participant` code with letters or digits (BIDS labels are alphanumeric)"
                    .into(),
            ));
        }
        let task = label(e.task.as_deref().unwrap_or(DEFAULT_TASK));
        if task.is_empty() {
            return Err(SessionError::Bids("the BIDS `task` label needs letters or digits".into()));
        }
        let session = match e.session.as_deref().map(label) {
            Some(s) if s.is_empty() => {
                return Err(SessionError::Bids("the BIDS `session` label needs letters or digits".into()))
            }
            s => s,
        };
        let root = data_dir.join(BIDS_DIR);
        let mut eeg_dir = root.join(format!("sub-{subject}"));
        let mut prefix = format!("sub-{subject}");
        if let Some(s) = &session {
            eeg_dir.push(format!("ses-{s}"));
            prefix.push_str(&format!("_ses-{s}"));
        }
        eeg_dir.push("eeg");
        prefix.push_str(&format!("_task-{task}"));
        std::fs::create_dir_all(&eeg_dir).map_err(io("creating the BIDS folder", &eeg_dir))?;
        let run = match e.run {
            Some(0) => return Err(SessionError::Bids("the BIDS `run` is a positive integer".into())),
            Some(r) => r,
            None => next_run(&eeg_dir, &prefix)?,
        };
        let stem = format!("{prefix}_run-{run}");
        let data = eeg_dir.join(format!("{stem}_eeg.bdf"));
        if data.exists() {
            return Err(SessionError::BidsRunExists(format!(
                "run {run} of sub-{subject}{} task {task} is already recorded; give another `run`",
                session.as_deref().map(|s| format!(" ses-{s}")).unwrap_or_default()
            )));
        }
        let source_dir = root.join("sourcedata").join("eegd").join(&stem);
        std::fs::create_dir_all(&source_dir).map_err(io("creating the BIDS source folder", &source_dir))?;
        let r = BidsRun { root, subject, session, task, run, stem, eeg_dir, source_dir };
        r.write_dataset_files()?;
        Ok(r)
    }

    /// The BDF file the recorder writes.
    pub fn data_file(&self) -> PathBuf {
        self.eeg_dir.join(format!("{}_eeg.bdf", self.stem))
    }

    fn sidecar(&self, suffix: &str) -> PathBuf {
        self.eeg_dir.join(format!("{}_{suffix}", self.stem))
    }

    fn write_dataset_files(&self) -> Result<(), SessionError> {
        let desc = self.root.join("dataset_description.json");
        if !desc.exists() {
            let v = json!({
                "Name": "eegd recordings",
                "BIDSVersion": BIDS_VERSION,
                "DatasetType": "raw",
                "GeneratedBy": [{
                    "Name": "eegd",
                    "Version": env!("CARGO_PKG_VERSION"),
                    "Description": "Real-time EEG acquisition; one run per recording session",
                }],
            });
            write(&desc, &pretty(&v))?;
        }
        let readme = self.root.join("README");
        if !readme.exists() {
            write(
                &readme,
                "EEG recorded with eegd, one run per recording session.\n\n\
                 Each run's data is the BDF+ file in sub-*/[ses-*/]eeg/, with its sidecars.\n\
                 sourcedata/eegd/<run>/ holds what eegd recorded about each run: the exact\n\
                 pipeline that ran (pipeline.yaml) and the session's metadata and counters\n\
                 (session_meta.json).\n",
            )?;
        }
        let pj = self.root.join("participants.json");
        if !pj.exists() {
            let v = json!({"participant_id": {"Description": "The participant code given when recording"}});
            write(&pj, &pretty(&v))?;
        }
        // participants.tsv: one row per subject, added by its first run.
        let pt = self.root.join("participants.tsv");
        let mut text = std::fs::read_to_string(&pt).unwrap_or_default();
        if text.trim().is_empty() {
            text = "participant_id\n".into();
        }
        let id = format!("sub-{}", self.subject);
        if !text.lines().skip(1).any(|l| l.split('\t').next() == Some(id.as_str())) {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&id);
            text.push('\n');
            write(&pt, &text)?;
        }
        Ok(())
    }

    /// Writes the run's sidecars once its BDF is closed: `_eeg.json`, `_channels.tsv`,
    /// `_events.tsv` (the file's annotations, each at its sample) and `_events.json`. Returns
    /// every file of the run, data file first.
    pub fn finish(
        &self,
        acq: &Acquisition,
        statuses: &[Option<ChannelStatus>],
    ) -> Result<Vec<PathBuf>, SessionError> {
        let data = self.data_file();
        let f = std::fs::File::open(&data).map_err(io("reading", &data))?;
        let mut reader = Reader::open(std::io::BufReader::new(f))
            .map_err(|e| SessionError::Bids(format!("reading back {}: {e}", data.display())))?;
        let header = reader.header().clone();
        let signals: Vec<_> = header.data_signals().into_iter().map(|i| header.signals[i].clone()).collect();
        let rate = signals
            .first()
            .map(|s| s.samples_per_record as f64 / header.record_duration_s)
            .unwrap_or_default();
        let duration = header.records as f64 * header.record_duration_s;
        let mut events = Vec::new();
        let mut rec = Record::default();
        while reader
            .read_record(&mut rec)
            .map_err(|e| SessionError::Bids(format!("reading back {}: {e}", data.display())))?
        {
            events.append(&mut rec.annotations);
        }
        events.sort_by_key(|a| a.onset_ns);

        let eeg = json!({
            "TaskName": self.task,
            "SamplingFrequency": rate,
            "PowerLineFrequency": acq.line_hz.map_or(json!("n/a"), |h| json!(h)),
            "EEGReference": acq.reference,
            "SoftwareFilters": acq.software_filters.clone().unwrap_or(json!("n/a")),
            "HardwareFilters": "n/a",
            "Manufacturer": acq.manufacturer,
            "ManufacturersModelName": acq.model,
            "SoftwareVersions": format!("eegd {}", env!("CARGO_PKG_VERSION")),
            "EEGChannelCount": signals.len(),
            "EOGChannelCount": 0,
            "ECGChannelCount": 0,
            "EMGChannelCount": 0,
            "MiscChannelCount": 0,
            "TriggerChannelCount": 0,
            "RecordingDuration": duration,
            "RecordingType": "continuous",
        });
        write(&self.sidecar("eeg.json"), &pretty(&eeg))?;

        let mut ch = String::from("name\ttype\tunits\tsampling_frequency\tstatus\tstatus_description\n");
        for (i, s) in signals.iter().enumerate() {
            let (status, why) = match statuses.get(i).and_then(Option::as_ref) {
                Some(st) => (if st.good { "good" } else { "bad" }, tsv(&st.description)),
                None => ("n/a", "n/a".to_string()),
            };
            let units = if s.unit == "uV" { "µV" } else { s.unit.as_str() };
            let _ = writeln!(ch, "{}\tEEG\t{}\t{rate}\t{status}\t{why}", tsv(&s.label), tsv(units));
        }
        write(&self.sidecar("channels.tsv"), &ch)?;

        let mut ev = String::from("onset\tduration\ttrial_type\tsample\n");
        for a in &events {
            let onset = a.onset_ns as f64 / 1e9;
            let duration = a.duration_ns.map_or("0".to_string(), |d| format!("{}", d as f64 / 1e9));
            let sample = (onset * rate).round() as i64;
            let _ = writeln!(ev, "{onset:.9}\t{duration}\t{}\t{sample}", tsv(&a.text));
        }
        write(&self.sidecar("events.tsv"), &ev)?;
        let ej = json!({
            "onset": {"Description": "Time of the marker from the first sample", "Units": "s"},
            "duration": {"Description": "Markers are instants", "Units": "s"},
            "trial_type": {"Description": "The marker's label, as posted to eegd (POST /api/markers, --stdin-markers)"},
            "sample": {"Description": "The sample the marker falls on, from 0"},
        });
        write(&self.sidecar("events.json"), &pretty(&ej))?;

        // `_scans.tsv` of the subject (and session): each run's file and the time of its first
        // sample, which readers take as the measurement date.
        let scans_dir = self.eeg_dir.parent().unwrap_or(&self.eeg_dir);
        let scans =
            scans_dir.join(format!("{}_scans.tsv", self.stem.split("_task-").next().unwrap_or(&self.stem)));
        let mut text = std::fs::read_to_string(&scans).unwrap_or_default();
        if text.trim().is_empty() {
            text = "filename\tacq_time\n".into();
        }
        let name = format!("eeg/{}_eeg.bdf", self.stem);
        if !text.lines().any(|l| l.split('\t').next() == Some(name.as_str())) {
            let t = crate::session::rfc3339(header.start_ns());
            let _ = writeln!(text, "{name}\t{}", t.trim_end_matches('Z'));
            write(&scans, &text)?;
        }

        Ok(vec![
            data,
            self.sidecar("eeg.json"),
            self.sidecar("channels.tsv"),
            self.sidecar("events.tsv"),
            self.sidecar("events.json"),
            scans,
        ])
    }
}

/// Each channel's `_channels.tsv` status from the signal quality a session kept
/// (`session_meta.json`'s `signal_quality`: `at_start.channels`, each with `label`, `status`
/// `good`/`fair`/`bad`, `impedance_kohm`, `lead_off`, `railed`, `flat`, `rms_uv`), by label.
/// BIDS knows `good` and `bad`: `fair` is good, and the description says it. Nothing (all
/// `n/a`) when no quality window had been measured when the session started.
pub fn statuses_from_quality(quality: &Value, labels: &[String]) -> Vec<Option<ChannelStatus>> {
    let at_start = &quality["at_start"];
    if at_start["measured_ns"].is_null() {
        return vec![None; labels.len()];
    }
    let channels = at_start["channels"].as_array().map_or(&[][..], Vec::as_slice);
    labels
        .iter()
        .map(|label| {
            let c = channels.iter().find(|c| c["label"].as_str() == Some(label.as_str()))?;
            let status = c["status"].as_str()?;
            let mut why = vec![format!("signal quality at the start: {status}")];
            for flag in ["lead_off", "railed", "flat"] {
                if c[flag].as_bool() == Some(true) {
                    why.push(flag.replace('_', "-"));
                }
            }
            if let Some(z) = c["impedance_kohm"].as_f64() {
                why.push(format!("impedance {z:.1} kOhm"));
            }
            if let Some(r) = c["rms_uv"].as_f64() {
                why.push(format!("rms {r:.1} uV"));
            }
            Some(ChannelStatus { good: status != "bad", description: why.join("; ") })
        })
        .collect()
}

/// The first run number after every run of `prefix` already in `dir`.
fn next_run(dir: &Path, prefix: &str) -> Result<u32, SessionError> {
    let entries = std::fs::read_dir(dir).map_err(io("reading the BIDS folder", dir))?;
    let runs = entries.flatten().filter_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let rest = name.strip_prefix(prefix)?.strip_prefix("_run-")?;
        rest.split('_').next()?.parse::<u32>().ok()
    });
    Ok(runs.max().map_or(1, |m| m + 1))
}

/// What `_eeg.json` says of the hardware, the reference and the filters, from the plan:
/// the source feeding `input` (`ads1299`, `emulator`, …), the mains frequency a source or
/// `notch` names, and the filter stages between the source and `input`.
pub fn describe(plan: &Plan, input: usize) -> Acquisition {
    // The stages `input` depends on, itself included.
    let mut upstream = vec![false; plan.stages.len()];
    let mut todo = vec![input];
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut upstream[i], true) {
            todo.extend(plan.stages[i].inputs.iter().copied());
        }
    }
    let params = |i: usize| plan.stages[i].stage.params_json();
    let source = (0..plan.stages.len()).find(|&i| upstream[i] && plan.stages[i].inputs.is_empty());
    let source_type = source.map(|i| plan.stages[i].type_name).unwrap_or("");
    let (manufacturer, model) = match source_type {
        "ads1299" => ("Texas Instruments", "ADS1299"),
        "emulator" => ("eegd", "ADS1299 emulator (simulated signals)"),
        "file_source" => ("n/a", "n/a (replayed from a file)"),
        _ => ("n/a", "n/a"),
    };
    let reference = match source.map(params) {
        Some(p) if p.get("srb1").and_then(Value::as_bool) == Some(true) => {
            "the common reference electrode on SRB1".to_string()
        }
        _ if source_type == "emulator" => "n/a (simulated)".to_string(),
        _ => "n/a".to_string(),
    };
    let line_hz = source.and_then(|i| params(i).get("line_hz").and_then(Value::as_f64)).or_else(|| {
        plan.stages.iter().find(|s| s.type_name == "notch").and_then(|s| s.stage.params_json()["hz"].as_f64())
    });
    const FILTERS: [&str; 7] =
        ["highpass", "lowpass", "bandpass", "bandstop", "notch", "downsample", "rereference"];
    let mut filters = serde_json::Map::new();
    for (i, s) in plan.stages.iter().enumerate() {
        if upstream[i] && FILTERS.contains(&s.type_name) {
            let mut p = s.stage.params_json();
            if let Value::Object(m) = &mut p {
                m.insert("type".into(), json!(s.type_name));
            }
            filters.insert(s.name.clone(), p);
        }
    }
    Acquisition {
        manufacturer: manufacturer.into(),
        model: model.into(),
        reference,
        line_hz,
        software_filters: (!filters.is_empty()).then_some(Value::Object(filters)),
    }
}

/// A TSV cell: no tabs or line breaks, and `n/a` for nothing.
fn tsv(s: &str) -> String {
    let v: String = s.chars().map(|c| if c == '\t' || c == '\n' || c == '\r' { ' ' } else { c }).collect();
    if v.trim().is_empty() {
        "n/a".into()
    } else {
        v
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn write(path: &Path, text: &str) -> Result<(), SessionError> {
    std::fs::write(path, text).map_err(io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_status_follows_the_quality_at_the_start() {
        let labels: Vec<String> = ["Fp1", "Fp2", "C3"].iter().map(|s| s.to_string()).collect();
        let q = json!({"at_start": {"measured_ns": 1, "channels": [
            {"label": "Fp2", "status": "bad", "lead_off": true, "railed": false, "flat": false, "impedance_kohm": null, "rms_uv": 3.0},
            {"label": "Fp1", "status": "fair", "lead_off": false, "railed": false, "flat": false, "impedance_kohm": 20.0, "rms_uv": null},
        ]}});
        let st = statuses_from_quality(&q, &labels);
        assert_eq!(
            st,
            vec![
                Some(ChannelStatus {
                    good: true,
                    description: "signal quality at the start: fair; impedance 20.0 kOhm".into()
                }),
                Some(ChannelStatus {
                    good: false,
                    description: "signal quality at the start: bad; lead-off; rms 3.0 uV".into()
                }),
                None,
            ]
        );
        let unmeasured = json!({"at_start": {"measured_ns": null, "channels": q["at_start"]["channels"]}});
        assert_eq!(statuses_from_quality(&unmeasured, &labels), vec![None, None, None]);
        assert_eq!(statuses_from_quality(&json!({"at_start": null}), &labels), vec![None, None, None]);
    }

    #[test]
    fn labels_keep_letters_and_digits_only() {
        assert_eq!(label("P 07/ä-x_y"), "P07xy");
        assert_eq!(label("__"), "");
    }

    #[test]
    fn runs_number_on_from_those_recorded_and_the_dataset_grows() {
        let tmp = tempfile::tempdir().unwrap();
        let e = BidsEntities { task: Some("oddball".into()), session: Some("01".into()), run: None };
        let r1 = BidsRun::create(tmp.path(), "p01", &e).unwrap();
        assert_eq!(r1.run, 1);
        assert_eq!(r1.stem, "sub-p01_ses-01_task-oddball_run-1");
        assert!(r1
            .data_file()
            .ends_with("bids/sub-p01/ses-01/eeg/sub-p01_ses-01_task-oddball_run-1_eeg.bdf"));
        std::fs::write(r1.data_file(), b"").unwrap();
        let r2 = BidsRun::create(tmp.path(), "p01", &e).unwrap();
        assert_eq!(r2.run, 2);
        // An explicit run that exists is refused; another participant is added once.
        let again = BidsEntities { run: Some(1), ..e.clone() };
        assert!(matches!(BidsRun::create(tmp.path(), "p01", &again), Err(SessionError::BidsRunExists(_))));
        BidsRun::create(tmp.path(), "p02", &e).unwrap();
        let participants = std::fs::read_to_string(tmp.path().join("bids/participants.tsv")).unwrap();
        assert_eq!(participants, "participant_id\nsub-p01\nsub-p02\n");
        assert!(matches!(BidsRun::create(tmp.path(), "--", &e), Err(SessionError::Bids(_))));
    }
}
