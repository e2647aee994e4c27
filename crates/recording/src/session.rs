//! One recording session: its folder, its recorder stage and its metadata.
//!
//! `session_meta.json` always says the truth about the session: `status` is `recording` while
//! it records, `complete` once closed cleanly, `failed` (with `error`) as soon as the recorder
//! stopped on an error (a full disk) or the pipeline never started, and `interrupted` for a
//! session found still `recording` when the daemon starts ([`recover`]: the process died).
//! Markers are written to it as they come, so a kill leaves every marker sent before it.
use formats::civil::DateTime;
use pipeline::edit::{parse_stage, EditError};
use pipeline::exec::{Shared, StageInfo};
use pipeline::stage::{lookup, BuildCx, ErrorPolicy, Registration, Role};
use pipeline::stats::StageState;
use pipeline::topology::file::{Overflow, RecordingConfig, RecordingFormat};
use pipeline::topology::graph::{Plan, PlannedStage};
use pipeline::topology::yaml::Node;
use pipeline::Kind;
use serde::{Deserialize, Serialize};
use stages::markers::{Marker, MarkerHub};
use stages::recorder::{report_for, RecorderReport};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The metadata file in every session folder.
pub const META_FILE: &str = "session_meta.json";
/// The running configuration, exactly as given.
pub const PIPELINE_FILE: &str = "pipeline.yaml";
/// The name of the recorder stage a session adds to the pipeline.
pub const RECORDER_STAGE: &str = "session_recorder";
/// The thread group of the recorder: its own, so a slow disk delays nothing else.
pub const RECORDER_GROUP: &str = "recording";

/// Why a session could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the pipeline has no stage to record (`recording.input` names none, and there is no `to_voltage` stage or source)")]
    NoInput,
    #[error("`{0}` gives {1}, which a recording cannot hold: record a time series (set `recording.input`)")]
    NotTimeSeries(String, &'static str),
    #[error("the recorder could not be built: {0}")]
    Build(String),
    /// Attaching the recorder to (or detaching it from) the running pipeline was refused.
    #[error("{0}")]
    Attach(#[source] EditError),
    /// A BIDS run that cannot be named or written as asked (labels, an existing run).
    #[error("{0}")]
    Bids(String),
    /// A BIDS run that is already in the dataset.
    #[error("{0}")]
    BidsRunExists(String),
}

/// Why a marker is not placed in the recording (it is never moved instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarkerRefused {
    #[error("the marker at {ts} ns is before the recording's first sample ({first} ns)")]
    BeforeStart { ts: i64, first: i64 },
    #[error("the marker at {ts} ns is more than {MAX_AHEAD_NS} ns ahead of now ({now} ns)")]
    TooFarAhead { ts: i64, now: i64 },
}

/// How far ahead of now a marker may be stamped, ns.
pub const MAX_AHEAD_NS: i64 = 1_000_000_000;

/// How long a marker waits for the recording's first sample, at the start of a session.
const FIRST_SAMPLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a session is asked to record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionOptions {
    /// Participant code (goes into the folder name and the EDF+ patient field).
    pub participant: String,
    pub notes: String,
    /// Default: the pipeline file's `recording.format`.
    pub format: Option<RecordingFormat>,
    /// Format `bids`: the task label (default the file's `recording.task`, else `rest`).
    pub task: Option<String>,
    /// Format `bids`: the session label (default none).
    pub session: Option<String>,
    /// Format `bids`: the run number (default the next free one).
    pub run: Option<u32>,
}

/// Where a session of format `bids` went in the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidsInfo {
    pub subject: String,
    pub session: Option<String>,
    pub task: String,
    pub run: u32,
    /// The run's files in the dataset, relative to the data directory (`bids/sub-…`), the
    /// data file first; the sidecars once the run has ended.
    pub files: Vec<String>,
}

/// A marker as the session lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkerEntry {
    /// ns since the UNIX epoch.
    pub timestamp_ns: i64,
    /// The same time as RFC 3339 (UTC).
    pub time: String,
    pub text: String,
}

/// How the recording sink ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkOutcome {
    pub stage: String,
    /// `running`, `finished`, `stopped` (by its `on_error` policy) or `failed`.
    pub state: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// True once the file was closed cleanly (header complete).
    pub closed: bool,
}

