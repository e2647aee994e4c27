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
use crate::pool::{Packet, Pool, PoolStats};
use crate::queue::{Edge, EdgeSnapshot};
use crate::rt;
use crate::stage::{Context, DynStage, ErrorPolicy, Produce, Role, StageError};
use crate::stats::{Histogram, Percentiles, StageState, StageStats};
use crate::stream::StreamInfo;
use crate::topology::graph::Plan;
use crate::wake::Waker;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
pub struct StageInfo {
    pub name: String,
    pub type_name: &'static str,
    pub role: Role,
    pub group: String,
    pub inputs: Vec<usize>,
    pub on_error: ErrorPolicy,
    pub output: Option<StreamInfo>,
    pub stats: Arc<StageStats>,
    /// Refuses parameter changes to this stage and everything upstream of it: set from
    /// [`crate::Stage::is_locked`] when the pipeline starts, and by the control plane
    /// ([`Shared::set_locked`]).
    pub locked: AtomicBool,
    /// The stage's group (index into the group threads) and its place in that group.
    group_index: usize,
    local: usize,
}

/// A parameter patch on its way to a stage's thread, with where to send the answer.
struct PatchRequest {
    node: usize,
    patch: serde_json::Value,
    reply: mpsc::SyncSender<Result<serde_json::Value, String>>,
}

/// Commands waiting for one group thread.
struct GroupControl {
    requests: crossbeam_queue::ArrayQueue<PatchRequest>,
    waker: Arc<Waker>,
}

