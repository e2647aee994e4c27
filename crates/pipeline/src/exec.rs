//! The executor: one thread per group; direct calls inside a group, bounded queues between.
//!
//! A group's thread owns its stages. A packet a stage emits is handed straight to each consumer
//! in the same group (a function call, depth first; the last consumer gets the packet itself, the
//! others a counted clone) and pushed onto an [`Edge`] for each consumer in another group. A
//! group with a source runs the source's `produce` loop; any other group parks until one of its
//! inbound edges has a packet or has closed.
//!
//! Stopping: the stop flag ends each source's loop; a finished stage finishes its consumers once
//! all their inputs have finished (calling `finish`, so sinks flush), closing the edges that
//! leave its group; a group thread ends when all its stages have finished. Nothing a source
//! produced before the stop is lost on a `block` edge.
//!
//! Errors and panics (caught with `catch_unwind`) follow the stage's [`ErrorPolicy`].
//!
//! Live parameters: [`Shared::patch_stage`] queues a merge-patch for a stage on its group's
//! bounded command queue and waits for the answer; the group thread applies it between packets
//! (one emptiness check per loop when nothing is queued), so a stage is only ever touched by
//! its own thread.
//!
//! Live edits (adding, removing and replacing stages while the pipeline runs, see
//! [`crate::edit`]) ride the same queue: the control side builds everything that allocates (the
//! stage, its node, the new routing and inbound tables) and the group thread swaps it in between
//! two packets and hands back what it replaced, to be dropped on the control side. The control
//! plane reads the graph through a [`Topology`] snapshot that each edit replaces whole.
use crate::handoff::Handoff;
use crate::pool::{Packet, Pool, PoolStats};
use crate::queue::{Edge, EdgeSnapshot};
use crate::rt;
use crate::stage::{Context, DynStage, ErrorPolicy, Produce, Role, StageError};
use crate::stats::{Histogram, Percentiles, StageState, StageStats};
use crate::stream::StreamInfo;
use crate::topology::file::RuntimeConfig;
use crate::topology::graph::Plan;
use crate::wake::Waker;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The pipeline's overall state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum PipelineState {
    Running,
    Stopped,
    /// A `fatal` stage error, with the stage's name and message.
    Failed(String),
}

/// Static facts and live counters of one stage, for the API and metrics.
#[derive(Clone)]
pub struct StageInfo {
    pub name: String,
    pub type_name: &'static str,
    pub role: Role,
    pub group: String,
    /// Indices (into the same [`Topology`]) of the stages feeding each input.
    pub inputs: Vec<usize>,
    pub on_error: ErrorPolicy,
    pub output: Option<StreamInfo>,
    pub stats: Arc<StageStats>,
    /// Refuses parameter changes to this stage and everything upstream of it: set from
    /// [`crate::Stage::is_locked`] when the stage starts, and by the control plane
    /// ([`Shared::set_locked`]). Shared by every snapshot of the topology.
    pub locked: Arc<AtomicBool>,
    /// The stage's group (index into [`Topology::groups`]) and its slot in that group.
    pub(crate) group_index: usize,
    pub(crate) local: usize,
    /// Per input: the edge when that input crosses threads, `None` when it is a direct call.
    pub(crate) in_edges: Vec<Option<Arc<Edge>>>,
    /// Packets of the shared pool's edit reserve this stage holds (stages added by an edit).
    pub(crate) claim: usize,
}

/// One thread group as the control plane knows it.
#[derive(Clone)]
pub(crate) struct GroupInfo {
    pub(crate) name: String,
    pub(crate) control: Arc<GroupControl>,
    /// Slots the group's node list has used (stages and vacated places), and its capacity:
    /// an added stage takes a vacated slot or, within capacity, a new one, so the group thread
    /// never grows its list.
    pub(crate) slots: usize,
    pub(crate) capacity: usize,
    /// False once the group's last stage has been removed (its thread ends).
    pub(crate) alive: bool,
}

/// The running graph as the control plane sees it. Stages are in topological order. Each edit
/// replaces the whole snapshot; a reader keeps the one it took.
#[derive(Clone)]
pub struct Topology {
    pub stages: Vec<StageInfo>,
    pub edges: Vec<Arc<Edge>>,
    pub(crate) groups: Vec<GroupInfo>,
}

impl std::ops::Deref for Topology {
    type Target = [StageInfo];
    fn deref(&self) -> &[StageInfo] {
        &self.stages
    }
}

impl Topology {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    pub fn stage(&self, name: &str) -> Option<&StageInfo> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stages that take stage `i`'s output directly.
    pub fn consumers(&self, i: usize) -> Vec<usize> {
        (0..self.stages.len()).filter(|&k| self.stages[k].inputs.contains(&i)).collect()
    }

