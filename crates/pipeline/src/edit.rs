//! Live edits of a running pipeline: add a stage fed by running ones, remove a stage (with
//! `cascade`, everything downstream of it), replace a stage in place.
//!
//! Control side (this module, on the caller's thread; may allocate, log and wait): check the
//! edit against the running graph with the same rules and messages as a pipeline file, build
//! and start the new stage, make its node, edges and the new routing and inbound tables, and
//! the next [`Topology`]. Data side ([`crate::exec`], on the group thread that owns the stages
//! concerned, between two packets): swap the prepared parts in and hand back what they
//! replaced; the control side drops it. The group thread never allocates, locks or waits for
//! the control side for an edit; the control side waits for each step's answer
//! ([`crate::handoff`]) before it sends the next.
//!
//! - **Add**: the stage goes into its group (a vacated slot or a spare one: the node lists
//!   are sized with room at start), or into a new thread group started for it (an added sink
//!   doing file I/O never shares the source's thread). Then each stage feeding it gets a new
//!   routing table that includes it: from the next packet on, it is fed.
//! - **Remove**: the stages feeding the removed set get routing tables without it; a direct
//!   input they drop is ended, a cross-thread edge closed, so the removed stages drain what is
//!   queued and `finish` (a file closes cleanly), exactly as at a stop. Then each group holding
//!   removed stages, upstream groups first, drains what remains, swaps each removed node for
//!   a vacant one and takes an inbound table without their edges.
//! - **Replace**: the old stage's `finish` runs (its output routed on) and the new stage takes
//!   its place in the same node: same inputs, same consumers, same routing.
//!
//! No packet on a branch the edit does not touch is lost, reordered or delayed beyond the time
//! of one swap: the tables swapped are the affected stages' own, and a packet in flight is
//! either delivered under the old table or under the new one, never split.
use crate::exec::{EditOp, GroupControl, GroupInfo, Node, Shared, StageInfo, Topology, EDIT_SLOTS};
use crate::pool::Pool;
use crate::queue::Edge;
use crate::stage::{
    lookup, param_diagnostic, registry, BuildCx, DynStage, ErrorPolicy, Role, StageError, Upstream,
};
use crate::stats::StageStats;
use crate::stream::StreamInfo;
use crate::topology::diag::{did_you_mean, Diagnostic};
use crate::topology::file::{check_stage, Overflow, RuntimeConfig, StageDecl};
use crate::topology::yaml::Node as YamlNode;
use crate::wake::Waker;
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// How long an edit waits for a group thread to take each step (a source's thread takes it
/// after its current packet).
pub const EDIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Packets in flight an added stage may hold from the shared pool, beyond its input queues.
const IN_FLIGHT: usize = 8;

/// An edit that was applied, as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Applied {
    Add {
        stage: String,
        #[serde(rename = "type")]
        type_name: String,
        inputs: Vec<String>,
        group: String,
        /// Its parameters, defaults filled in.
        params: serde_json::Value,
    },
    Remove {
        stage: String,
        /// Every stage removed: the one named, then what only it fed.
        removed: Vec<String>,
    },
    Replace {
        stage: String,
        #[serde(rename = "type")]
        type_name: String,
        params: serde_json::Value,
    },
}

/// Why an edit was not applied. Nothing changed in the running pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The stage as given does not fit the running graph: positions are in the request.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
    #[error("no stage `{0}`")]
    UnknownStage(String),
    #[error("`{stage}` is locked while `{by}` records; stop the recording first")]
    Locked { stage: String, by: String },
    #[error("`{stage}` feeds {}; remove them first or pass `cascade`", list(.dependants))]
    HasDependants { stage: String, dependants: Vec<String> },
    #[error("`{0}` is a source; changing a source restarts the pipeline")]
    Source(String),
    #[error("{0}")]
    NoRoom(String),
    #[error("stage `{stage}` could not start: {source}")]
    Start {
        stage: String,
        #[source]
        source: StageError,
    },
    #[error("the pipeline is not running: {0}")]
    NotRunning(String),
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// One stage item of a pipeline file (`{ fft: { size: 256, inputs: [bandpass] } }`) with its
/// positions, checked for shape and reserved keys.
pub fn parse_stage(item: &YamlNode) -> Result<StageDecl, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    match check_stage(item, &mut diags) {
        Some(d) if diags.is_empty() => Ok(d),
        _ => Err(diags),
    }
}

