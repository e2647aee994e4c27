//! The pipeline's lifecycle as the daemon drives it: start (validate first), stop (drain),
//! replace, restart with live changes kept, live parameter changes, and recording sessions.
//!
//! Every method blocks (a stop drains the pipeline; a parameter change waits for the stage's
//! thread), so the HTTP handlers call them on tokio's blocking pool, or, when the call may
//! start a pipeline, on the daemon's launcher thread (whose priority and CPUs the pipeline's
//! threads inherit). One mutex orders them: a change of pipeline never races a parameter
//! change or a recording start.
use super::cpus::ServerCpus;
use super::edits::{edit_error, StageEdit};
use super::error::{ApiError, ApiResult};
use super::session::{SessionRequest, SessionStore};
use pipeline::edit::{Applied, EditError};
use pipeline::exec::{Pipeline, PipelineState, Shared, Topology};
use pipeline::stage::Role;
use pipeline::topology::file::{parse_file, RecordingConfig, RecordingFormat, StageDecl};
use pipeline::topology::graph::{plan, Plan};
use pipeline::topology::{yaml, Diagnostic, Diagnostics};
use recording::{Session, SessionError, SessionOptions};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How long a parameter change may wait for its stage's thread.
const PATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest marker label, in characters.
const MAX_LABEL: usize = 256;
/// Stage keys that are not parameters (docs/pipeline.md, "Reserved keys").
const RESERVED: [&str; 5] = ["name", "inputs", "group", "on_error", "queue"];

/// A pipeline file the daemon runs: its name, its text, and the stages changed live since.
#[derive(Clone)]
struct Config {
    name: String,
    source: String,
    /// Full parameters of each stage changed live, by stage name.
    overrides: BTreeMap<String, Value>,
}

struct Recording {
    session: Session,
}

#[derive(Default)]
struct Inner {
    config: Option<Config>,
    pipeline: Option<Pipeline>,
    /// The last started pipeline's counters, kept after it stops.
    shared: Option<Arc<Shared>>,
    /// Current parameters of every running stage.
    params: BTreeMap<String, Value>,
    recording_cfg: RecordingConfig,
    recording: Option<Recording>,
    /// Why the last start failed after validation (a device or file would not open).
    start_error: Option<String>,
}

/// The daemon's pipeline, its live parameters and its recording.
pub struct Controller {
    inner: Mutex<Inner>,
    pub sessions: SessionStore,
    events: broadcast::Sender<String>,
    pub cpu: CpuMeter,
    /// Told which CPUs each pipeline pins, so the server keeps off them.
    server_cpus: Arc<ServerCpus>,
}

/// The process's CPU use (user + system, all threads) as a percentage of one core, over the
/// interval between two readings (at least a second, so a busy poller cannot make it noisy).
pub struct CpuMeter {
    last: Mutex<(std::time::Instant, f64, f64)>,
}

impl Default for CpuMeter {
    fn default() -> CpuMeter {
        CpuMeter { last: Mutex::new((std::time::Instant::now(), process_cpu_seconds(), 0.0)) }
    }
}

/// User + system CPU time of the whole process, seconds.
pub fn process_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let (a, b) = (u.user_time(), u.system_time());
            a.tv_sec() as f64 + a.tv_usec() as f64 * 1e-6 + b.tv_sec() as f64 + b.tv_usec() as f64 * 1e-6
        })
        .unwrap_or(0.0)
}

impl CpuMeter {
    pub fn percent(&self) -> f64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (now, cpu) = (std::time::Instant::now(), process_cpu_seconds());
        let wall = now.duration_since(last.0).as_secs_f64();
        if wall >= 1.0 {
            let pct = (cpu - last.1) / wall * 100.0;
            *last = (now, cpu, (pct * 10.0).round() / 10.0);
        }
        last.2
    }
}

/// Renders stages as YAML flow maps in JSON syntax (JSON is YAML 1.2), so the text loads back
/// with the same parser and diagnostics as any pipeline file.
fn render(root: &Value) -> String {
    let mut out = String::from("stages:\n");
    for st in root["stages"].as_array().into_iter().flatten() {
        if let Some((ty, body)) = st.as_object().and_then(|m| m.iter().next()) {
            out.push_str(&format!("  - {ty}: {body}\n"));
        }
    }
    for key in ["runtime", "recording"] {
        if let Some(v) = root.get(key).filter(|v| !v.is_null()) {
            out.push_str(&format!("{key}: {v}\n"));
        }
    }
    out
}