    /// Every stage downstream of `i` (directly or not), in topological order.
    pub fn downstream(&self, i: usize) -> Vec<usize> {
        let mut feeds = vec![false; self.stages.len()];
        feeds[i] = true;
        let mut out = Vec::new();
        for k in i + 1..self.stages.len() {
            if self.stages[k].inputs.iter().any(|&j| feeds[j]) {
                feeds[k] = true;
                out.push(k);
            }
        }
        out
    }

    /// The locked stage that refuses changes to stage `i`: `i` itself, or any stage it feeds,
    /// directly or not.
    pub fn locked_by(&self, i: usize) -> Option<&str> {
        std::iter::once(i)
            .chain(self.downstream(i))
            .find(|&k| self.stages[k].locked.load(Ordering::Acquire))
            .map(|k| self.stages[k].name.as_str())
    }

    /// Stage `j`'s routing table: a direct call to each consumer in its group, the edge to each
    /// one in another group (in stage order, as the executor always builds it).
    pub(crate) fn routes_of(&self, j: usize) -> Vec<Route> {
        let mut routes = Vec::new();
        for s in &self.stages {
            for (port, &input) in s.inputs.iter().enumerate() {
                if input != j {
                    continue;
                }
                routes.push(match &s.in_edges[port] {
                    Some(edge) => Route::Remote(edge.clone()),
                    None => Route::Local { node: s.local, port },
                });
            }
        }
        routes
    }

    /// Group `g`'s inbound edges.
    pub(crate) fn inbound_of(&self, g: usize) -> Vec<Inbound> {
        let mut inbound = Vec::new();
        for s in self.stages.iter().filter(|s| s.group_index == g) {
            for (port, e) in s.in_edges.iter().enumerate() {
                if let Some(edge) = e {
                    inbound.push(Inbound { edge: edge.clone(), node: s.local, port, done: false });
                }
            }
        }
        inbound
    }

    /// Every stage's counters, in this snapshot's order.
    pub fn snapshots(&self) -> Vec<StageSnapshot> {
        self.stages
            .iter()
            .map(|s| {
                let mut p = s.stats.process_ns.percentiles();
                for v in [&mut p.p50, &mut p.p99, &mut p.p999, &mut p.max] {
                    *v /= 1000;
                }
                p.mean /= 1000.0;
                StageSnapshot {
                    name: s.name.clone(),
                    type_name: s.type_name.to_string(),
                    group: s.group.clone(),
                    state: s.stats.state(),
                    packets_in: s.stats.packets_in.load(Ordering::Relaxed),
                    packets_out: s.stats.packets_out.load(Ordering::Relaxed),
                    samples_out: s.stats.samples_out.load(Ordering::Relaxed),
                    errors: s.stats.errors.load(Ordering::Relaxed),
                    drops: s.stats.drops.load(Ordering::Relaxed),
                    overruns: s.stats.overruns.load(Ordering::Relaxed),
                    drift_ppm: s.stats.drift_ppm(),
                    process_us: p,
                    last_error: s.stats.last_error(),
                }
            })
            .collect()
    }

    pub(crate) fn collect_edges(&mut self) {
        self.edges = self.stages.iter().flat_map(|s| s.in_edges.iter().flatten().cloned()).collect();
    }
}

/// A parameter patch on its way to a stage's thread, with where to send the answer.
pub(crate) struct PatchRequest {
    node: usize,
    patch: serde_json::Value,
    reply: mpsc::SyncSender<Result<serde_json::Value, String>>,
}

/// An edit on its way to a group thread, with where the thread hands it back.
pub(crate) struct EditRequest {
    pub(crate) op: Box<EditOp>,
    pub(crate) reply: Arc<Handoff<(Box<EditOp>, bool)>>,
}

pub(crate) enum Command {
    Patch(PatchRequest),
    Edit(EditRequest),
}

/// Commands a group's queue holds before a patch gets [`PatchError::Busy`].
const PATCH_QUEUE: usize = 8;

/// Commands waiting for one group thread.
pub(crate) struct GroupControl {
    requests: crossbeam_queue::ArrayQueue<Command>,
    pub(crate) waker: Arc<Waker>,
    /// Set by the group thread as it ends, before it answers what is still queued; a sender
    /// that sees it answers what it finds queued itself (so no request waits for a thread that
    /// is gone).
    ended: AtomicBool,
}