/// A new stage, checked against the running graph and built, not yet started.
struct Prepared {
    name: String,
    type_name: &'static str,
    role: Role,
    inputs: Vec<usize>,
    group: String,
    on_error: ErrorPolicy,
    queue_capacity: usize,
    overflow: Overflow,
    output: Option<StreamInfo>,
    stage: Box<dyn DynStage>,
}

/// Checks `d` against the running graph `t` as the graph builder checks a file, and builds
/// it. `replacing`: the stage it takes the place of (its inputs and group are kept).
fn prepare(
    t: &Topology,
    d: &StageDecl,
    replacing: Option<usize>,
    rt: &RuntimeConfig,
) -> Result<Prepared, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let name = &d.name;
    let Some(reg) = lookup(&d.type_name) else {
        let names = registry().into_iter().map(|r| r.name);
        return Err(vec![Diagnostic::at(
            d.type_span,
            format!("unknown stage type `{}`{}", d.type_name, did_you_mean(&d.type_name, names)),
        )]);
    };
    if reg.role == Role::Source {
        diags.push(Diagnostic::at(
            d.type_span,
            format!("`{name}`: `{}` is a source; adding a source restarts the pipeline", reg.name),
        ));
    }
    let params = match (reg.decode)(&d.params) {
        Ok(p) => Some(p),
        Err(mut ds) => {
            for x in &mut ds {
                x.message = format!("`{name}`: {}", x.message);
            }
            diags.append(&mut ds);
            None
        }
    };
    let names: Vec<&str> = t.iter().map(|s| s.name.as_str()).collect();
    let inputs: Vec<usize> = match replacing {
        Some(x) => t[x].inputs.clone(),
        None => {
            if t.index_of(name).is_some() {
                diags.push(Diagnostic::at(
                    d.name_span,
                    format!("a stage named `{name}` is running already; give this one another `name:`"),
                ));
            }
            let Some(list) = &d.inputs else {
                diags.push(Diagnostic::at(
                    d.type_span,
                    format!("`{name}` needs `inputs:`, the running stages that feed it"),
                ));
                return Err(diags);
            };
            let mut inputs = Vec::new();
            for (input, span) in list {
                match t.index_of(input) {
                    Some(j) if t[j].role == Role::Sink => diags.push(Diagnostic::at(
                        *span,
                        format!("`{name}` takes input from `{input}`, a sink, which gives no output"),
                    )),
                    Some(j) => inputs.push((j, *span)),
                    None => diags.push(Diagnostic::at(
                        *span,
                        format!(
                            "`{name}`: unknown input `{input}`{}",
                            did_you_mean(input, names.iter().copied())
                        ),
                    )),
                }
            }
            if inputs.is_empty() && diags.is_empty() {
                diags.push(Diagnostic::at(d.type_span, format!("`{name}` needs at least one input")));
            }
            if !reg.multi_input && list.len() > 1 {
                diags.push(Diagnostic::at(
                    d.type_span,
                    format!("`{name}` takes one input, not {}", list.len()),
                ));
            }
            if reg.multi_input && list.len() < 2 {
                diags.push(Diagnostic::at(
                    d.type_span,
                    format!("`{name}` joins streams: list two or more `inputs`"),
                ));
            }
            let mut ins = Vec::new();
            for (j, span) in inputs {
                match &t[j].output {
                    Some(info) if !reg.accepts.contains(&info.kind) => {
                        let takes: Vec<&str> = reg.accepts.iter().map(|k| k.name()).collect();
                        diags.push(Diagnostic::at(
                            span,
                            format!(
                                "`{}` gives {} but `{name}` ({}) takes only {}",
                                t[j].name,
                                info.kind.name(),
                                reg.name,
                                takes.join(" or ")
                            ),
                        ));
                    }
                    _ => ins.push(j),
                }
            }
            ins
        }
    };
    let overflow = d.queue.as_ref().and_then(|q| q.overflow).unwrap_or_default();
    if reg.records && overflow == Overflow::DropOldest {
        diags.push(Diagnostic::at(
            d.params.span,
            format!("`{name}` records data and never drops: its queue must use `overflow: block`"),
        ));
    }
    let (Some(params), true) = (params, diags.is_empty()) else { return Err(diags) };
    let streams: Vec<StreamInfo> = inputs.iter().filter_map(|&j| t[j].output.clone()).collect();
    // The running stages upstream, by name and type (their live parameters stay on their
    // threads; a stage that describes the chain sees them as null).
    let mut feeds = vec![false; t.len()];
    let mut todo = inputs.clone();
    while let Some(j) = todo.pop() {
        if !std::mem::replace(&mut feeds[j], true) {
            todo.extend(t[j].inputs.iter().copied());
        }
    }
    let upstream: Vec<Upstream> = (0..t.len())
        .filter(|&j| feeds[j])
        .map(|j| Upstream {
            name: t[j].name.clone(),
            type_name: t[j].type_name,
            params: serde_json::Value::Null,
        })
        .collect();
    let (stage, output) =
        params.build(&streams, &BuildCx { name, stream_id: 0, upstream: &upstream }).map_err(|e| {
            let mut diag = param_diagnostic(&d.params, &e);
            diag.message = format!("`{name}`: {}", diag.message);
            vec![diag]
        })?;
    let group = match replacing {
        Some(x) => t[x].group.clone(),
        None => match &d.group {
            Some(g) => g.clone(),
            None if reg.blocking_io => "io".to_string(),
            None => t[inputs[0]].group.clone(),
        },
    };
    Ok(Prepared {
        name: name.clone(),
        type_name: reg.name,
        role: reg.role,
        inputs,
        group,
        on_error: d.on_error.unwrap_or(reg.on_error),
        queue_capacity: d.queue.as_ref().and_then(|q| q.capacity).unwrap_or(rt.queue_capacity),
        overflow,
        output,
        stage,
    })
}