/// The config's text with live changes applied and `extra` stages appended. Without either, the
/// text as given, byte for byte.
fn effective(cfg: &Config, extra: &[Value]) -> Result<String, ApiError> {
    if cfg.overrides.is_empty() && extra.is_empty() {
        return Ok(cfg.source.clone());
    }
    let node = yaml::parse(&cfg.source).map_err(|d| ApiError::Internal(anyhow::anyhow!("reparsing: {d}")))?;
    let mut root = node.to_json();
    if let Some(stages) = root.get_mut("stages").and_then(|s| s.as_array_mut()) {
        for st in stages.iter_mut() {
            let Some((ty, body)) = st.as_object_mut().and_then(|m| m.iter_mut().next()) else { continue };
            if !body.is_object() {
                *body = Value::Object(Map::new());
            }
            let name = body.get("name").and_then(|n| n.as_str()).unwrap_or(ty).to_string();
            if let (Some(new), Some(b)) = (cfg.overrides.get(&name), body.as_object_mut()) {
                b.retain(|k, _| RESERVED.contains(&k.as_str()));
                if let Some(p) = new.as_object() {
                    b.extend(p.clone());
                }
            }
        }
        stages.extend(extra.iter().cloned());
    }
    Ok(render(&root))
}

/// Makes every sink's `path` parameter lie inside the data directory `root` under the rules of
/// `stages::files::confine_write` (relative, no `..`, an existing folder that resolves inside,
/// never into a session, never through a symlink); anything else is refused at its line and
/// column. Sources' paths are left as written: `file_source` resolves them inside the data
/// directory itself, before opening (`stages::files::confine_to`).
/// Returns the text to run: the text as given when it names no sink path.
fn confine_paths(name: &str, source: &str, root: &Path) -> Result<String, ApiError> {
    let Ok(node) = yaml::parse(source) else { return Ok(source.to_string()) };
    let mut tree = node.to_json();
    let (mut diags, mut changed) = (Vec::new(), false);
    for (i, item) in node.get("stages").and_then(|s| s.as_seq()).unwrap_or_default().iter().enumerate() {
        let Some((ty, body)) = item.as_map().and_then(|m| m.first()) else { continue };
        let (Some(ty), Some(p)) = (ty.as_str(), body.get("path")) else { continue };
        let Some(text) = p.as_str() else { continue };
        if pipeline::stage::lookup(ty).is_some_and(|r| r.role == pipeline::Role::Source) {
            continue;
        }
        match stages::files::confine_write(root, Path::new(text)) {
            Ok(full) => {
                tree["stages"][i][ty]["path"] = json!(full);
                changed = true;
            }
            Err(e) => diags.push(Diagnostic::at(p.span, format!("`path`: {e}"))),
        }
    }
    if !diags.is_empty() {
        return Err(ApiError::InvalidPipeline(Diagnostics::new(name, diags)));
    }
    Ok(if changed { render(&tree) } else { source.to_string() })
}

/// One step of applying a file live.
pub(super) enum LiveStep {
    Edit(StageEdit),
    Params { stage: String, params: Value },
}

fn apply_edit(shared: &Arc<Shared>, e: &StageEdit) -> Result<Applied, EditError> {
    match e {
        StageEdit::Add(d) => shared.add_stage(d),
        StageEdit::Remove { name, cascade } => shared.remove_stage(name, *cascade),
        StageEdit::Replace { name, with } => shared.replace_stage(name, with),
    }
}

/// A stage item's name: its `name`, else its type.
fn item_name(item: &Value) -> Option<&str> {
    let (ty, body) = item.as_object()?.iter().next()?;
    Some(body.get("name").and_then(|n| n.as_str()).unwrap_or(ty))
}

/// Rewrites the running configuration's stage list (live parameter changes folded in).
fn edit_config(inner: &mut Inner, f: impl FnOnce(&mut Vec<Value>)) {
    let Some(cfg) = inner.config.as_mut() else { return };
    let Ok(text) = effective(cfg, &[]) else { return };
    let Ok(node) = yaml::parse(&text) else { return };
    let mut root = node.to_json();
    if let Some(stages) = root.get_mut("stages").and_then(|s| s.as_array_mut()) {
        f(stages);
    }
    cfg.source = render(&root);
    cfg.overrides.clear();
}

/// The section `key` of a pipeline file, as JSON (null when absent or unreadable).
fn section(text: &str, key: &str) -> Value {
    yaml::parse(text).ok().and_then(|n| n.get(key).map(|v| v.to_json())).unwrap_or(Value::Null)
}