/// `session_meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub participant: String,
    pub notes: String,
    /// `recording` while it runs, then `complete`; `failed` as soon as the recorder stopped on
    /// an error (see `error`); `interrupted` if the process died while it recorded.
    pub status: String,
    /// Why the session failed or was interrupted.
    #[serde(default)]
    pub error: Option<String>,
    pub start_time: String,
    pub start_ns: i64,
    pub stop_time: Option<String>,
    pub stop_ns: Option<i64>,
    pub eegd_version: String,
    /// `bdf`, `edf` or `csv`.
    pub format: String,
    /// The stage whose output is recorded.
    pub input: String,
    pub rate: f64,
    pub channels: usize,
    pub labels: Vec<String>,
    pub units: String,
    /// The files of the session, relative to its folder.
    pub files: Vec<String>,
    /// Samples of each channel in the data file (what a reader gets back).
    pub samples_written: u64,
    /// Samples of each channel the recorder took but could not write without padding (a BDF/EDF
    /// data record left unfilled; only with packets of varying size).
    #[serde(default)]
    pub samples_unwritten: u64,
    /// Time of the file's first sample, ns since the UNIX epoch.
    #[serde(default)]
    pub first_sample_ns: Option<i64>,
    /// Gaps in the input, each marked in the file.
    #[serde(default)]
    pub gaps: u64,
    /// Samples the recorder never got: gaps in its input's timestamps. Must be zero.
    pub samples_dropped_upstream: u64,
    /// Packets dropped by the stages and queues feeding the recorder. Must be zero.
    pub packets_dropped_upstream: u64,
    /// Values at or beyond the file's physical range (written as its limit).
    pub samples_clipped: u64,
    /// The BDF/EDF physical range, ±µV, when `recording.range_uv` set it.
    #[serde(default)]
    pub range_uv: Option<f64>,
    pub markers: Vec<MarkerEntry>,
    pub markers_dropped: u64,
    /// How the session's recorder ended.
    pub recorder: Option<SinkOutcome>,
    /// How the pipeline's other recording sinks (files named in the pipeline file) ended.
    pub other_sinks: Vec<SinkOutcome>,
    /// Format `bids`: the run in the dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bids: Option<BidsInfo>,
    /// Each channel's signal quality when the session started, and the latest self-test (the
    /// daemon's `GET /api/signal-quality` and `POST /api/selftest`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_quality: Option<serde_json::Value>,
}

/// A running session's state, for the control plane.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub dir: PathBuf,
    /// The meta's `status`: `recording` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub samples_written: u64,
    pub markers: usize,
    pub recorder_state: Option<String>,
}

/// A marker placed in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerOutcome {
    pub entry: MarkerEntry,
    /// False when the recorder no longer records (it failed): the marker is in the meta only.
    pub recorded: bool,
}

