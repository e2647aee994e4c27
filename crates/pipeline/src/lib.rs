//! eegd's data plane, pipeline files and stage API.
//!
//! This crate owns everything that moves packets: the pooled, reference-counted [`Packet`], the
//! bounded cross-thread [`queue`]s, the thread-per-group [`exec`]utor, the [`stage`] API with its
//! static registry, and the [`topology`] layer that turns a pipeline file into a checked graph.
//! It knows nothing of EEG semantics beyond the packet kinds, and nothing of HTTP.
//!
//! # Real-time contract
//! After a pipeline is started, the data path (source → stages → sinks, and every queue between
//! thread groups) never allocates, never takes a lock and never sleeps, except where a thread
//! waits for data or space in [`queue::Edge`] (it parks; a producer unparks it) and where a
//! source waits for its next sample. A test with a counting global allocator holds it to that.
//!
//! # Unsafe
//! The only `unsafe` code is in [`pool`] (the packet slots and their reference count) and in
//! `alloc_count` (a `GlobalAlloc` that forwards to the system allocator) and in [`handoff`] (the
//! one-shot answer of a live edit), each block with a
//! `// SAFETY:` comment; the pool is model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p
//! pipeline --test loom --release`) and run under Miri where the toolchain has it.
#![deny(unsafe_code)]

// Under `--cfg loom` only the concurrency core is built: the model checker runs `tests/loom.rs`.
#[cfg(not(loom))]
pub mod alloc_count;
#[cfg(not(loom))]
pub mod edit;
#[cfg(not(loom))]
pub mod exec;
pub mod handoff;
pub mod packet;
pub mod pool;
#[cfg(not(loom))]
pub mod queue;
#[cfg(not(loom))]
pub mod rt;
#[cfg(not(loom))]
pub mod stage;
pub mod stats;
pub mod stream;
mod sync;
#[cfg(not(loom))]
pub mod testing;
#[cfg(not(loom))]
pub mod topology;
pub mod wake;

pub use packet::{Header, Kind};
pub use pool::{Packet, Pool, PoolExhausted};
#[cfg(not(loom))]
pub use stage::{Context, Produce, Role, Stage, StageError, StageType};
pub use stream::{StreamInfo, StreamMeta};

#[doc(hidden)]
pub use inventory;