/// The edits that turn the running graph into `new`, or `None` when that needs a restart:
/// a source added, removed or changed, or a different `runtime`. A stage whose inputs or
/// group changed is removed and added again, with everything downstream of it; one whose type
/// changed is replaced; one whose parameters changed gets them live. Stages in `keep` (a
/// session's recorder) are not the file's and stay.
fn live_diff(
    old: &Topology,
    params: &BTreeMap<String, Value>,
    old_text: &str,
    new_text: &str,
    new: &Plan,
    keep: &[String],
) -> Option<Vec<LiveStep>> {
    if section(old_text, "runtime") != section(new_text, "runtime") {
        return None;
    }
    let old_sources: Vec<(&str, &str, Value)> = old
        .iter()
        .filter(|s| s.role == Role::Source)
        .map(|s| (s.name.as_str(), s.type_name, params.get(&s.name).cloned().unwrap_or_default()))
        .collect();
    let new_sources: Vec<(&str, &str, Value)> = new
        .stages
        .iter()
        .filter(|s| s.role == Role::Source)
        .map(|s| (s.name.as_str(), s.type_name, s.stage.params_json()))
        .collect();
    if old_sources != new_sources {
        return None;
    }
    let (parsed, _) = parse_file(new_text);
    let decls = parsed?.stages;
    let decl_of = |name: &str| -> Option<StageDecl> {
        let d = decls.iter().find(|d| d.name == name)?.clone();
        let k = new.index_of(name)?;
        let inputs =
            new.stages[k].inputs.iter().map(|&j| (new.stages[j].name.clone(), d.type_span)).collect();
        Some(StageDecl { inputs: Some(inputs), ..d })
    };
    let new_inputs = |k: usize| -> Vec<&str> {
        new.stages[k].inputs.iter().map(|&j| new.stages[j].name.as_str()).collect()
    };
    let mut gone = vec![false; old.len()];
    let mut changes = Vec::new();
    for (i, o) in old.iter().enumerate() {
        if keep.contains(&o.name) {
            continue;
        }
        let Some(k) = new.index_of(&o.name) else {
            gone[i] = true;
            continue;
        };
        let n = &new.stages[k];
        let old_inputs: Vec<&str> = o.inputs.iter().map(|&j| old[j].name.as_str()).collect();
        if old_inputs != new_inputs(k) || o.group != n.group || o.role != n.role {
            gone[i] = true;
        } else if o.type_name != n.type_name {
            changes
                .push(LiveStep::Edit(StageEdit::Replace { name: o.name.clone(), with: decl_of(&o.name)? }));
        } else if params.get(&o.name) != Some(&n.stage.params_json()) {
            changes.push(LiveStep::Params { stage: o.name.clone(), params: n.stage.params_json() });
        }
    }
    // What a removed stage feeds goes with it (and comes back if the file still has it).
    for i in 0..old.len() {
        if gone[i] {
            for k in old.downstream(i) {
                gone[k] = true;
            }
        }
    }
    let mut steps: Vec<LiveStep> = (0..old.len())
        .filter(|&i| gone[i] && !old[i].inputs.iter().any(|&j| gone[j]))
        .map(|i| LiveStep::Edit(StageEdit::Remove { name: old[i].name.clone(), cascade: true }))
        .collect();
    steps.extend(changes.into_iter().filter(|c| match c {
        LiveStep::Edit(StageEdit::Replace { name, .. }) | LiveStep::Params { stage: name, .. } => {
            old.index_of(name).is_some_and(|i| !gone[i])
        }
        _ => true,
    }));
    for s in &new.stages {
        let kept = old.index_of(&s.name).is_some_and(|i| !gone[i]);
        if !kept {
            steps.push(LiveStep::Edit(StageEdit::Add(decl_of(&s.name)?)));
        }
    }
    Some(steps)
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Controller {
    pub fn new(sessions: SessionStore, server_cpus: Arc<ServerCpus>) -> Controller {
        Controller {
            inner: Mutex::new(Inner::default()),
            sessions,
            events: broadcast::channel(256).0,
            cpu: CpuMeter::default(),
            server_cpus,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes pushed to every `/ws/control` client.
    pub fn events(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    pub(super) fn push(&self, event: Value) {
        let _ = self.events.send(event.to_string());
    }

    /// Validates `source` and, if valid, runs it. When a pipeline runs and `source` has the
    /// same sources (and `runtime`), the difference is applied as live edits (`"applied":
    /// "live"`, with the list of edits); otherwise whatever runs is replaced (`"applied":
    /// "restart"`). An invalid file changes nothing. Stages' `path`s are taken inside the data
    /// directory.
    pub fn start(&self, name: &str, source: &str) -> ApiResult<Value> {
        let p = plan(name, source).map_err(ApiError::InvalidPipeline)?;
        let text = confine_paths(name, source, self.sessions.root())?;
        let p = if text == source { p } else { plan(name, &text).map_err(ApiError::InvalidPipeline)? };
        super::lsl::check_liblsl(&p).map_err(ApiError::BadRequest)?;
        let mut inner = self.lock();
        if let Some(shared) = Self::running(&inner).cloned() {
            let old = inner.config.as_ref().map(|c| c.source.clone()).unwrap_or_default();
            let keep: Vec<String> =
                inner.recording.iter().map(|r| r.session.recorder().to_string()).collect();
            if let Some(steps) = live_diff(&shared.stages(), &inner.params, &old, &text, &p, &keep) {
                return self.apply_live(&mut inner, &shared, steps, name, text, p);
            }
        }
        if inner.recording.is_some() {
            return Err(ApiError::Conflict(
                "a recording is running; stop it before changing the pipeline's sources".into(),
            ));
        }
        let cfg = Config { name: name.to_string(), source: text, overrides: BTreeMap::new() };
        self.replace(&mut inner, cfg, p)?;
        let mut s = self.summary(&inner);
        self.push(json!({ "event": "state", "pipeline": s }));
        s["applied"] = json!("restart");
        Ok(s)
    }

    /// Applies the steps of a live diff, in order (removals, replacements and parameter
    /// changes, additions). A step that fails stops there, with what was applied before it
    /// kept and reported in the events.
    fn apply_live(
        &self,
        inner: &mut Inner,
        shared: &Arc<Shared>,
        steps: Vec<LiveStep>,
        name: &str,
        text: String,
        p: Plan,
    ) -> ApiResult<Value> {
        let mut done = Vec::new();
        for step in steps {
            let applied = match step {
                LiveStep::Edit(e) => {
                    let a = apply_edit(shared, &e).map_err(edit_error)?;
                    self.note_edit(inner, &a, Some(&e));
                    serde_json::to_value(&a).unwrap_or_default()
                }
                LiveStep::Params { stage, params } => {
                    let params = shared.patch_stage(&stage, params, PATCH_TIMEOUT)?;
                    inner.params.insert(stage.clone(), params.clone());
                    json!({ "op": "params", "stage": stage, "params": params })
                }
            };
            self.push(json!({ "event": "edit", "edit": applied }));
            done.push(applied);
        }
        inner.params = p.stages.iter().map(|s| (s.name.clone(), s.stage.params_json())).collect();
        inner.recording_cfg = p.recording.clone();
        inner.config = Some(Config { name: name.to_string(), source: text, overrides: BTreeMap::new() });
        tracing::info!(edits = done.len(), "Pipeline file applied live");
        let s = self.summary(inner);
        self.push(json!({ "event": "state", "pipeline": s }));
        let mut out = s;
        out["applied"] = json!("live");
        out["edits"] = json!(done);
        Ok(out)
    }

    /// A live edit of the running pipeline (`POST /api/pipeline/stages`).
    pub(super) fn edit(&self, edit: StageEdit) -> ApiResult<Value> {
        let mut inner = self.lock();
        let shared = Self::running(&inner)
            .cloned()
            .ok_or_else(|| ApiError::Conflict("no pipeline is running; start one first".into()))?;
        let applied = apply_edit(&shared, &edit).map_err(edit_error)?;
        self.note_edit(&mut inner, &applied, Some(&edit));
        let s = self.summary(&inner);
        self.push(json!({ "event": "edit", "edit": applied, "pipeline": s }));
        Ok(json!({ "applied": "live", "edits": [applied], "pipeline": s }))
    }

    /// Keeps the parameters and the configuration's text in step with an applied edit, so
    /// `GET /api/pipeline`, a restart and a session's `pipeline.yaml` show the graph as it runs.
    fn note_edit(&self, inner: &mut Inner, applied: &Applied, edit: Option<&StageEdit>) {
        let group = match edit {
            Some(StageEdit::Add(d)) => d.group.clone(),
            _ => None,
        };
        match applied {
            Applied::Add { stage, type_name, inputs, params, .. } => {
                inner.params.insert(stage.clone(), params.clone());
                let mut body = params.as_object().cloned().unwrap_or_default();
                body.insert("name".into(), json!(stage));
                body.insert("inputs".into(), json!(inputs));
                if let Some(g) = group {
                    body.insert("group".into(), json!(g));
                }
                let item = json!({ type_name.as_str(): body });
                edit_config(inner, |stages| stages.push(item));
            }
            Applied::Remove { removed, .. } => {
                for n in removed {
                    inner.params.remove(n);
                }
                edit_config(inner, |stages| {
                    stages.retain(|it| !removed.iter().any(|n| Some(n.as_str()) == item_name(it)))
                });
            }
            Applied::Replace { stage, type_name, params } => {
                inner.params.insert(stage.clone(), params.clone());
                edit_config(inner, |stages| {
                    for it in stages.iter_mut().filter(|it| item_name(it) == Some(stage.as_str())) {
                        let mut body = it
                            .as_object()
                            .and_then(|m| m.values().next())
                            .and_then(|b| b.as_object())
                            .cloned()
                            .unwrap_or_default();
                        body.retain(|k, _| RESERVED.contains(&k.as_str()));
                        body.insert("name".into(), json!(stage));
                        body.extend(params.as_object().cloned().unwrap_or_default());
                        *it = json!({ type_name.as_str(): body });
                    }
                });
            }
        }
    }

    /// Starts the current pipeline again, with its live parameter changes.
    pub fn restart(&self) -> ApiResult<Value> {
        let mut inner = self.lock();
        if inner.recording.is_some() {
            return Err(ApiError::Conflict("a recording is running; stop it before restarting".into()));
        }
        let cfg =
            inner.config.clone().ok_or_else(|| ApiError::Conflict("no pipeline has been started".into()))?;
        let src = effective(&cfg, &[])?;
        let p = plan(&cfg.name, &src).map_err(ApiError::InvalidPipeline)?;
        self.replace(&mut inner, cfg, p)?;
        let s = self.summary(&inner);
        self.push(json!({ "event": "state", "pipeline": s }));
        Ok(s)
    }

    /// Stops the running pipeline, draining it; a recording is closed first.
    pub fn stop(&self) -> ApiResult<Value> {
        let mut inner = self.lock();
        let rec = self.close_recording(&mut inner);
        if let Some(p) = inner.pipeline.take() {
            let state = p.join();
            tracing::info!(?state, "Pipeline stopped");
        }
        self.server_cpus.avoid(&[]);
        let s = self.summary(&inner);
        self.push(json!({ "event": "state", "pipeline": s }));
        if let Some(r) = rec {
            self.push(json!({ "event": "recording", "recording": null, "closed": r }));
        }
        Ok(s)
    }

    /// Stops everything before the process exits.
    pub fn shutdown(&self) {
        let _ = self.stop();
    }

    fn replace(&self, inner: &mut Inner, cfg: Config, p: Plan) -> ApiResult<()> {
        if let Some(old) = inner.pipeline.take() {
            old.join();
        }
        inner.params = p.stages.iter().map(|s| (s.name.clone(), s.stage.params_json())).collect();
        inner.recording_cfg = p.recording.clone();
        inner.config = Some(cfg);
        let pinned: Vec<usize> = p.runtime.groups.values().filter_map(|g| g.cpu).collect();
        self.server_cpus.avoid(&pinned);
        match Pipeline::start(p) {
            Ok(pl) => {
                inner.shared = Some(pl.shared().clone());
                inner.pipeline = Some(pl);
                inner.start_error = None;
                tracing::info!("Pipeline running");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "Pipeline did not start");
                self.server_cpus.avoid(&[]);
                inner.shared = None;
                inner.start_error = Some(e.to_string());
                Err(ApiError::BadRequest(format!("the pipeline did not start: {e}")))
            }
        }
    }

    fn running(inner: &Inner) -> Option<&Arc<Shared>> {
        inner
            .pipeline
            .as_ref()
            .map(|p| p.shared())
            .filter(|s| s.state() == PipelineState::Running && !s.is_finished())
    }

    /// `running` / `stopped` / `failed` and the reason.
    fn state(inner: &Inner) -> (&'static str, Option<String>) {
        if let Some(e) = &inner.start_error {
            return ("failed", Some(e.clone()));
        }
        match inner.shared.as_ref().map(|s| (s.state(), s.is_finished())) {
            Some((PipelineState::Failed(r), _)) => ("failed", Some(r)),
            Some((PipelineState::Running, false)) if inner.pipeline.is_some() => ("running", None),
            _ => ("stopped", None),
        }
    }

    /// True while a pipeline runs (the `state` of `GET /api/pipeline` is `running`).
    pub fn is_running(&self) -> bool {
        Self::state(&self.lock()).0 == "running"
    }

    /// What `GET /api/pipeline` shows.
    pub fn pipeline(&self) -> Value {
        let mut inner = self.lock();
        self.refresh_recording(&mut inner);
        self.summary(&inner)
    }

    fn summary(&self, inner: &Inner) -> Value {
        let (state, error) = Self::state(inner);
        let config = inner.config.as_ref().map(|c| {
            let text = effective(c, &[]).unwrap_or_else(|_| c.source.clone());
            json!({
                "name": c.name,
                "source": text,
                "tree": yaml::parse(&text).map(|n| n.to_json()).unwrap_or(Value::Null),
                "overrides": c.overrides,
            })
        });
        let stages: Vec<Value> = inner
            .shared
            .as_ref()
            .map(|sh| {
                let topo = sh.stages();
                topo.iter()
                    .zip(topo.snapshots())
                    .enumerate()
                    .map(|(i, (info, snap))| {
                        let out = info.output.as_ref().map(|o| {
                            json!({
                                "kind": o.kind,
                                "rate": o.rate,
                                "channels": o.channels,
                                "labels": o.meta.labels,
                                "units": o.meta.units,
                                "axis": o.meta.axis,
                                "bands": o.meta.bands,
                            })
                        });
                        let by = topo.locked_by(i);
                        json!({
                            "name": info.name,
                            "type": info.type_name,
                            "role": info.role,
                            "group": info.group,
                            "inputs": info.inputs.iter().map(|&j| &topo[j].name).collect::<Vec<_>>(),
                            "params": inner.params.get(&info.name),
                            "locked": by.is_some(),
                            "locked_by": by,
                            "state": snap.state,
                            "packets": if info.role == Role::Source { snap.packets_out } else { snap.packets_in },
                            "packets_in": snap.packets_in,
                            "packets_out": snap.packets_out,
                            "drops": snap.drops,
                            "errors": snap.errors,
                            "overruns": snap.overruns,
                            "drift_ppm": snap.drift_ppm,
                            "last_error": snap.last_error,
                            "process_us": snap.process_us,
                            "latency_us": (info.role == Role::Sink).then(|| {
                                let mut l = info.stats.latency_ns.percentiles();
                                for v in [&mut l.p50, &mut l.p99, &mut l.p999, &mut l.max] {
                                    *v /= 1000;
                                }
                                l.mean /= 1000.0;
                                l
                            }),
                            "output": out,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let edges = inner.shared.as_ref().map(|s| s.edge_snapshots()).unwrap_or_default();
        let pool = inner.shared.as_ref().map(|s| s.pool_stats());
        json!({
            "state": state,
            "error": error,
            "cpu_percent": self.cpu.percent(),
            "config": config,
            "stages": stages,
            "edges": edges,
            "pool": pool,
            "recording": inner.recording.as_ref().map(|r| session_summary(&r.session)),
        })
    }

    /// Applies a JSON merge-patch to a running stage's parameters.
    pub fn patch(&self, stage: &str, patch: Value) -> ApiResult<Value> {
        if !patch.is_object() {
            return Err(ApiError::BadRequest("a parameter change is a JSON object (a merge-patch)".into()));
        }
        let mut inner = self.lock();
        let shared = match Self::running(&inner) {
            Some(s) => s.clone(),
            None if inner.shared.as_ref().is_some_and(|s| s.stage(stage).is_some()) => {
                return Err(ApiError::Conflict("the pipeline is not running".into()))
            }
            None => return Err(ApiError::NotFound(format!("no stage `{stage}`"))),
        };
        let params = shared.patch_stage(stage, patch, PATCH_TIMEOUT)?;
        inner.params.insert(stage.to_string(), params.clone());
        if let Some(cfg) = inner.config.as_mut() {
            cfg.overrides.insert(stage.to_string(), params.clone());
        }
        self.push(json!({ "event": "params", "stage": stage, "params": params }));
        Ok(json!({ "stage": stage, "params": params }))
    }

    /// Opens a session (the `recording` library: folder, `pipeline.yaml`, `session_meta.json`,
    /// and a recorder sink on the `recording.input` stage) and attaches its recorder to the
    /// running pipeline as a live edit: the source is not configured again, `seq` goes on,
    /// and the recording starts with the first packet after the request. While it records, the
    /// recorder and everything upstream of it are locked.
    pub fn start_recording(&self, req: SessionRequest) -> ApiResult<Value> {
        let mut inner = self.lock();
        if inner.recording.is_some() {
            return Err(ApiError::Conflict("a recording is already running".into()));
        }
        if Self::running(&inner).is_none() {
            return Err(ApiError::Conflict("no pipeline is running; start one first".into()));
        }
        let cfg = inner.config.clone().ok_or_else(|| ApiError::Conflict("no pipeline is running".into()))?;
        let format = match req.format.as_deref() {
            None => None,
            Some("bdf") => Some(RecordingFormat::Bdf),
            Some("edf") => Some(RecordingFormat::Edf),
            Some("csv") => Some(RecordingFormat::Csv),
            Some("bids") => Some(RecordingFormat::Bids),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unknown format `{other}` (valid: `bdf`, `edf`, `csv`, `bids`)"
                )))
            }
        };
        let dir =
            self.sessions.confine(inner.recording_cfg.data_dir.as_deref()).map_err(ApiError::BadRequest)?;
        let src = effective(&cfg, &[])?;
        let shared = Self::running(&inner)
            .cloned()
            .ok_or_else(|| ApiError::Conflict("no pipeline is running".into()))?;
        let opts = SessionOptions {
            participant: req.participant.unwrap_or_default(),
            notes: req.notes.unwrap_or_default(),
            format,
            task: req.task,
            session: req.session,
            run: req.run,
        };
        // The channels' status as the session starts (before the recorder joins).
        let quality = super::quality::session_record(Some(&*shared));
        // The recorder joins the running pipeline as a live edit: nothing restarts.
        let mut session =
            Session::start_live(&dir, &shared, &inner.recording_cfg, &src, &opts).map_err(session_error)?;
        if let Err(e) = session.set_signal_quality(quality) {
            tracing::warn!(error = %e, "could not keep the signal quality in the session's meta");
        }
        let summary = session_summary(&session);
        tracing::info!(session = %session.dir().display(), "Recording started");
        inner.recording = Some(Recording { session });
        self.push(json!({ "event": "recording", "recording": summary }));
        Ok(summary)
    }

    /// Detaches the recorder as a live edit (it drains and closes its file; the pipeline goes
    /// on) and closes the session. A session whose recorder failed (a full disk) closes the same way:
    /// its final meta is the answer (with `meta_error` if even that could not be written), and
    /// the pipeline goes on.
    pub fn stop_recording(&self) -> ApiResult<Value> {
        let mut inner = self.lock();
        let Some(rec) = inner.recording.take() else {
            return Err(ApiError::Conflict("no recording is running".into()));
        };
        let mut session = rec.session;
        // Detached as a live edit: it drains what is queued for it and closes its file while
        // the pipeline goes on.
        let detached = session.detach();
        let mut summary = finish_session(session);
        if let Err(e) = detached {
            tracing::error!(error = %e, "The recorder could not be detached");
            summary["detach_error"] = json!(e.to_string());
        }
        let s = self.summary(&inner);
        self.push(json!({ "event": "state", "pipeline": s }));
        self.push(json!({ "event": "recording", "recording": null, "closed": summary }));
        Ok(summary)
    }

    /// Closes a running recording's session after the pipeline is stopped (shutdown, stop).
    fn close_recording(&self, inner: &mut Inner) -> Option<Value> {
        let rec = inner.recording.take()?;
        if let Some(p) = inner.pipeline.take() {
            p.join();
        }
        Some(finish_session(rec.session))
    }

    /// Brings the running session's status up to date with its recorder (a recorder that
    /// failed makes the session `failed`, on disk at once); tells control clients when it
    /// changes.
    fn refresh_recording(&self, inner: &mut Inner) {
        let Some(r) = inner.recording.as_mut() else { return };
        let was = r.session.meta().status.clone();
        r.session.refresh();
        if r.session.meta().status != was {
            let s = session_summary(&r.session);
            self.push(json!({ "event": "recording", "recording": s }));
        }
    }

    /// The running session's data file size and whether it still records (false once its
    /// recorder failed), for metrics.
    pub fn recording_state(&self) -> Option<(u64, bool)> {
        let mut inner = self.lock();
        self.refresh_recording(&mut inner);
        inner.recording.as_ref().map(|r| (file_len(r.session.file()), r.session.meta().status == "recording"))
    }

    /// Past sessions under the data directory, newest first.
    pub fn recordings(&self) -> ApiResult<Value> {
        self.refresh_recording(&mut self.lock());
        let mut list = recording::list(self.sessions.root()).map_err(|e| ApiError::Internal(e.into()))?;
        list.reverse();
        let items = list
            .into_iter()
            .map(|(dir, meta)| {
                let mut v = serde_json::to_value(&meta).unwrap_or_default();
                v["session"] = json!(dir.file_name().map(|n| n.to_string_lossy().into_owned()));
                v["path"] = json!(dir.strip_prefix(self.sessions.root()).unwrap_or(&dir));
                v["bytes"] = json!(meta.files.first().map(|f| file_len(&dir.join(f))));
                // A BIDS run's files are relative to the data directory it was recorded in
                // (`<it>/bids/sourcedata/eegd/<run>` is `dir`); list them from the root, as
                // downloads name them.
                if let (Some(b), Some(base)) = (&meta.bids, dir.ancestors().nth(4)) {
                    let files: Vec<std::path::PathBuf> = b.files.iter().map(|f| base.join(f)).collect();
                    v["bytes"] = json!(files.first().map(|f| file_len(f)));
                    v["bids"]["files"] = json!(files
                        .iter()
                        .map(|f| f.strip_prefix(self.sessions.root()).unwrap_or(f))
                        .collect::<Vec<_>>());
                }
                v
            })
            .collect();
        Ok(Value::Array(items))
    }

    /// The pipeline's counters, for metrics.
    pub fn shared(&self) -> Option<Arc<Shared>> {
        self.lock().shared.clone()
    }

    /// Records a marker in the running session (if any) and tells every control client. A
    /// marker outside the recording (before its first sample, or more than 1 s ahead) is
    /// refused (422), never moved; with no recording it is published only (`recorded: false`).
    pub fn marker(&self, label: &str, timestamp_ns: Option<i64>) -> ApiResult<Value> {
        if label.is_empty() || label.chars().count() > MAX_LABEL {
            return Err(ApiError::BadRequest(format!(
                "a marker needs a `label` of 1 to {MAX_LABEL} characters"
            )));
        }
        let ts = timestamp_ns.unwrap_or_else(now_ns);
        let mut inner = self.lock();
        let (session, recorded) = match inner.recording.as_mut() {
            Some(r) => {
                let placed =
                    r.session.add_marker_at(ts, label).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
                (r.session.dir().file_name().map(|n| n.to_string_lossy().into_owned()), placed.recorded)
            }
            // Not recorded, but still a marker: the hub shows it to the live view and to an LSL
            // marker outlet, like every other source's.
            None => {
                stages::markers::MarkerHub::global().post(stages::markers::Marker::new(ts, label));
                (None, false)
            }
        };
        let m = json!({ "label": label, "timestamp_ns": ts, "session": session, "recorded": recorded });
        self.push(json!({ "event": "marker", "marker": m }));
        Ok(m)
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// What a client sees of a running session.
fn session_summary(s: &Session) -> Value {
    let m = s.meta();
    json!({
        "session": s.dir().file_name().map(|n| n.to_string_lossy().into_owned()),
        "path": s.dir(),
        "data_file": s.file().file_name().map(|n| n.to_string_lossy().into_owned()),
        "format": m.format,
        "input": m.input,
        "status": m.status,
        "error": m.error,
        "started_at": m.start_time,
        "bytes": file_len(s.file()),
        "samples_written": s.samples_written(),
        "markers": m.markers.len(),
    })
}

/// Finishes a session whose pipeline has stopped: its final `session_meta.json`, with the
/// session's folder name and path (and `meta_error` when the meta could not be written).
fn finish_session(s: Session) -> Value {
    let dir = s.dir().to_path_buf();
    let (meta, written) = s.finish_keeping_meta();
    tracing::info!(session = %dir.display(), status = %meta.status, "Recording stopped");
    let mut v = serde_json::to_value(&meta).unwrap_or_else(|_| json!({}));
    v["session"] = json!(dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    v["path"] = json!(dir);
    if let Err(e) = written {
        tracing::error!(error = %e, "Closing the session failed");
        v["meta_error"] = json!("session_meta.json could not be written");
    }
    v
}

fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::NoInput | SessionError::NotTimeSeries(..) => ApiError::Conflict(e.to_string()),
        SessionError::Build(_) => ApiError::BadRequest(e.to_string()),
        SessionError::Attach(e) => edit_error(e),
        SessionError::Bids(_) => ApiError::BadRequest(e.to_string()),
        SessionError::BidsRunExists(_) => ApiError::Conflict(e.to_string()),
        SessionError::Io { .. } => ApiError::Internal(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_the_data_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = &tmp.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("run")).unwrap();
        let src = "stages:\n  - emulator: {}\n  - csv_sink: { path: ../x.csv }\n  - csv_sink: { name: b, path: /etc/x }\n";
        let Err(ApiError::InvalidPipeline(d)) = confine_paths("f", src, root) else { panic!("accepted") };
        let at: Vec<_> = d.items.iter().map(|i| i.span.map(|s| (s.line, s.col))).collect();
        assert_eq!(at, [Some((3, 23)), Some((4, 32))]);
        let ok = "stages:\n  - emulator: {}\n  - csv_sink: { path: run/x.csv }\n";
        let text = confine_paths("f", ok, root).unwrap();
        assert_eq!(
            yaml::parse(&text).unwrap().to_json()["stages"][1]["csv_sink"]["path"],
            json!(root.join("run/x.csv"))
        );
        let none = "stages:\n  - emulator: {}\n";
        assert_eq!(confine_paths("f", none, root).unwrap(), none);
    }

    #[test]
    fn effective_config_keeps_reserved_keys_and_applies_changes() {
        let mut cfg = Config {
            name: "t.yaml".into(),
            source: "stages:\n  - emulator: { channels: 2 }\n  - notch: { name: n, hz: 50 }\nruntime: { queue_capacity: 8 }\n".into(),
            overrides: BTreeMap::new(),
        };
        assert_eq!(effective(&cfg, &[]).unwrap(), cfg.source);
        cfg.overrides.insert("n".into(), json!({ "hz": 60, "q": 30 }));
        let text = effective(&cfg, &[json!({ "csv_sink": { "path": "x.csv" } })]).unwrap();
        let back = yaml::parse(&text).unwrap().to_json();
        assert_eq!(back["stages"][1]["notch"], json!({ "name": "n", "hz": 60, "q": 30 }));
        assert_eq!(back["stages"][0]["emulator"], json!({ "channels": 2 }));
        assert_eq!(back["stages"][2]["csv_sink"]["path"], "x.csv");
        assert_eq!(back["runtime"]["queue_capacity"], 8);
    }
}