/// A recording session.
pub struct Session {
    dir: PathBuf,
    meta: SessionMeta,
    recorder: String,
    file: PathBuf,
    shared: Option<Arc<Shared>>,
    report: Option<Arc<RecorderReport>>,
    /// The recorder was attached to a running pipeline (and is detached by [`Session::detach`]).
    live: bool,
    /// The recorder as it was when detached (it is no longer in the running graph).
    recorder_info: Option<StageInfo>,
    /// Format `bids`: the run, what its `_eeg.json` says, and the data directory.
    bids: Option<(crate::bids::BidsRun, crate::bids::Acquisition, PathBuf)>,
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// `ns` as RFC 3339 UTC with microseconds.
pub fn rfc3339(ns: i64) -> String {
    let d = DateTime::from_unix(ns.div_euclid(1_000_000_000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        d.year,
        d.month,
        d.day,
        d.hour,
        d.minute,
        d.second,
        ns.rem_euclid(1_000_000_000) / 1000
    )
}

/// Letters, digits, `-` and `_` of a participant code, for a folder name.
fn folder_safe(s: &str) -> String {
    let v: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let v = v.trim_matches('_').to_string();
    if v.is_empty() {
        "anonymous".into()
    } else {
        v.chars().take(64).collect()
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SessionError + 'a {
    move |source| SessionError::Io { what, path: path.to_path_buf(), source }
}

fn format_name(f: RecordingFormat) -> (&'static str, &'static str) {
    match f {
        RecordingFormat::Bdf => ("bdf_sink", "bdf"),
        RecordingFormat::Edf => ("edf_sink", "edf"),
        RecordingFormat::Csv => ("csv_sink", "csv"),
        RecordingFormat::Bids => ("bdf_sink", "bdf"),
    }
}

fn state_name(s: StageState) -> &'static str {
    match s {
        StageState::Running => "running",
        StageState::Finished => "finished",
        StageState::Stopped => "stopped",
        StageState::Failed => "failed",
    }
}

impl Session {
    /// Opens a session folder under `data_dir` and adds the recorder to `plan` (before the
    /// pipeline starts). Writes `pipeline.yaml` (the plan's source text) and a first
    /// `session_meta.json` with status `recording`. (`eegd run --record`.)
    pub fn create(data_dir: &Path, plan: &mut Plan, opts: &SessionOptions) -> Result<Session, SessionError> {
        let input = plan.recording_input().ok_or(SessionError::NoInput)?;
        let in_stage = &plan.stages[input];
        let stream = in_stage.output.clone().ok_or(SessionError::NoInput)?;
        let input_name = in_stage.name.clone();
        let taken = |n: &str| plan.index_of(n).is_some();
        let (mut s, reg, params) = Session::open(
            data_dir,
            &input_name,
            &stream,
            &plan.recording,
            &plan.source,
            opts,
            taken,
            || Ok(crate::bids::describe(plan, input)),
        )?;
        let decoded = (reg.decode)(&Node::from_json(&params)).map_err(|d| {
            SessionError::Build(d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))
        })?;
        let (stage, _) = decoded
            .build(std::slice::from_ref(&stream), &BuildCx { name: &s.recorder, stream_id: 0, upstream: &[] })
            .map_err(|e| SessionError::Build(format!("`{}`: {}", e.param, e.message)))?;
        // The recorder's counters, registered when it was built.
        s.report = report_for(&s.file);
        let capacity = plan.runtime.queue_capacity;
        plan.stages.push(PlannedStage {
            name: s.recorder.clone(),
            type_name: reg.name,
            role: Role::Sink,
            inputs: vec![input],
            group: RECORDER_GROUP.to_string(),
            on_error: ErrorPolicy::DrainThenStop,
            queue_capacity: capacity,
            overflow: Overflow::Block,
            output: None,
            stage,
            span: Default::default(),
        });
        if plan.runtime.pool_packets.is_none() {
            plan.pool_packets += capacity + 8;
        }
        s.write_meta()?;
        tracing::info!(dir = %s.dir.display(), format = %s.meta.format, "Recording session opened");
        Ok(s)
    }

    /// Opens a session folder under `data_dir` and attaches the recorder to the running
    /// pipeline as a live edit, fed by `recording.input` (else the `to_voltage` stage, else
    /// the first source): the source is not configured again, nothing restarts, and the
    /// recording begins with the first packet routed to it after this call. `source` is the
    /// running configuration's text, stored as `pipeline.yaml`.
    pub fn start_live(
        data_dir: &Path,
        shared: &Arc<Shared>,
        recording: &RecordingConfig,
        source: &str,
        opts: &SessionOptions,
    ) -> Result<Session, SessionError> {
        let t = shared.stages();
        let input = match &recording.input {
            Some(n) => t.index_of(n),
            None => t
                .iter()
                .position(|s| s.type_name == "to_voltage")
                .or_else(|| t.iter().position(|s| s.role == Role::Source)),
        }
        .ok_or(SessionError::NoInput)?;
        let stream = t[input].output.clone().ok_or(SessionError::NoInput)?;
        let input_name = t[input].name.clone();
        let taken = |n: &str| t.index_of(n).is_some();
        let (mut s, reg, mut params) =
            Session::open(data_dir, &input_name, &stream, recording, source, opts, taken, || {
                // What `_eeg.json` says is read from the running configuration's text.
                let p = pipeline::topology::graph::plan(PIPELINE_FILE, source)
                    .map_err(|d| SessionError::Build(d.to_string()))?;
                let i = p.recording_input().ok_or(SessionError::NoInput)?;
                Ok(crate::bids::describe(&p, i))
            })?;
        params["name"] = serde_json::json!(s.recorder);
        params["inputs"] = serde_json::json!([input_name]);
        params["group"] = serde_json::json!(RECORDER_GROUP);
        let item = Node::from_json(&serde_json::json!({ reg.name: params }));
        let added = parse_stage(&item)
            .map_err(|d| {
                SessionError::Build(d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))
            })
            .and_then(|decl| shared.add_stage(&decl).map_err(SessionError::Attach));
        if let Err(e) = added {
            let _ = s.write_meta();
            let _ = s.abandon(&e.to_string());
            return Err(e);
        }
        s.live = true;
        s.report = report_for(&s.file);
        s.attach(shared.clone());
        s.write_meta()?;
        tracing::info!(dir = %s.dir.display(), format = %s.meta.format, "Recording session opened; recorder attached live");
        Ok(s)
    }

