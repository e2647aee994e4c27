//! The stage API and the static registry.
//!
//! A stage is a type that implements [`Stage`] (what it does per packet) and [`StageType`] (its
//! name, parameters, the packet kinds it takes and gives, how it is built), registered with
//! [`register_stage!`](crate::register_stage). Stage authors never see pools, queues or threads:
//! they get a [`Packet`] and a [`Context`] to emit into.
//!
//! ```ignore
//! /// Multiplies every value by `factor`.
//! #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct GainParams { pub factor: f32 }
//! pub struct Gain { factor: f32 }
//! impl Stage for Gain {
//!     fn process(&mut self, _: usize, mut pkt: Packet, cx: &mut Context) -> Result<(), StageError> {
//!         pkt.make_mut()?.f32s_mut().iter_mut().for_each(|v| *v *= self.factor);
//!         cx.emit(pkt);
//!         Ok(())
//!     }
//! }
//! impl StageType for Gain { /* NAME, ROLE, ACCEPTS, DOC, EXAMPLE, build */ }
//! register_stage!(Gain);
//! ```
use crate::packet::Kind;
use crate::pool::{Packet, Pool, PoolExhausted};
use crate::stats::StageStats;
use crate::stream::StreamInfo;
pub use crate::topology::file::ErrorPolicy;
use crate::topology::{decode, yaml::Node, Diagnostic};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a stage sits in a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No inputs; produces packets (a device, an emulator, a file).
    Source,
    /// Inputs and outputs.
    Transform,
    /// Inputs only.
    Sink,
}

/// Why a stage could not handle a packet. The stage's `on_error` policy decides what follows.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Pool(#[from] PoolExhausted),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Message(String),
}

impl StageError {
    pub fn msg(m: impl Into<String>) -> Self {
        StageError::Message(m.into())
    }
}

/// What a source's [`Stage::produce`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Produce {
    /// Emitted zero or more packets; call again.
    Ready,
    /// The source has ended (a file without `loop`): its outputs finish.
    End,
}

/// What a stage sees of the runtime while it runs.
pub struct Context<'a> {
    pub(crate) out: &'a mut Vec<Packet>,
    pub(crate) pool: &'a Pool,
    pub(crate) stop: &'a AtomicBool,
    pub(crate) stats: &'a StageStats,
}

impl<'a> Context<'a> {
    /// Sends a packet to every consumer of this stage.
    pub fn emit(&mut self, pkt: Packet) {
        self.out.push(pkt);
    }

    /// A fresh packet from the pipeline's pool (sources and stages that make new packets).
    pub fn alloc(&self, header: crate::Header) -> Result<Packet, PoolExhausted> {
        self.pool.acquire(header)
    }

    /// True once the pipeline is stopping: a source should return from a wait promptly.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Counts packets this stage dropped by its own policy (e.g. an unmatched packet in a
    /// fan-in), so they show in the stats.
    pub fn count_drop(&self, n: u64) {
        self.stats.drops.fetch_add(n, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &StageStats {
        self.stats
    }
}

/// What a stage does at run time. All methods run on the stage's group thread; after the
/// pipeline starts they must not allocate, lock, log or block (sources may wait for their next
/// sample in `produce`).
pub trait Stage: Send + 'static {
    /// Called once before the pipeline runs, on the thread that starts it: open files and
    /// devices here, not in `build` (which `eegd validate` also calls). May allocate.
    fn start(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// One packet arrived on input `input` (index into the stage's `inputs`).
    fn process(&mut self, input: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let _ = (input, cx);
        drop(pkt);
        Ok(())
    }

    /// Sources: wait for and emit the next packet(s).
    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        let _ = cx;
        Ok(Produce::End)
    }

    /// Every input has ended: emit what is buffered, flush and close files.
    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), StageError> {
        let _ = cx;
        Ok(())
    }

    /// A stage may lock itself (a recorder while it records): the control plane then refuses
    /// parameter changes to it and everything upstream of it.
    fn is_locked(&self) -> bool {
        false
    }
}

/// A parameter problem found by [`StageType::check`]: which parameter, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        ParamError { param, message: message.into() }
    }
}