/// Patches a group's queue holds before [`PatchError::Busy`].
const PATCH_QUEUE: usize = 8;

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
    stop: AtomicBool,
    state: Mutex<PipelineState>,
    groups_running: AtomicUsize,
    done: Condvar,
    done_lock: Mutex<()>,
    pub stages: Vec<StageInfo>,
    pub edges: Vec<Arc<Edge>>,
    pub pool: Pool,
    /// Source ready → every same-thread sink has the packet, ns.
    pub latency_ns: Histogram,
    controls: Vec<Arc<GroupControl>>,
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

    pub fn stage_snapshots(&self) -> Vec<StageSnapshot> {
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

    pub fn edge_snapshots(&self) -> Vec<EdgeSnapshot> {
        self.edges.iter().map(|e| e.snapshot()).collect()
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

    pub fn stage(&self, name: &str) -> Option<&StageInfo> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Locks or unlocks stage `name` (and so everything upstream of it) against parameter
    /// changes. False if there is no such stage.
    pub fn set_locked(&self, name: &str, locked: bool) -> bool {
        self.stage(name).map(|s| s.locked.store(locked, Ordering::Release)).is_some()
    }

    /// The locked stage that refuses changes to stage `i`: `i` itself, or any stage it feeds,
    /// directly or not.
    pub fn locked_by(&self, i: usize) -> Option<&str> {
        let mut feeds = vec![false; self.stages.len()];
        feeds[i] = true;
        // Stages are in topological order: whatever `i` feeds comes after it.
        for k in i..self.stages.len() {
            if k != i && self.stages[k].inputs.iter().any(|&j| feeds[j]) {
                feeds[k] = true;
            }
            if feeds[k] && self.stages[k].locked.load(Ordering::Acquire) {
                return Some(&self.stages[k].name);
            }
        }
        None
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
        let i = self
            .stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| PatchError::UnknownStage(name.to_string()))?;
        if let Some(by) = self.locked_by(i) {
            return Err(PatchError::Locked { stage: name.to_string(), by: by.to_string() });
        }
        let info = &self.stages[i];
        if self.is_finished() || info.stats.state() != StageState::Running {
            return Err(PatchError::NotRunning(name.to_string()));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let control = &self.controls[info.group_index];
        control
            .requests
            .push(PatchRequest { node: info.local, patch, reply })
            .map_err(|_| PatchError::Busy(name.to_string()))?;
        control.waker.wake();
        match answer.recv_timeout(timeout) {
            Ok(r) => r.map_err(PatchError::Invalid),
            Err(_) => Err(PatchError::NotRunning(name.to_string())),
        }
    }
}

/// A running pipeline. Dropping it stops it and waits.
pub struct Pipeline {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Why a pipeline did not start.
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` could not start: {source}")]
pub struct StartError {
    pub stage: String,
    #[source]
    pub source: StageError,
}

enum Route {
    Local { node: usize, port: usize },
    Remote(Arc<Edge>),
}

struct Node {
    stage: Box<dyn DynStage>,
    name: String,
    role: Role,
    policy: ErrorPolicy,
    routes: Vec<Route>,
    open_inputs: usize,
    done: bool,
    stats: Arc<StageStats>,
    out: Vec<Packet>,
}

struct Inbound {
    edge: Arc<Edge>,
    node: usize,
    port: usize,
    done: bool,
}

struct Group {
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
        let pool = Pool::new(pool_packets, pool_words);

        // Groups in order of first appearance; local node index per stage.
        let mut group_names: Vec<String> = Vec::new();
        let mut local = vec![0usize; stages.len()];
        let mut counts: Vec<usize> = Vec::new();
        let group_of: Vec<usize> = stages
            .iter()
            .map(|s| match group_names.iter().position(|g| *g == s.group) {
                Some(g) => g,
                None => {
                    group_names.push(s.group.clone());
                    counts.push(0);
                    group_names.len() - 1
                }
            })
            .collect();
        for (i, &g) in group_of.iter().enumerate() {
            local[i] = counts[g];
            counts[g] += 1;
        }
        let wakers: Vec<Arc<Waker>> = group_names.iter().map(|_| Arc::new(Waker::new())).collect();
        let controls: Vec<Arc<GroupControl>> = wakers
            .iter()
            .map(|w| {
                Arc::new(GroupControl {
                    requests: crossbeam_queue::ArrayQueue::new(PATCH_QUEUE),
                    waker: w.clone(),
                })
            })
            .collect();

        // Routes and edges.
        let mut routes: Vec<Vec<Route>> = stages.iter().map(|_| Vec::new()).collect();
        let mut inbound: Vec<Vec<Inbound>> = group_names.iter().map(|_| Vec::new()).collect();
        let mut edges = Vec::new();
        for (i, s) in stages.iter().enumerate() {
            for (port, &j) in s.inputs.iter().enumerate() {
                let (gi, gj) = (group_of[i], group_of[j]);
                if gi == gj {
                    routes[j].push(Route::Local { node: local[i], port });
                } else {
                    let edge = Arc::new(Edge::new(
                        stages[j].name.clone(),
                        s.name.clone(),
                        s.queue_capacity,
                        s.overflow,
                        wakers[gj].clone(),
                        wakers[gi].clone(),
                    ));
                    routes[j].push(Route::Remote(edge.clone()));
                    inbound[gi].push(Inbound { edge: edge.clone(), node: local[i], port, done: false });
                    edges.push(edge);
                }
            }
        }

        let infos: Vec<StageInfo> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| StageInfo {
                name: s.name.clone(),
                type_name: s.type_name,
                role: s.role,
                group: s.group.clone(),
                inputs: s.inputs.clone(),
                on_error: s.on_error,
                output: s.output.clone(),
                stats: Arc::new(StageStats::default()),
                locked: AtomicBool::new(s.stage.is_locked()),
                group_index: group_of[i],
                local: local[i],
            })
            .collect();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(PipelineState::Running),
            groups_running: AtomicUsize::new(group_names.len()),
            done: Condvar::new(),
            done_lock: Mutex::new(()),
            stages: infos,
            edges,
            pool,
            latency_ns: Histogram::new(),
            controls: controls.clone(),
        });

        let mut groups: Vec<Group> = group_names
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let cfg = runtime.groups.get(name);
                Group {
                    nodes: Vec::new(),
                    inbound: std::mem::take(&mut inbound[g]),
                    source: None,
                    waker: wakers[g].clone(),
                    control: controls[g].clone(),
                    shared: shared.clone(),
                    cpu: cfg.and_then(|c| c.cpu),
                    priority: cfg.and_then(|c| c.priority).or(runtime.realtime_priority),
                }
            })
            .collect();
        for (i, (s, r)) in stages.into_iter().zip(routes).enumerate() {
            let g = &mut groups[group_of[i]];
            if s.role == Role::Source {
                g.source = Some(g.nodes.len());
            }
            g.nodes.push(Node {
                open_inputs: s.inputs.len(),
                stage: s.stage,
                name: s.name,
                role: s.role,
                policy: s.on_error,
                routes: r,
                done: false,
                stats: shared.stages[i].stats.clone(),
                out: Vec::with_capacity(16),
            });
        }

        let threads = groups
            .into_iter()
            .zip(&group_names)
            .map(|(g, name)| {
                std::thread::Builder::new()
                    .name(format!("eegd-{name}"))
                    .spawn(move || g.run())
                    .expect("spawning a pipeline thread")
            })
            .collect();
        Ok(Pipeline { shared, threads })
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
        for t in self.threads.drain(..) {
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
        if !self.threads.is_empty() {
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
        if let Some(k) = self.source {
            self.run_source(k);
        }
        self.run_inbound();
        for ib in &self.inbound {
            ib.edge.abandon();
        }
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
                    pool: &self.shared.pool,
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
            self.apply_patches();
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
            let patched = self.apply_patches();
            if !self.poll_inbound() && !patched {
                let (inbound, control) = (&self.inbound, &self.control);
                self.waker.wait_until(|| {
                    !control.requests.is_empty()
                        || inbound.iter().any(|i| !i.done && (!i.edge.is_empty() || i.edge.is_closed()))
                });
            }
        }
        // Anyone still waiting for an answer learns the stage has ended.
        self.apply_patches();
    }

    /// Applies the queued parameter patches (control path: may allocate). True if any.
    fn apply_patches(&mut self) -> bool {
        if self.control.requests.is_empty() {
            return false;
        }
        while let Some(r) = self.control.requests.pop() {
            let Some(node) = self.nodes.get_mut(r.node) else { continue };
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
        true
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
            let mut cx = Context {
                out: &mut node.out,
                pool: &self.shared.pool,
                stop: &self.shared.stop,
                stats: &node.stats,
            };
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
        let node = &mut self.nodes[k];
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut cx = Context {
                out: &mut node.out,
                pool: &self.shared.pool,
                stop: &self.shared.stop,
                stats: &node.stats,
            };
            node.stage.finish(&mut cx)
        }));
        let err = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(panic_message(p)),
        };
        if let Some(e) = err {
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
}