    /// Detaches a recorder attached by [`Session::start_live`]: it is unlocked and removed as
    /// a live edit, so it drains what is queued for it and closes its file; the pipeline goes
    /// on. Call [`Session::finish`] after. Does nothing for a session made by `create`.
    pub fn detach(&mut self) -> Result<(), SessionError> {
        let Some(shared) = self.shared.clone().filter(|_| self.live) else { return Ok(()) };
        self.live = false;
        let Some(info) = shared.stage(&self.recorder) else { return Ok(()) };
        self.meta.packets_dropped_upstream = dropped_upstream(&shared, &self.recorder);
        self.recorder_info = Some(info);
        shared.set_locked(&self.recorder, false);
        shared.remove_stage(&self.recorder, false).map(|_| ()).map_err(SessionError::Attach)
    }

    /// The folder, meta and recorder parameters of a new session on stream `stream` of stage
    /// `input`. `taken` says which stage names are in use.
    #[allow(clippy::too_many_arguments)]
    fn open(
        data_dir: &Path,
        input: &str,
        stream: &pipeline::StreamInfo,
        recording: &RecordingConfig,
        source: &str,
        opts: &SessionOptions,
        taken: impl Fn(&str) -> bool,
        acquisition: impl FnOnce() -> Result<crate::bids::Acquisition, SessionError>,
    ) -> Result<(Session, &'static Registration, serde_json::Value), SessionError> {
        if !matches!(stream.kind, Kind::Raw | Kind::Voltage) {
            return Err(SessionError::NotTimeSeries(input.to_string(), stream.kind.name()));
        }
        let format = opts.format.unwrap_or(recording.format);
        let (type_name, ext) = format_name(format);
        let start_ns = now_ns();
        let d = DateTime::from_unix(start_ns.div_euclid(1_000_000_000));
        let base = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z_{}",
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second,
            folder_safe(&opts.participant)
        );
        std::fs::create_dir_all(data_dir).map_err(io("creating the data directory", data_dir))?;
        let bids = if format == RecordingFormat::Bids {
            let entities = crate::bids::BidsEntities {
                task: opts.task.clone().or_else(|| recording.task.clone()),
                session: opts.session.clone(),
                run: opts.run,
            };
            let run = crate::bids::BidsRun::create(data_dir, &opts.participant, &entities)?;
            Some((run, acquisition()?, data_dir.to_path_buf()))
        } else {
            None
        };
        let mut dir = match &bids {
            Some((run, ..)) => run.source_dir.clone(),
            None => data_dir.join(&base),
        };
        let mut k = 1;
        while bids.is_none() {
            match std::fs::create_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100 => {
                    k += 1;
                    dir = data_dir.join(format!("{base}-{k}"));
                }
                Err(e) => return Err(io("creating the session folder", &dir)(e)),
            }
        }
        let file_name = format!("recording.{ext}");
        let file = match &bids {
            Some((run, ..)) => run.data_file(),
            None => dir.join(&file_name),
        };
        let pipeline_path = dir.join(PIPELINE_FILE);
        std::fs::write(&pipeline_path, source).map_err(io("writing", &pipeline_path))?;

        // The recorder: a registered sink, decoded and built like one from a file.
        let reg =
            lookup(type_name).ok_or_else(|| SessionError::Build(format!("no stage type `{type_name}`")))?;
        let mut params = serde_json::json!({ "path": file });
        if format != RecordingFormat::Csv && !opts.participant.is_empty() {
            params["patient"] = serde_json::json!(format!("{} X X X", folder_safe(&opts.participant)));
        }
        let range_uv = recording.range_uv.filter(|_| format != RecordingFormat::Csv);
        if let Some(r) = range_uv {
            params["range_uv"] = serde_json::json!(r);
        }
        let mut name = RECORDER_STAGE.to_string();
        while taken(&name) {
            name.push('_');
        }
        let mut files = vec![file_name, PIPELINE_FILE.to_string(), META_FILE.to_string()];
        if bids.is_some() {
            files.remove(0);
        }
        if format == RecordingFormat::Csv {
            files.push("recording.markers.csv".into());
        }
        let meta = SessionMeta {
            participant: opts.participant.clone(),
            notes: opts.notes.clone(),
            status: "recording".into(),
            error: None,
            start_time: rfc3339(start_ns),
            start_ns,
            stop_time: None,
            stop_ns: None,
            eegd_version: env!("CARGO_PKG_VERSION").into(),
            format: if bids.is_some() { "bids" } else { ext }.into(),
            input: input.to_string(),
            rate: stream.rate,
            channels: stream.channels,
            labels: (0..stream.channels).map(|c| stages::recorder::label(&stream.meta, c)).collect(),
            units: if stream.kind == Kind::Raw { "counts".into() } else { stream.meta.units.clone() },
            files,
            samples_written: 0,
            samples_unwritten: 0,
            first_sample_ns: None,
            gaps: 0,
            samples_dropped_upstream: 0,
            packets_dropped_upstream: 0,
            samples_clipped: 0,
            range_uv,
            markers: Vec::new(),
            markers_dropped: 0,
            recorder: None,
            other_sinks: Vec::new(),
            bids: bids.as_ref().map(|(run, _, root)| crate::session::BidsInfo {
                subject: run.subject.clone(),
                session: run.session.clone(),
                task: run.task.clone(),
                run: run.run,
                files: vec![relative(&file, root)],
            }),
            signal_quality: None,
        };
        let s = Session {
            report: None,
            dir,
            meta,
            recorder: name,
            file,
            shared: None,
            live: false,
            recorder_info: None,
            bids,
        };
        Ok((s, reg, params))
    }

    /// Connects the session to the pipeline that runs its recorder (after `Pipeline::start`).
    pub fn attach(&mut self, shared: Arc<Shared>) {
        self.shared = Some(shared);
    }

    /// The recorder stage's name in the pipeline.
    pub fn recorder(&self) -> &str {
        &self.recorder
    }

    /// The session folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// Puts a marker into the recording at the time of the call.
    pub fn add_marker(&mut self, text: &str) -> Result<MarkerOutcome, MarkerRefused> {
        self.add_marker_at(now_ns(), text)
    }

    /// Puts a marker into the recording at `timestamp_ns` (ns since the UNIX epoch), or refuses
    /// it: a marker before the recording's first sample or more than [`MAX_AHEAD_NS`] ahead of
    /// now is not in the recording, and is never moved into it. Right after the session starts,
    /// waits (at most 2 s) for the first sample, which says where the recording begins.
    ///
    /// A marker placed is written to `session_meta.json` at once (a kill loses none).
    pub fn add_marker_at(&mut self, timestamp_ns: i64, text: &str) -> Result<MarkerOutcome, MarkerRefused> {
        let now = now_ns();
        if timestamp_ns > now.saturating_add(MAX_AHEAD_NS) {
            return Err(MarkerRefused::TooFarAhead { ts: timestamp_ns, now });
        }
        let recording = self.refresh();
        if recording {
            let first = self.first_sample(FIRST_SAMPLE_WAIT).unwrap_or(self.meta.start_ns);
            let half = (0.5e9 / self.meta.rate.max(1e-9)) as i64;
            if timestamp_ns < first - half {
                return Err(MarkerRefused::BeforeStart { ts: timestamp_ns, first });
            }
            MarkerHub::global().post(Marker::new(timestamp_ns, text));
        }
        let e = MarkerEntry { timestamp_ns, time: rfc3339(timestamp_ns), text: text.to_string() };
        self.meta.markers.push(e.clone());
        if let Err(err) = self.write_meta() {
            tracing::error!(error = %err, "The session's metadata could not be written");
        }
        Ok(MarkerOutcome { entry: e, recorded: recording })
    }

    /// The recording's first sample time, waiting up to `wait` for it.
    fn first_sample(&self, wait: std::time::Duration) -> Option<i64> {
        let report = self.report.as_ref()?;
        let until = std::time::Instant::now() + wait;
        loop {
            if let Some(t) = report.first_sample_ns() {
                return Some(t);
            }
            if std::time::Instant::now() >= until || self.recorder_ended() {
                return None;
            }
            // A control-plane wait of a few ms, once per session: the first packet is one
            // batch away.
            std::thread::park_timeout(std::time::Duration::from_millis(2));
        }
    }

    /// True once the recorder stage no longer runs.
    fn recorder_ended(&self) -> bool {
        self.shared
            .as_ref()
            .and_then(|s| s.stage(&self.recorder))
            .is_some_and(|st| st.stats.state() != StageState::Running)
    }

    /// Brings the session's status up to date with its recorder: if the recorder stopped on an
    /// error while the session records (a full disk), the session is `failed` from now on, with
    /// the error, and its meta says so at once. Returns whether it still records.
    pub fn refresh(&mut self) -> bool {
        if self.meta.status != "recording" {
            return false;
        }
        let Some(st) = self.shared.as_ref().and_then(|s| s.stage(&self.recorder)) else { return true };
        let state = st.stats.state();
        if matches!(state, StageState::Stopped | StageState::Failed) {
            let error = st.stats.last_error().unwrap_or_else(|| "the recorder stopped".into());
            tracing::error!(dir = %self.dir.display(), error = %error, "The recording failed");
            self.meta.status = "failed".into();
            self.meta.error = Some(error);
            self.collect();
            if let Err(e) = self.write_meta() {
                tracing::error!(error = %e, "The session's metadata could not be written");
            }
            return false;
        }
        true
    }

    pub fn status(&mut self) -> SessionStatus {
        self.refresh();
        SessionStatus {
            dir: self.dir.clone(),
            status: self.meta.status.clone(),
            error: self.meta.error.clone(),
            samples_written: self.report.as_ref().map_or(0, |r| r.samples.load(Ordering::Relaxed)),
            markers: self.meta.markers.len(),
            recorder_state: self
                .shared
                .as_ref()
                .and_then(|s| s.stage(&self.recorder))
                .map(|s| state_name(s.stats.state()).to_string()),
        }
    }

    /// Samples of each channel in the data file so far.
    pub fn samples_written(&self) -> u64 {
        self.report.as_ref().map_or(self.meta.samples_written, |r| r.samples.load(Ordering::Relaxed))
    }

    /// The recorder's counters into the meta.
    fn collect(&mut self) {
        if let Some(r) = &self.report {
            self.meta.samples_written = r.samples.load(Ordering::Relaxed);
            self.meta.samples_unwritten = r.samples_unwritten.load(Ordering::Relaxed);
            self.meta.first_sample_ns = r.first_sample_ns();
            self.meta.gaps = r.gaps.load(Ordering::Relaxed);
            self.meta.samples_dropped_upstream = r.gap_samples.load(Ordering::Relaxed);
            self.meta.samples_clipped = r.clipped.load(Ordering::Relaxed);
            self.meta.markers_dropped = r.markers_dropped.load(Ordering::Relaxed);
        }
    }

    /// Closes the session once the pipeline has stopped (joined): collects the counters and
    /// writes the final `session_meta.json`.
    pub fn finish(self) -> Result<SessionMeta, SessionError> {
        let (meta, written) = self.finish_keeping_meta();
        written.map(|()| meta)
    }

    /// [`Session::finish`], returning the final meta even when it could not be written (a full
    /// disk), with the write's outcome beside it.
    pub fn finish_keeping_meta(mut self) -> (SessionMeta, Result<(), SessionError>) {
        let stop = now_ns();
        self.meta.stop_ns = Some(stop);
        self.meta.stop_time = Some(rfc3339(stop));
        self.collect();
        let closed = self.report.as_ref().is_some_and(|r| r.closed.load(Ordering::Acquire));
        let mut failed = !closed;
        if let Some(shared) = &self.shared {
            if let Some(info) = shared.stage(&self.recorder) {
                self.meta.packets_dropped_upstream = dropped_upstream(shared, &self.recorder);
                self.recorder_info = Some(info);
            }
            if let Some(st) = &self.recorder_info {
                let state = st.stats.state();
                let error = st.stats.last_error();
                failed |= matches!(state, StageState::Stopped | StageState::Failed);
                if failed && self.meta.error.is_none() {
                    self.meta.error = error.clone().or_else(|| Some("the file was not closed".into()));
                }
                self.meta.recorder = Some(SinkOutcome {
                    stage: self.recorder.clone(),
                    state: state_name(state).into(),
                    error,
                    closed,
                });
            }
            self.meta.other_sinks = shared
                .stages()
                .iter()
                .filter(|s| s.name != self.recorder && lookup(s.type_name).is_some_and(|r| r.records))
                .map(|s| SinkOutcome {
                    stage: s.name.clone(),
                    state: state_name(s.stats.state()).into(),
                    error: s.stats.last_error(),
                    closed: false,
                })
                .map(|mut o| {
                    o.closed = o.state == "finished" && o.error.is_none();
                    o
                })
                .collect();
        } else if failed && self.meta.error.is_none() {
            self.meta.error = Some("the file was not closed".into());
        }
        self.meta.status = if failed { "failed" } else { "complete" }.into();
        if let (Some((run, acq, root)), Some(info)) = (&self.bids, self.meta.bids.as_mut()) {
            // The sidecars describe the file as written, so they follow it even when the
            // recording failed part-way (the data up to the failure is valid).
            let statuses = match &self.meta.signal_quality {
                Some(q) => crate::bids::statuses_from_quality(q, &self.meta.labels),
                None => Vec::new(),
            };
            match run.finish(acq, &statuses) {
                Ok(files) => info.files = files.iter().map(|f| relative(f, root)).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "The BIDS sidecars could not be written");
                    self.meta.status = "failed".into();
                    self.meta
                        .error
                        .get_or_insert_with(|| format!("the BIDS sidecars could not be written: {e}"));
                }
            }
        }
        if self.meta.samples_dropped_upstream > 0 || self.meta.packets_dropped_upstream > 0 {
            tracing::error!(
                samples = self.meta.samples_dropped_upstream,
                packets = self.meta.packets_dropped_upstream,
                "The recording misses data dropped upstream"
            );
        }
        let written = self.write_meta();
        tracing::info!(dir = %self.dir.display(), status = %self.meta.status, samples = self.meta.samples_written, "Recording session closed");
        (self.meta, written)
    }

    /// Closes a session whose pipeline never ran (it failed to start): status `failed`, with
    /// the reason as the recorder's error.
    pub fn abandon(mut self, reason: &str) -> Result<SessionMeta, SessionError> {
        let stop = now_ns();
        self.meta.stop_ns = Some(stop);
        self.meta.stop_time = Some(rfc3339(stop));
        self.meta.status = "failed".into();
        self.meta.error = Some(reason.to_string());
        self.meta.recorder = Some(SinkOutcome {
            stage: self.recorder.clone(),
            state: "failed".into(),
            error: Some(reason.to_string()),
            closed: false,
        });
        self.write_meta()?;
        Ok(self.meta)
    }

    /// Keeps the channels' signal quality at the start in `session_meta.json`.
    pub fn set_signal_quality(&mut self, quality: serde_json::Value) -> Result<(), SessionError> {
        self.meta.signal_quality = Some(quality);
        self.write_meta()
    }

    fn write_meta(&self) -> Result<(), SessionError> {
        let path = self.dir.join(META_FILE);
        let tmp = self.dir.join(format!("{META_FILE}.tmp"));
        let text = serde_json::to_string_pretty(&self.meta).unwrap_or_default();
        std::fs::write(&tmp, text + "\n").map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("writing", &path))
    }
}