impl GroupControl {
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        GroupControl {
            requests: crossbeam_queue::ArrayQueue::new(PATCH_QUEUE),
            waker,
            ended: AtomicBool::new(false),
        }
    }

    /// Answers every queued command with "not running" (for a group thread that has ended).
    fn answer_all_not_running(&self) {
        while let Some(c) = self.requests.pop() {
            match c {
                Command::Patch(r) => {
                    let _ = r.reply.try_send(Err("the stage's thread has ended".to_string()));
                }
                Command::Edit(e) => {
                    if e.reply.claim() {
                        e.reply.put((e.op, false));
                    }
                }
            }
        }
    }

    /// Sends an edit to the group thread and waits for it to hand it back: `Some((op, true))`
    /// once applied, `Some((op, false))` if the thread had ended, `None` if the queue was full
    /// or the thread did not take it within `timeout` (then it never will).
    pub(crate) fn send_edit(&self, op: Box<EditOp>, timeout: Duration) -> Option<(Box<EditOp>, bool)> {
        let reply = Arc::new(Handoff::new());
        self.requests.push(Command::Edit(EditRequest { op, reply: reply.clone() })).ok()?;
        self.waker.wake();
        fence(Ordering::SeqCst);
        if self.ended.load(Ordering::Relaxed) {
            self.answer_all_not_running();
        }
        reply.wait_timeout(timeout)
    }
}

/// Why a live parameter change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("no stage `{0}`")]
    UnknownStage(String),
    #[error("`{stage}` is locked while `{by}` records; stop the recording first")]
    Locked { stage: String, by: String },
    #[error("{0}")]
    Invalid(String),
    #[error("stage `{0}` is not running")]
    NotRunning(String),
    #[error("stage `{0}` has too many changes waiting; try again")]
    Busy(String),
}

/// A stage's counters, as `GET /api/pipeline` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct StageSnapshot {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub group: String,
    pub state: StageState,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Samples per channel emitted (a source's: the samples acquired).
    pub samples_out: u64,
    pub errors: u64,
    pub drops: u64,
    /// Acquisition sources: samples lost to DRDY overruns.
    pub overruns: u64,
    /// Acquisition sources: drift of the DRDY events from the nominal sample clock, ppm.
    pub drift_ppm: f64,
    pub process_us: Percentiles,
    pub last_error: Option<String>,
}