/// True if group `from` feeds group `to`, directly or not, in `t`.
fn group_reaches(t: &Topology, from: usize, to: usize) -> bool {
    let mut seen = vec![false; t.groups.len()];
    let mut todo = vec![from];
    while let Some(g) = todo.pop() {
        if g == to {
            return true;
        }
        if std::mem::replace(&mut seen[g], true) {
            continue;
        }
        for s in t.iter().filter(|s| s.group_index != g) {
            if s.inputs.iter().any(|&j| t[j].group_index == g) {
                todo.push(s.group_index);
            }
        }
    }
    false
}

/// The groups in an order where every group comes after the groups feeding it.
fn group_order(t: &Topology) -> Vec<usize> {
    let n = t.groups.len();
    let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for s in t.iter() {
        for &j in &s.inputs {
            let (a, b) = (t[j].group_index, s.group_index);
            if a != b && !feeds[b].contains(&a) {
                feeds[b].push(a);
            }
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while order.len() < n {
        let before = order.len();
        for g in 0..n {
            if !placed[g] && feeds[g].iter().all(|&a| placed[a]) {
                placed[g] = true;
                order.push(g);
            }
        }
        if order.len() == before {
            // A cycle (the graph builder and `add` refuse them): the rest in index order.
            order.extend((0..n).filter(|&g| !placed[g]));
        }
    }
    order
}

fn send(group: &GroupInfo, op: EditOp) -> Result<(Box<EditOp>, bool), EditError> {
    group.control.send_edit(Box::new(op), EDIT_TIMEOUT).ok_or_else(|| {
        EditError::NotRunning(format!("thread group `{}` did not take the edit in time", group.name))
    })
}

impl Shared {
    /// Adds stage `d` (fed by running stages named in its `inputs`) while the pipeline runs.
    pub fn add_stage(self: &Arc<Self>, d: &StageDecl) -> Result<Applied, EditError> {
        let mut ed = self.edits.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopping() || self.is_finished() {
            return Err(EditError::NotRunning("it is stopping".into()));
        }
        let t = self.stages();
        let p = prepare(&t, d, None, &self.runtime).map_err(EditError::Invalid)?;
        let existing = t.groups.iter().position(|g| g.alive && g.name == p.group);
        if let Some(g) = existing {
            if let Some(&j) =
                p.inputs.iter().find(|&&j| t[j].group_index != g && group_reaches(&t, g, t[j].group_index))
            {
                return Err(EditError::Invalid(vec![Diagnostic::at(
                    d.type_span,
                    format!(
                        "`{}` in group `{}` fed by `{}` (group `{}`) would make the thread groups a cycle; give it another `group:`",
                        p.name, p.group, t[j].name, t[j].group
                    ),
                )]));
            }
        }
        let cross = p.inputs.iter().filter(|&&j| Some(t[j].group_index) != existing).count();
        let claim = IN_FLIGHT + cross * p.queue_capacity;
        if claim > ed.reserve_left {
            return Err(EditError::NoRoom(format!(
                "the packet pool has room for {} more packets, and `{}` needs {claim}; restart the pipeline to add it",
                ed.reserve_left, p.name
            )));
        }
        let words = p.output.as_ref().map_or(0, |o| o.words());
        let pool = if words > self.pool.words() {
            // Its own packets are larger than the pool's: a pool of its own for what it makes.
            Pool::new(2 * self.runtime.queue_capacity + 2 * IN_FLIGHT, words)
        } else {
            self.pool.clone()
        };

        let mut nt = (*t).clone();
        let (gi, slot) = match existing {
            Some(g) => {
                let used: Vec<usize> = nt.iter().filter(|s| s.group_index == g).map(|s| s.local).collect();
                let grp = &mut nt.groups[g];
                let slot = match (0..grp.slots).find(|k| !used.contains(k)) {
                    Some(k) => k,
                    None if grp.slots < grp.capacity => {
                        grp.slots += 1;
                        grp.slots - 1
                    }
                    None => {
                        return Err(EditError::NoRoom(format!(
                            "thread group `{}` has no room for another stage; put it in another `group:` or restart",
                            grp.name
                        )))
                    }
                };
                (g, slot)
            }
            None => {
                nt.groups.push(GroupInfo {
                    name: p.group.clone(),
                    control: Arc::new(GroupControl::new(Arc::new(Waker::new()))),
                    slots: 1,
                    capacity: 1 + EDIT_SLOTS,
                    alive: true,
                });
                (nt.groups.len() - 1, 0)
            }
        };
        let in_edges = p
            .inputs
            .iter()
            .map(|&j| {
                let gj = t[j].group_index;
                (gj != gi).then(|| {
                    Arc::new(Edge::new(
                        t[j].name.clone(),
                        p.name.clone(),
                        p.queue_capacity,
                        p.overflow,
                        nt.groups[gj].control.waker.clone(),
                        nt.groups[gi].control.waker.clone(),
                    ))
                })
            })
            .collect();
        let mut stage = p.stage;
        stage.start().map_err(|source| EditError::Start { stage: p.name.clone(), source })?;
        let params = stage.params_json();
        nt.stages.push(StageInfo {
            name: p.name.clone(),
            type_name: p.type_name,
            role: p.role,
            group: p.group.clone(),
            inputs: p.inputs.clone(),
            on_error: p.on_error,
            output: p.output,
            stats: Arc::new(StageStats::default()),
            locked: Arc::new(AtomicBool::new(stage.is_locked())),
            group_index: gi,
            local: slot,
            in_edges,
            claim,
        });
        nt.collect_edges();
        let i = nt.stages.len() - 1;
        let node = Node::new(&nt.stages[i], stage, Vec::new(), pool);
        if existing.is_none() {
            let mut nodes = Vec::with_capacity(1 + EDIT_SLOTS);
            nodes.push(node);
            let g = self.new_group(&p.group, nodes, nt.inbound_of(gi), nt.groups[gi].control.clone());
            self.spawn_group(&p.group, g)
                .map_err(|e| EditError::NotRunning(format!("could not start thread `{}`: {e}", p.group)))?;
        } else {
            let (back, applied) =
                send(&nt.groups[gi], EditOp::Insert { slot, node: Some(node), inbound: nt.inbound_of(gi) })?;
            drop(back);
            if !applied {
                return Err(EditError::NotRunning(format!("thread group `{}` has ended", p.group)));
            }
        }
        // From the next packet on, each input feeds it.
        let mut feeders = p.inputs.clone();
        feeders.dedup();
        for j in feeders {
            let op = EditOp::Routes { node: t[j].local, routes: nt.routes_of(j) };
            drop(send(&nt.groups[t[j].group_index], op)?);
        }
        ed.reserve_left -= claim;
        let applied = Applied::Add {
            stage: p.name.clone(),
            type_name: p.type_name.to_string(),
            inputs: p.inputs.iter().map(|&j| t[j].name.clone()).collect(),
            group: p.group.clone(),
            params,
        };
        self.publish(nt);
        tracing::info!(stage = %p.name, group = %p.group, "Stage added");
        Ok(applied)
    }

    /// Removes stage `name` while the pipeline runs: it drains and finishes. Stages it feeds
    /// go with it if `cascade`; otherwise their being there refuses the edit.
    pub fn remove_stage(&self, name: &str, cascade: bool) -> Result<Applied, EditError> {
        let mut ed = self.edits.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.stages();
        let x = editable(&t, name)?;
        let down = t.downstream(x);
        if !cascade && !down.is_empty() {
            return Err(EditError::HasDependants {
                stage: name.to_string(),
                dependants: down.iter().map(|&k| t[k].name.clone()).collect(),
            });
        }
        if self.stopping() || self.is_finished() {
            return Err(EditError::NotRunning("it is stopping".into()));
        }
        let mut gone = vec![false; t.len()];
        gone[x] = true;
        down.iter().for_each(|&k| gone[k] = true);

        // The next graph: the rest, inputs renumbered.
        let mut index = vec![usize::MAX; t.len()];
        let mut nt = Topology { stages: Vec::new(), edges: Vec::new(), groups: t.groups.clone() };
        for (k, s) in t.iter().enumerate().filter(|(k, _)| !gone[*k]) {
            index[k] = nt.stages.len();
            let mut s = s.clone();
            s.inputs = s.inputs.iter().map(|&j| index[j]).collect();
            nt.stages.push(s);
        }
        nt.collect_edges();
        for (g, grp) in nt.groups.iter_mut().enumerate() {
            if !nt.stages.iter().any(|s| s.group_index == g) {
                grp.alive = false;
            }
        }

        // 1. Whatever feeds the removed stages stops feeding them; they drain and finish.
        let mut feeders: Vec<usize> =
            (0..t.len()).filter(|&j| !gone[j] && t.consumers(j).iter().any(|&k| gone[k])).collect();
        feeders.dedup();
        for j in feeders {
            let op = EditOp::Routes { node: t[j].local, routes: nt.routes_of(index[j]) };
            drop(send(&t.groups[t[j].group_index], op)?);
        }
        // 2. Each group holding them, upstream first, lets them go.
        for g in group_order(&t) {
            let slots: Vec<usize> =
                (0..t.len()).filter(|&k| gone[k] && t[k].group_index == g).map(|k| t[k].local).collect();
            if slots.is_empty() {
                continue;
            }
            let nodes = slots.iter().map(|_| Node::vacant(&self.pool)).collect();
            let op = EditOp::Reap { slots, nodes, inbound: nt.inbound_of(g) };
            // An ended group thread (its last stage removed) has finished them itself.
            drop(send(&t.groups[g], op)?);
        }
        ed.reserve_left += (0..t.len()).filter(|&k| gone[k]).map(|k| t[k].claim).sum::<usize>();
        let removed: Vec<String> = (0..t.len()).filter(|&k| gone[k]).map(|k| t[k].name.clone()).collect();
        self.publish(nt);
        tracing::info!(stage = %name, removed = ?removed, "Stage removed");
        Ok(Applied::Remove { stage: name.to_string(), removed })
    }

    /// Replaces stage `name` with `d` (same inputs, same consumers) while the pipeline runs.
    /// The old stage finishes (its output goes on) and the new one takes the next packet.
    pub fn replace_stage(&self, name: &str, d: &StageDecl) -> Result<Applied, EditError> {
        let _ed = self.edits.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.stages();
        let x = editable(&t, name)?;
        let d = StageDecl { name: name.to_string(), ..d.clone() };
        let p = prepare(&t, &d, Some(x), &self.runtime).map_err(EditError::Invalid)?;
        let old = &t[x];
        let fits = match (&old.output, &p.output) {
            (None, None) => true,
            (Some(a), Some(b)) => a.kind == b.kind && a.channels == b.channels && a.rate == b.rate,
            _ => false,
        };
        if p.role != old.role || !fits {
            let shape = |o: &Option<StreamInfo>| match o {
                Some(s) => format!("{} ({} channels at {} Hz)", s.kind.name(), s.channels, s.rate),
                None => "no output".to_string(),
            };
            return Err(EditError::Invalid(vec![Diagnostic::at(
                d.type_span,
                format!(
                    "`{}` gives {} where `{name}` gives {}: a replacement must give what its consumers take",
                    p.type_name,
                    shape(&p.output),
                    shape(&old.output)
                ),
            )]));
        }
        if self.stopping() || self.is_finished() {
            return Err(EditError::NotRunning("it is stopping".into()));
        }
        let words = p.output.as_ref().map_or(0, |o| o.words());
        let pool = if words > self.pool.words() {
            Pool::new(2 * self.runtime.queue_capacity + 2 * IN_FLIGHT, words)
        } else {
            self.pool.clone()
        };
        let mut stage = p.stage;
        stage.start().map_err(|source| EditError::Start { stage: name.to_string(), source })?;
        let locked = stage.is_locked();
        let params = stage.params_json();
        let (back, applied) =
            send(&t.groups[old.group_index], EditOp::Replace { slot: old.local, stage, pool })?;
        drop(back);
        if !applied {
            return Err(EditError::NotRunning(format!("thread group `{}` has ended", old.group)));
        }
        let mut nt = (*t).clone();
        nt.stages[x].type_name = p.type_name;
        nt.stages[x].output = p.output;
        nt.stages[x].locked = Arc::new(AtomicBool::new(locked));
        self.publish(nt);
        tracing::info!(stage = %name, r#type = %p.type_name, "Stage replaced");
        Ok(Applied::Replace { stage: name.to_string(), type_name: p.type_name.to_string(), params })
    }
}

/// One stage item given as text (YAML or JSON, e.g. an API request's `add`), checked for
/// shape; positions in the diagnostics are in `src`, which `file` names.
pub fn stage_from_text(file: &str, src: &str) -> Result<StageDecl, crate::topology::Diagnostics> {
    let node =
        crate::topology::yaml::parse(src).map_err(|d| crate::topology::Diagnostics::new(file, vec![d]))?;
    parse_stage(&node).map_err(|d| crate::topology::Diagnostics::new(file, d))
}

/// The index of stage `name`, if an edit may remove or replace it: it exists, is not a source
/// (a source changes by a restart) and is not locked by a recording.
fn editable(t: &Topology, name: &str) -> Result<usize, EditError> {
    let x = t.index_of(name).ok_or_else(|| EditError::UnknownStage(name.to_string()))?;
    if t[x].role == Role::Source {
        return Err(EditError::Source(name.to_string()));
    }
    if let Some(by) = t.locked_by(x) {
        return Err(EditError::Locked { stage: name.to_string(), by: by.to_string() });
    }
    Ok(x)
}