/// `path` relative to `root`, with `/` separators, for listing.
fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// The sessions under `data_dir` (for `GET /api/recordings`): each folder with a readable
/// `session_meta.json`, oldest first, those of format `bids` (in the dataset's
/// `sourcedata/eegd/`) included. Folders without one are skipped.
pub fn list(data_dir: &Path) -> Result<Vec<(PathBuf, SessionMeta)>, SessionError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading the data directory", data_dir)(e)),
    };
    let bids = std::fs::read_dir(data_dir.join(crate::bids::BIDS_DIR).join("sourcedata").join("eegd"));
    let mut out: Vec<(PathBuf, SessionMeta)> = entries
        .flatten()
        .chain(bids.into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter_map(|dir| {
            let text = std::fs::read_to_string(dir.join(META_FILE)).ok()?;
            serde_json::from_str(&text).ok().map(|m| (dir, m))
        })
        .collect();
    out.sort_by_key(|(_, m)| m.start_ns);
    Ok(out)
}

/// Marks every session under `data_dir` that still says `recording` as `interrupted`: the
/// process that recorded it died without closing it (run at daemon start-up, before any new
/// session). Its `samples_written` is read back from the data file (every complete BDF/EDF
/// record, every CSV row), which readers open as it is. Returns the folders it marked.
pub fn recover(data_dir: &Path) -> Result<Vec<PathBuf>, SessionError> {
    let mut marked = Vec::new();
    for (dir, mut meta) in list(data_dir)? {
        if meta.status != "recording" {
            continue;
        }
        meta.status = "interrupted".into();
        meta.error = Some("the process stopped while it recorded (found at start-up)".into());
        // A BIDS run's data file is in the dataset, relative to the data directory it was
        // recorded in (`<it>/bids/sourcedata/eegd/<run>` is `dir`).
        let data = match &meta.bids {
            Some(b) => dir.ancestors().nth(4).zip(b.files.first()).map(|(d, f)| d.join(f)),
            None => meta.files.first().map(|f| dir.join(f)),
        };
        if let Some(n) = data.and_then(|f| samples_in(&f)) {
            meta.samples_written = n;
        }
        let s = Session {
            dir: dir.clone(),
            meta,
            recorder: String::new(),
            file: PathBuf::new(),
            shared: None,
            report: None,
            live: false,
            recorder_info: None,
            bids: None,
        };
        s.write_meta()?;
        tracing::warn!(dir = %dir.display(), "Session left recording by a stopped process: marked interrupted");
        marked.push(dir);
    }
    Ok(marked)
}