/// What the control plane can see of a running pipeline.
pub struct Shared {
    pub(crate) stop: AtomicBool,
    state: Mutex<PipelineState>,
    pub(crate) groups_running: AtomicUsize,
    done: Condvar,
    done_lock: Mutex<()>,
    pub pool: Pool,
    /// Source ready → every same-thread sink has the packet, ns.
    pub latency_ns: Histogram,
    /// The current graph (control side only: no pipeline thread reads it).
    topology: Mutex<Arc<Topology>>,
    /// Serialises edits and parameter changes; holds what only edits need.
    pub(crate) edits: Mutex<EditState>,
    pub(crate) runtime: RuntimeConfig,
    /// Every group thread, those an edit started included.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What the control side keeps for edits, under [`Shared::edits`].
pub(crate) struct EditState {
    /// Packets of the shared pool not yet promised to added stages.
    pub(crate) reserve_left: usize,
}

impl Shared {
    pub fn state(&self) -> PipelineState {
        self.state.lock().map(|s| s.clone()).unwrap_or(PipelineState::Failed("state lock poisoned".into()))
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks every source to stop; the rest drains. Does not wait.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn fail(&self, message: String) {
        if let Ok(mut s) = self.state.lock() {
            if !matches!(*s, PipelineState::Failed(_)) {
                *s = PipelineState::Failed(message);
            }
        }
        self.request_stop();
    }

    /// The current graph: a snapshot that later edits do not change.
    pub fn stages(&self) -> Arc<Topology> {
        self.topology.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn publish(&self, t: Topology) {
        *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }

    pub fn stage_snapshots(&self) -> Vec<StageSnapshot> {
        self.stages().snapshots()
    }

    pub fn edge_snapshots(&self) -> Vec<EdgeSnapshot> {
        self.stages().edges.iter().map(|e| e.snapshot()).collect()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// True once every group thread has ended (sources ended or a stop drained).
    pub fn is_finished(&self) -> bool {
        self.groups_running.load(Ordering::Acquire) == 0
    }

    /// Waits until every group thread has ended, or `timeout` passes. True if ended.
    pub fn wait_finished(&self, timeout: Option<std::time::Duration>) -> bool {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut guard = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_finished() {
            guard = match deadline {
                None => self.done.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.done.wait_timeout(guard, d - now).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        true
    }

    /// Stage `name` as the current graph has it.
    pub fn stage(&self, name: &str) -> Option<StageInfo> {
        self.stages().stage(name).cloned()
    }

    /// Locks or unlocks stage `name` (and so everything upstream of it) against parameter
    /// changes and edits. False if there is no such stage.
    pub fn set_locked(&self, name: &str, locked: bool) -> bool {
        self.stage(name).map(|s| s.locked.store(locked, Ordering::Release)).is_some()
    }

    /// The locked stage that refuses changes to stage `i` of the current graph.
    pub fn locked_by(&self, i: usize) -> Option<String> {
        let t = self.stages();
        t.get(i).and_then(|_| t.locked_by(i)).map(str::to_string)
    }

    /// Applies a JSON merge-patch to stage `name`'s parameters between two of its packets, on
    /// its own thread, and returns its parameters after the change. Waits at most `timeout`
    /// for the stage's thread (a source applies it after its current packet).
    pub fn patch_stage(
        &self,
        name: &str,
        patch: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, PatchError> {
        // Under the edit lock, so the stage's slot cannot change hands meanwhile.
        let _edits = self.edits.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.stages();
        let i = t.index_of(name).ok_or_else(|| PatchError::UnknownStage(name.to_string()))?;
        if let Some(by) = t.locked_by(i) {
            return Err(PatchError::Locked { stage: name.to_string(), by: by.to_string() });
        }
        let info = &t[i];
        if self.is_finished() || info.stats.state() != StageState::Running {
            return Err(PatchError::NotRunning(name.to_string()));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let control = &t.groups[info.group_index].control;
        control
            .requests
            .push(Command::Patch(PatchRequest { node: info.local, patch, reply }))
            .map_err(|_| PatchError::Busy(name.to_string()))?;
        control.waker.wake();
        fence(Ordering::SeqCst);
        if control.ended.load(Ordering::Relaxed) {
            control.answer_all_not_running();
        }
        match answer.recv_timeout(timeout) {
            Ok(r) => r.map_err(PatchError::Invalid),
            Err(_) => Err(PatchError::NotRunning(name.to_string())),
        }
    }

    /// Starts a thread for group `g` of the current graph, running `group`.
    pub(crate) fn spawn_group(&self, name: &str, group: Group) -> std::io::Result<()> {
        self.groups_running.fetch_add(1, Ordering::AcqRel);
        match std::thread::Builder::new().name(format!("eegd-{name}")).spawn(move || group.run()) {
            Ok(t) => {
                self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(t);
                Ok(())
            }
            Err(e) => {
                self.groups_running.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// A group for thread `name`, with `nodes` and `inbound`, not yet running.
    pub(crate) fn new_group(
        self: &Arc<Self>,
        name: &str,
        nodes: Vec<Node>,
        inbound: Vec<Inbound>,
        control: Arc<GroupControl>,
    ) -> Group {
        let cfg = self.runtime.groups.get(name);
        let source = nodes.iter().position(|n| n.role == Role::Source);
        Group {
            nodes,
            inbound,
            source,
            waker: control.waker.clone(),
            control,
            shared: self.clone(),
            cpu: cfg.and_then(|c| c.cpu),
            priority: cfg.and_then(|c| c.priority).or(self.runtime.realtime_priority),
        }
    }
}

/// A running pipeline. Dropping it stops it and waits.
pub struct Pipeline {
    shared: Arc<Shared>,
    joined: bool,
}

/// Why a pipeline did not start.
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` could not start: {source}")]
pub struct StartError {
    pub stage: String,
    #[source]
    pub source: StageError,
}

pub(crate) enum Route {
    Local { node: usize, port: usize },
    Remote(Arc<Edge>),
}

impl Route {
    fn same(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Local { node: a, port: p }, Route::Local { node: b, port: q }) => a == b && p == q,
            (Route::Remote(a), Route::Remote(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

pub(crate) struct Node {
    pub(crate) stage: Box<dyn DynStage>,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) policy: ErrorPolicy,
    pub(crate) routes: Vec<Route>,
    pub(crate) open_inputs: usize,
    pub(crate) done: bool,
    pub(crate) stats: Arc<StageStats>,
    pub(crate) out: Vec<Packet>,
    /// Where the stage's `Context::alloc` takes packets from.
    pub(crate) pool: Pool,
}

impl Node {
    pub(crate) fn new(info: &StageInfo, stage: Box<dyn DynStage>, routes: Vec<Route>, pool: Pool) -> Node {
        Node {
            stage,
            name: info.name.clone(),
            role: info.role,
            policy: info.on_error,
            routes,
            open_inputs: info.inputs.len(),
            done: false,
            stats: info.stats.clone(),
            out: Vec::with_capacity(16),
            pool,
        }
    }

    /// A place left by a removed stage: finished, fed by nothing, routing nowhere.
    pub(crate) fn vacant(pool: &Pool) -> Node {
        Node {
            stage: Box::new(Vacant),
            name: String::new(),
            role: Role::Sink,
            policy: ErrorPolicy::SkipPacket,
            routes: Vec::new(),
            open_inputs: 0,
            done: true,
            stats: Arc::new(StageStats::default()),
            out: Vec::new(),
            pool: pool.clone(),
        }
    }
}

/// What fills a vacated slot.
struct Vacant;
impl crate::Stage for Vacant {}
impl DynStage for Vacant {
    fn params_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn patch(&mut self, _: &serde_json::Value) -> Result<(), String> {
        Err("the stage has been removed".to_string())
    }
}

pub(crate) struct Inbound {
    pub(crate) edge: Arc<Edge>,
    pub(crate) node: usize,
    pub(crate) port: usize,
    pub(crate) done: bool,
}

/// One change a group thread makes between two packets. Built on the control side; the group
/// thread swaps its parts in and the request comes back holding what they replaced.
pub(crate) enum EditOp {
    /// Puts `node` in `slot` (a vacated place, or the next one within the list's capacity) and
    /// takes `inbound` as the group's inbound table. Comes back with the vacant node (if any)
    /// and the old table.
    Insert { slot: usize, node: Option<Node>, inbound: Vec<Inbound> },
    /// Gives node `node` the routing table `routes`. A consumer the new table leaves out has
    /// that input ended (a direct one) or its edge closed (a remote one), so it drains and
    /// finishes. Comes back with the old table.
    Routes { node: usize, routes: Vec<Route> },
    /// Drains the inbound edges of the nodes in `slots` (their producers have closed them),
    /// finishes those nodes, swaps each for the vacant node in `nodes`, and takes `inbound`.
    /// Comes back with the removed nodes and the old table.
    Reap { slots: Vec<usize>, nodes: Vec<Node>, inbound: Vec<Inbound> },
    /// Lets node `slot`'s stage flush (`finish`, its output routed on), then puts `stage` in
    /// its place. Comes back with the old stage.
    Replace { slot: usize, stage: Box<dyn DynStage>, pool: Pool },
}

pub(crate) struct Group {
    nodes: Vec<Node>,
    inbound: Vec<Inbound>,
    source: Option<usize>,
    waker: Arc<Waker>,
    control: Arc<GroupControl>,
    shared: Arc<Shared>,
    cpu: Option<usize>,
    priority: Option<u8>,
}

/// Packets one inbound edge may deliver before the next edge gets a turn.
const FAIR_BUDGET: usize = 32;

/// Slots each group's node list keeps free for stages added while it runs.
pub(crate) const EDIT_SLOTS: usize = 32;

/// Packets the shared pool holds beyond what the graph needs, for stages added while it runs
/// (each claims a few in flight plus the capacity of its cross-thread input queues).
fn edit_reserve(runtime: &RuntimeConfig) -> usize {
    4 * runtime.queue_capacity + 64
}

impl Pipeline {
    /// Starts every stage (on this thread: files and devices open here) and then the group
    /// threads. On a start error nothing runs.
    pub fn start(plan: Plan) -> Result<Pipeline, StartError> {
        let Plan { mut stages, runtime, pool_words, pool_packets, .. } = plan;
        for s in &mut stages {
            s.stage.start().map_err(|source| StartError { stage: s.name.clone(), source })?;
        }
        if runtime.mlockall {
            rt::lock_memory();
        }
        let reserve = edit_reserve(&runtime);
        let pool = Pool::new(pool_packets + reserve, pool_words);

        // Groups in order of first appearance; slot per stage.
        let mut groups: Vec<GroupInfo> = Vec::new();
        let mut placed = Vec::with_capacity(stages.len());
        for s in &stages {
            let g = match groups.iter().position(|g| g.name == s.group) {
                Some(g) => g,
                None => {
                    groups.push(GroupInfo {
                        name: s.group.clone(),
                        control: Arc::new(GroupControl::new(Arc::new(Waker::new()))),
                        slots: 0,
                        capacity: 0,
                        alive: true,
                    });
                    groups.len() - 1
                }
            };
            placed.push((g, groups[g].slots));
            groups[g].slots += 1;
        }
        for g in &mut groups {
            g.capacity = g.slots + EDIT_SLOTS;
        }

        let mut infos: Vec<StageInfo> = Vec::with_capacity(stages.len());
        for (i, s) in stages.iter().enumerate() {
            let (gi, local) = placed[i];
            let in_edges = s
                .inputs
                .iter()
                .map(|&j| {
                    let gj = placed[j].0;
                    (gi != gj).then(|| {
                        Arc::new(Edge::new(
                            stages[j].name.clone(),
                            s.name.clone(),
                            s.queue_capacity,
                            s.overflow,
                            groups[gj].control.waker.clone(),
                            groups[gi].control.waker.clone(),
                        ))
                    })
                })
                .collect();
            infos.push(StageInfo {
                name: s.name.clone(),
                type_name: s.type_name,
                role: s.role,
                group: s.group.clone(),
                inputs: s.inputs.clone(),
                on_error: s.on_error,
                output: s.output.clone(),
                stats: Arc::new(StageStats::default()),
                locked: Arc::new(AtomicBool::new(s.stage.is_locked())),
                group_index: gi,
                local,
                in_edges,
                claim: 0,
            });
        }
        let mut topology = Topology { stages: infos, edges: Vec::new(), groups };
        topology.collect_edges();

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(PipelineState::Running),
            groups_running: AtomicUsize::new(0),
            done: Condvar::new(),
            done_lock: Mutex::new(()),
            pool: pool.clone(),
            latency_ns: Histogram::new(),
            topology: Mutex::new(Arc::new(Topology {
                stages: Vec::new(),
                edges: Vec::new(),
                groups: Vec::new(),
            })),
            edits: Mutex::new(EditState { reserve_left: reserve }),
            runtime,
            threads: Mutex::new(Vec::new()),
        });

        let mut nodes: Vec<Vec<Node>> =
            topology.groups.iter().map(|g| Vec::with_capacity(g.capacity)).collect();
        for (i, s) in stages.into_iter().enumerate() {
            let info = &topology.stages[i];
            nodes[info.group_index].push(Node::new(info, s.stage, topology.routes_of(i), pool.clone()));
        }
        let groups: Vec<Group> = nodes
            .into_iter()
            .enumerate()
            .map(|(g, n)| {
                let gi = &topology.groups[g];
                shared.new_group(&gi.name, n, topology.inbound_of(g), gi.control.clone())
            })
            .collect();
        let names: Vec<String> = topology.groups.iter().map(|g| g.name.clone()).collect();
        shared.publish(topology);
        for (g, name) in groups.into_iter().zip(&names) {
            shared.spawn_group(name, g).expect("spawning a pipeline thread");
        }
        Ok(Pipeline { shared, joined: false })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Asks the sources to stop; the pipeline drains. Does not wait: see [`Pipeline::join`].
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// True once every group thread has ended (sources ended or a stop drained).
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// Stops, drains, joins every thread and returns the final state.
    pub fn join(mut self) -> PipelineState {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> PipelineState {
        self.stop();
        self.joined = true;
        // Edits hold this lock while they start threads; once we have it, no new one starts
        // (edits check the stop flag first).
        let _edits = self.shared.edits.lock().unwrap_or_else(|e| e.into_inner());
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            if t.join().is_err() {
                self.shared.fail("a pipeline thread panicked outside a stage".into());
            }
        }
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s == PipelineState::Running {
            *s = PipelineState::Stopped;
        }
        s.clone()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.joined {
            self.stop_and_join();
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

impl Group {
    fn run(mut self) {
        if let Some(cpu) = self.cpu {
            rt::pin_to_cpu(cpu);
        }
        if let Some(p) = self.priority {
            rt::set_fifo_priority(p);
        }
        rt::min_timer_slack();
        self.waker.bind_current();
        crate::alloc_count::mark_data_thread();
        if let Some(k) = self.source {
            self.run_source(k);
        }
        self.run_inbound();
        for ib in &self.inbound {
            ib.edge.abandon();
        }
        // Whoever sends after this answers for itself; what is queued now is answered here.
        self.control.ended.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.control.answer_all_not_running();
        let shared = self.shared.clone();
        drop(self);
        let _g = shared.done_lock.lock();
        shared.groups_running.fetch_sub(1, Ordering::AcqRel);
        shared.done.notify_all();
    }

    fn run_source(&mut self, k: usize) {
        while !self.shared.stopping() && !self.nodes[k].done {
            let node = &mut self.nodes[k];
            let res = catch_unwind(AssertUnwindSafe(|| {
                let mut cx = Context {
                    out: &mut node.out,
                    pool: &node.pool,
                    stop: &self.shared.stop,
                    stats: &node.stats,
                };
                node.stage.produce(&mut cx)
            }));
            let ready = node.out.last().map(|p| p.header().ready_ns);
            let ended = match res {
                Ok(Ok(Produce::Ready)) => false,
                Ok(Ok(Produce::End)) => true,
                Ok(Err(e)) => {
                    self.fail(k, e.to_string());
                    false
                }
                Err(p) => {
                    self.fail(k, panic_message(p));
                    false
                }
            };
            self.route(k);
            if let Some(ready) = ready {
                self.shared.latency_ns.record(rt::monotonic_ns().saturating_sub(ready));
            }
            if ended {
                break;
            }
            self.poll_inbound();
            self.apply_commands();
        }
        self.finish(k, StageState::Finished);
    }

    /// Delivers what the inbound edges hold, without waiting. True if anything happened.
    fn poll_inbound(&mut self) -> bool {
        let mut progressed = false;
        for e in 0..self.inbound.len() {
            if self.inbound[e].done {
                continue;
            }
            for _ in 0..FAIR_BUDGET {
                let Some(p) = self.inbound[e].edge.pop() else { break };
                let (node, port) = (self.inbound[e].node, self.inbound[e].port);
                self.deliver(node, port, p);
                progressed = true;
            }
            if self.inbound[e].edge.is_finished() {
                self.inbound[e].done = true;
                let node = self.inbound[e].node;
                self.input_ended(node);
                progressed = true;
            }
        }
        progressed
    }

    fn run_inbound(&mut self) {
        while !self.nodes.iter().all(|n| n.done) {
            let patched = self.apply_commands();
            if !self.poll_inbound() && !patched {
                let (inbound, control) = (&self.inbound, &self.control);
                self.waker.wait_until(|| {
                    !control.requests.is_empty()
                        || inbound.iter().any(|i| !i.done && (!i.edge.is_empty() || i.edge.is_closed()))
                });
            }
        }
        // Anyone still waiting for an answer learns the stage has ended.
        self.apply_commands();
    }

    /// Applies the queued commands between two packets. True if any. A parameter patch is
    /// control path (it may allocate); an edit is not: it swaps in what the control side
    /// built and hands back what it replaced.
    fn apply_commands(&mut self) -> bool {
        if self.control.requests.is_empty() {
            return false;
        }
        while let Some(c) = self.control.requests.pop() {
            match c {
                Command::Patch(r) => self.apply_patch(r),
                Command::Edit(EditRequest { mut op, reply }) => {
                    if reply.claim() {
                        self.apply_edit(&mut op);
                        reply.put((op, true));
                    }
                }
            }
        }
        true
    }

    fn apply_patch(&mut self, r: PatchRequest) {
        let Some(node) = self.nodes.get_mut(r.node) else { return };
        let res = if node.done {
            Err(format!("stage `{}` is not running", node.name))
        } else {
            match catch_unwind(AssertUnwindSafe(|| node.stage.patch(&r.patch))) {
                Ok(Ok(())) => Ok(node.stage.params_json()),
                Ok(Err(e)) => Err(e),
                Err(p) => Err(panic_message(p)),
            }
        };
        if res.is_ok() {
            tracing::info!(stage = %node.name, "Parameters changed");
        }
        let _ = r.reply.try_send(res);
    }

    /// One edit, between two packets: swaps, never allocates (see [`EditOp`]).
    fn apply_edit(&mut self, op: &mut EditOp) {
        match op {
            EditOp::Insert { slot, node, inbound } => {
                if *slot < self.nodes.len() {
                    if let Some(n) = node.as_mut() {
                        std::mem::swap(&mut self.nodes[*slot], n);
                    }
                } else if let Some(n) = node.take() {
                    // Within the capacity reserved at start: no allocation.
                    debug_assert!(self.nodes.len() < self.nodes.capacity());
                    self.nodes.push(n);
                }
                self.swap_inbound(inbound);
            }
            EditOp::Routes { node, routes } => {
                let k = *node;
                std::mem::swap(&mut self.nodes[k].routes, routes);
                // `routes` now holds the old table: end what the new one leaves out.
                for r in routes.iter() {
                    if self.nodes[k].routes.iter().any(|n| n.same(r)) {
                        continue;
                    }
                    match r {
                        Route::Local { node, .. } => self.input_ended(*node),
                        Route::Remote(edge) => edge.close(),
                    }
                }
            }
            EditOp::Reap { slots, nodes, inbound } => {
                for e in 0..self.inbound.len() {
                    if self.inbound[e].done || !slots.contains(&self.inbound[e].node) {
                        continue;
                    }
                    let (node, port) = (self.inbound[e].node, self.inbound[e].port);
                    while let Some(p) = self.inbound[e].edge.pop() {
                        self.deliver(node, port, p);
                    }
                    if self.inbound[e].edge.is_finished() {
                        self.inbound[e].done = true;
                        self.input_ended(node);
                    }
                }
                for &k in slots.iter() {
                    self.finish(k, StageState::Finished);
                }
                for (k, vacant) in slots.iter().zip(nodes.iter_mut()) {
                    std::mem::swap(&mut self.nodes[*k], vacant);
                }
                self.swap_inbound(inbound);
            }
            EditOp::Replace { slot, stage, pool } => {
                let k = *slot;
                if !self.nodes[k].done {
                    if let Some(e) = self.call_finish(k) {
                        self.nodes[k].stats.record_error(&e);
                    }
                    self.route(k);
                }
                std::mem::swap(&mut self.nodes[k].stage, stage);
                std::mem::swap(&mut self.nodes[k].pool, pool);
            }
        }
    }

    /// Takes `new` as the inbound table, keeping what the old one knew of edges in both, and
    /// leaves the old table in `new`.
    fn swap_inbound(&mut self, new: &mut Vec<Inbound>) {
        std::mem::swap(&mut self.inbound, new);
        for ib in self.inbound.iter_mut() {
            if let Some(old) = new.iter().find(|o| Arc::ptr_eq(&o.edge, &ib.edge)) {
                ib.done = old.done;
            }
        }
    }

    fn deliver(&mut self, k: usize, port: usize, pkt: Packet) {
        let node = &mut self.nodes[k];
        if node.done {
            node.stats.drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
        node.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        let ready = pkt.header().ready_ns;
        let t0 = rt::monotonic_ns();
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut cx =
                Context { out: &mut node.out, pool: &node.pool, stop: &self.shared.stop, stats: &node.stats };
            node.stage.process(port, pkt, &mut cx)
        }));
        let t1 = rt::monotonic_ns();
        node.stats.process_ns.record(t1.saturating_sub(t0));
        if node.role == Role::Sink {
            node.stats.latency_ns.record(t1.saturating_sub(ready));
        }
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(k, e.to_string()),
            Err(p) => self.fail(k, panic_message(p)),
        }
        self.route(k);
    }

    /// Hands what stage `k` emitted to its consumers.
    fn route(&mut self, k: usize) {
        if self.nodes[k].out.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut self.nodes[k].out);
        let routes = std::mem::take(&mut self.nodes[k].routes);
        let stats = &self.nodes[k].stats;
        stats.packets_out.fetch_add(out.len() as u64, Ordering::Relaxed);
        stats
            .samples_out
            .fetch_add(out.iter().map(|p| u64::from(p.header().samples)).sum(), Ordering::Relaxed);
        for pkt in out.drain(..) {
            if let Some((last, rest)) = routes.split_last() {
                for r in rest {
                    self.send(r, pkt.clone());
                }
                self.send(last, pkt);
            }
        }
        self.nodes[k].out = out;
        self.nodes[k].routes = routes;
    }

    fn send(&mut self, r: &Route, pkt: Packet) {
        match r {
            Route::Local { node, port } => self.deliver(*node, *port, pkt),
            Route::Remote(edge) => edge.push(pkt),
        }
    }

    /// Applies stage `k`'s `on_error` policy (error path: may allocate and log).
    fn fail(&mut self, k: usize, message: String) {
        let node = &mut self.nodes[k];
        node.stats.record_error(&message);
        match node.policy {
            ErrorPolicy::SkipPacket => {
                tracing::warn!(stage = %node.name, error = %message, "Stage error; packet skipped");
                node.stats.drops.fetch_add(1, Ordering::Relaxed);
                node.out.clear();
            }
            ErrorPolicy::DrainThenStop => {
                tracing::error!(stage = %node.name, error = %message, "Stage error; stopping this stage and what only it feeds");
                node.stats.drops.fetch_add(1, Ordering::Relaxed);
                node.stats.set_state(StageState::Stopped);
                self.finish(k, StageState::Stopped);
            }
            ErrorPolicy::Fatal => {
                tracing::error!(stage = %node.name, error = %message, "Fatal stage error; stopping the pipeline");
                node.stats.set_state(StageState::Failed);
                let msg = format!("stage `{}`: {message}", node.name);
                self.shared.fail(msg);
                self.finish(k, StageState::Failed);
            }
        }
    }

    fn input_ended(&mut self, k: usize) {
        let node = &mut self.nodes[k];
        node.open_inputs = node.open_inputs.saturating_sub(1);
        if node.open_inputs == 0 {
            self.finish(k, StageState::Finished);
        }
    }

    /// Stage `k` will take no more packets: let it flush, then end its consumers' inputs.
    fn finish(&mut self, k: usize, state: StageState) {
        if self.nodes[k].done {
            return;
        }
        self.nodes[k].done = true;
        if let Some(e) = self.call_finish(k) {
            let node = &mut self.nodes[k];
            node.stats.record_error(&e);
            tracing::error!(stage = %node.name, error = %e, "Stage failed while finishing");
            if node.policy == ErrorPolicy::Fatal {
                let msg = format!("stage `{}`: {e}", node.name);
                self.shared.fail(msg);
            }
        }
        if self.nodes[k].stats.state() == StageState::Running {
            self.nodes[k].stats.set_state(state);
        }
        self.route(k);
        let routes = std::mem::take(&mut self.nodes[k].routes);
        for r in &routes {
            match r {
                Route::Local { node, .. } => self.input_ended(*node),
                Route::Remote(edge) => edge.close(),
            }
        }
        self.nodes[k].routes = routes;
    }

    /// Calls stage `k`'s `finish`; its error or panic message, if any.
    fn call_finish(&mut self, k: usize) -> Option<String> {
        let node = &mut self.nodes[k];
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut cx =
                Context { out: &mut node.out, pool: &node.pool, stop: &self.shared.stop, stats: &node.stats };
            node.stage.finish(&mut cx)
        }));
        match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(panic_message(p)),
        }
    }
}
