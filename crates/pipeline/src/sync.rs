//! The synchronisation primitives the data plane uses, swapped for loom's under `--cfg loom` so
//! the model checker can explore every interleaving of the pool and the wake protocol.
#[cfg(loom)]
pub(crate) use loom::{
    sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    sync::Arc,
    thread,
};
#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    sync::Arc,
    thread,
};