/// Samples of each channel a data file holds, read back as a reader would.
fn samples_in(path: &Path) -> Option<u64> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("bdf" | "edf") => {
            let r = formats::edf::Reader::open(std::io::BufReader::new(file)).ok()?;
            let h = r.header();
            let spr = h.data_signals().first().map_or(0, |&k| h.signals[k].samples_per_record);
            Some(h.records * spr as u64)
        }
        Some("csv") => {
            let lines = std::io::BufReader::new(file).lines().map_while(Result::ok);
            Some(lines.filter(|l| !l.trim().is_empty()).count().saturating_sub(1) as u64)
        }
        _ => None,
    }
}

/// Packets dropped by every stage and queue that feeds `stage` (transitively), and by `stage`
/// itself while it still took packets.
fn dropped_upstream(shared: &Shared, stage: &str) -> u64 {
    let stages = shared.stages();
    let Some(me) = stages.iter().position(|s| s.name == stage) else { return 0 };
    let mut feeds = vec![false; stages.len()];
    let mut todo = stages[me].inputs.clone();
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut feeds[i], true) {
            todo.extend(stages[i].inputs.iter().copied());
        }
    }
    let names: Vec<&str> =
        feeds.iter().enumerate().filter(|(_, &f)| f).map(|(i, _)| stages[i].name.as_str()).collect();
    let stage_drops: u64 = stages
        .iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .map(|s| s.stats.drops.load(Ordering::Relaxed))
        .sum();
    let edge_drops: u64 = shared
        .edge_snapshots()
        .iter()
        .filter(|e| e.to == stage || names.contains(&e.to.as_str()))
        .map(|e| e.dropped)
        .sum();
    stage_drops + edge_drops
}