/// Facts the graph builder gives a stage when it builds it.
#[derive(Debug, Clone)]
pub struct BuildCx<'a> {
    /// The stage's name in the pipeline.
    pub name: &'a str,
    /// For sources: this source's stream id, distinct within the pipeline.
    pub stream_id: u16,
    /// Every stage upstream of this one, sources first (sinks that describe the processing
    /// chain, e.g. `lsl_sink`'s metadata, read it).
    pub upstream: &'a [Upstream],
}

/// A stage upstream of the one being built: its name, type and parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upstream {
    pub name: String,
    pub type_name: &'static str,
    pub params: serde_json::Value,
}

/// The default `on_error` of each role (docs/pipeline.md, "Errors while running").
pub const fn default_on_error(role: Role) -> ErrorPolicy {
    match role {
        Role::Source | Role::Sink => ErrorPolicy::DrainThenStop,
        Role::Transform => ErrorPolicy::Fatal,
    }
}

/// A registered stage type: its name, parameters and how to build it.
pub trait StageType: Stage + Sized {
    /// The parameters: serde, `deny_unknown_fields`, documented defaults, a JSON schema.
    type Params: DeserializeOwned + Serialize + JsonSchema + Clone + Send + Sync + 'static;
    /// The type name used in pipeline files (`snake_case`).
    const NAME: &'static str;
    const ROLE: Role;
    /// Packet kinds accepted on every input (empty for sources).
    const ACCEPTS: &'static [Kind];
    /// What it does, its inputs and outputs (parameters are documented on `Params`).
    const DOC: &'static str;
    /// A complete pipeline file using the stage; a test validates every one.
    const EXAMPLE: &'static str;
    /// `on_error` when the file does not say.
    const ON_ERROR: ErrorPolicy = default_on_error(Self::ROLE);
    /// Does blocking I/O (files, network): never placed on a source's thread by default.
    const BLOCKING_IO: bool = false;
    /// Stages that take several inputs (`align_and_zip`); others take exactly one.
    const MULTI_INPUT: bool = false;
    /// Records data (files): its inputs must never drop, so the graph builder refuses
    /// `overflow: drop_oldest` on them.
    const RECORDS: bool = false;
    /// Opens a file (every recording sink, `file_source`): counted against
    /// [`MAX_FILES`](crate::topology::limits::MAX_FILES).
    const OPENS_FILE: bool = Self::RECORDS;

    /// Checks beyond what the schema says (cross-field rules, allowed sets).
    fn check(params: &Self::Params) -> Vec<ParamError> {
        let _ = params;
        Vec::new()
    }

    /// Builds the stage for its input streams; returns it and the stream it gives (sinks:
    /// `None`).
    fn build(
        params: &Self::Params,
        inputs: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError>;

    /// Applies new parameters between packets (live change). The default refuses.
    fn reconfigure(&mut self, params: &Self::Params) -> Result<(), ParamError> {
        let _ = params;
        Err(ParamError::new("", format!("`{}` does not take live parameter changes", Self::NAME)))
    }
}

/// A stage as the executor holds it: the [`Stage`] plus its current parameters, for live
/// changes and for `GET /api/pipeline`.
pub trait DynStage: Stage {
    fn params_json(&self) -> serde_json::Value;
    /// Applies a JSON merge-patch (RFC 7396) of the parameters: validated like the file, then
    /// handed to [`StageType::reconfigure`]. On error nothing changes.
    fn patch(&mut self, patch: &serde_json::Value) -> Result<(), String>;
}

struct Live<T: StageType> {
    stage: T,
    params: T::Params,
}

impl<T: StageType> Stage for Live<T> {
    fn start(&mut self) -> Result<(), StageError> {
        self.stage.start()
    }
    #[inline]
    fn process(&mut self, input: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        self.stage.process(input, pkt, cx)
    }
    #[inline]
    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        self.stage.produce(cx)
    }
    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), StageError> {
        self.stage.finish(cx)
    }
    fn is_locked(&self) -> bool {
        self.stage.is_locked()
    }
}

/// RFC 7396 JSON merge-patch.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

impl<T: StageType> DynStage for Live<T> {
    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn patch(&mut self, patch: &serde_json::Value) -> Result<(), String> {
        let mut v = self.params_json();
        merge_patch(&mut v, patch);
        let node = crate::topology::yaml::Node::from_json(&v);
        let new: T::Params = decode::decode(&node)
            .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?;
        let errs = T::check(&new);
        if let Some(e) = errs.first() {
            return Err(format!("`{}`: {}", e.param, e.message));
        }
        self.stage.reconfigure(&new).map_err(|e| e.message)?;
        self.params = new;
        Ok(())
    }
}

