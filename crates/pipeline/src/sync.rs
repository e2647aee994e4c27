//! The synchronisation primitives the data plane uses, swapped for loom's under `--cfg loom` so
//! the model checker can explore every interleaving of the pool, the wake protocol and the
//! edit hand-over.
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

/// An `UnsafeCell` with loom's closure-based API, so the same code runs under the model.
#[cfg(not(loom))]
pub(crate) struct Cell<T>(pub(crate) std::cell::UnsafeCell<T>);
#[cfg(not(loom))]
impl<T> Cell<T> {
    pub(crate) fn new(v: T) -> Self {
        Cell(std::cell::UnsafeCell::new(v))
    }
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell as Cell;