/// Parameters decoded from a file, waiting for the graph to know their input streams.
pub trait ErasedParams: Send + Sync {
    fn to_json(&self) -> serde_json::Value;
    fn build(
        &self,
        inputs: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Box<dyn DynStage>, Option<StreamInfo>), ParamError>;
}

struct ParamsOf<T: StageType>(T::Params);

impl<T: StageType> ErasedParams for ParamsOf<T> {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    fn build(
        &self,
        inputs: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Box<dyn DynStage>, Option<StreamInfo>), ParamError> {
        let (stage, out) = T::build(&self.0, inputs, cx)?;
        Ok((Box::new(Live::<T> { stage, params: self.0.clone() }), out))
    }
}

/// Decodes and checks a stage's parameters from its node in the file.
pub type DecodeFn = fn(&Node) -> Result<Box<dyn ErasedParams>, Vec<Diagnostic>>;

/// A built stage and the stream it gives.
pub type BuiltStage = (Box<dyn DynStage>, Option<StreamInfo>);

/// One entry of the static registry. Made by [`register_stage!`](crate::register_stage).
pub struct Registration {
    pub name: &'static str,
    pub role: Role,
    pub accepts: &'static [Kind],
    pub on_error: ErrorPolicy,
    pub blocking_io: bool,
    pub multi_input: bool,
    /// See [`StageType::RECORDS`].
    pub records: bool,
    /// See [`StageType::OPENS_FILE`].
    pub opens_file: bool,
    pub doc: &'static str,
    pub example: &'static str,
    /// JSON schema of the parameters.
    pub schema: fn() -> serde_json::Value,
    /// Decodes and checks the parameters, reporting every problem with its position.
    pub decode: DecodeFn,
}

fn decode_params<T: StageType>(node: &Node) -> Result<Box<dyn ErasedParams>, Vec<Diagnostic>> {
    let params: T::Params = decode::decode(node)?;
    let errs = T::check(&params);
    if errs.is_empty() {
        return Ok(Box::new(ParamsOf::<T>(params)));
    }
    Err(errs.into_iter().map(|e| param_diagnostic(node, &e)).collect())
}

/// A [`ParamError`] placed at its parameter in the file (or at the stage when not found).
pub fn param_diagnostic(params: &Node, e: &ParamError) -> Diagnostic {
    let at = params.get(e.param).map(|n| n.span).unwrap_or(params.span);
    let msg = if e.param.is_empty() { e.message.clone() } else { format!("`{}`: {}", e.param, e.message) };
    Diagnostic::at(at, msg)
}

fn schema_json<T: StageType>() -> serde_json::Value {
    decode::schema_of::<T::Params>()
}

impl Registration {
    pub const fn of<T: StageType>() -> Registration {
        Registration {
            name: T::NAME,
            role: T::ROLE,
            accepts: T::ACCEPTS,
            on_error: T::ON_ERROR,
            blocking_io: T::BLOCKING_IO,
            multi_input: T::MULTI_INPUT,
            records: T::RECORDS,
            opens_file: T::OPENS_FILE,
            doc: T::DOC,
            example: T::EXAMPLE,
            schema: schema_json::<T>,
            decode: decode_params::<T>,
        }
    }
}

inventory::collect!(Registration);

/// Registers a stage type under its [`StageType::NAME`].
#[macro_export]
macro_rules! register_stage {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::stage::Registration::of::<$t>() }
    };
}

/// Every registered stage type, sorted by name.
pub fn registry() -> Vec<&'static Registration> {
    let mut all: Vec<_> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by_key(|r| r.name);
    all
}

/// The registered stage type called `name`.
pub fn lookup(name: &str) -> Option<&'static Registration> {
    inventory::iter::<Registration>.into_iter().find(|r| r.name == name)
}

/// The parameters' defaults as JSON, where every parameter has one.
pub fn defaults_of(r: &Registration) -> Option<serde_json::Value> {
    let empty = Node::from_json(&serde_json::json!({}));
    (r.decode)(&empty).ok().map(|p| p.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
