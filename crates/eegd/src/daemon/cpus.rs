//! Where the server's threads run (HTTP, WebSocket, the broker): at a lower priority than the
//! pipeline, and on `--server-cpus` if given; otherwise on every CPU the process may use except
//! those the running pipeline pins a thread group to (`runtime.groups.<g>.cpu`). So pinning
//! the pipeline in its file is all it takes to keep clients off its core, and the server follows
//! when another pipeline pins other CPUs.
//!
//! Threads join with [`ServerCpus::enter`] as they start and leave as they end; a new pipeline's
//! pins move every one of them ([`ServerCpus::avoid`]).
use nix::unistd::{gettid, Pid};
use pipeline::rt::{allowed_cpus, set_thread_cpus};
use std::sync::{Arc, Mutex, MutexGuard};

pub struct ServerCpus {
    /// `--server-cpus`: the server stays there whatever the pipeline pins.
    fixed: Option<Vec<usize>>,
    /// The CPUs the process could use when the daemon started.
    all: Vec<usize>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The server's threads, by thread id.
    threads: Vec<Pid>,
    /// Where they may run now; empty: anywhere.
    cpus: Vec<usize>,
}

impl ServerCpus {
    pub fn new(fixed: Option<Vec<usize>>) -> Arc<ServerCpus> {
        let all = allowed_cpus();
        let cpus = fixed.clone().unwrap_or_default();
        Arc::new(ServerCpus { fixed, all, state: Mutex::new(State { threads: Vec::new(), cpus }) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets up the calling thread as a server thread: lower priority, confined like the others.
    pub fn enter(&self) {
        pipeline::rt::lower_priority();
        let mut state = self.lock();
        let tid = gettid();
        confine(tid, &state.cpus, &self.all);
        state.threads.push(tid);
    }

    /// Forgets the calling thread, which is ending.
    pub fn leave(&self) {
        let tid = gettid();
        self.lock().threads.retain(|t| *t != tid);
    }

    /// The running pipeline pins thread groups to `pinned` (none: it is stopped or pins
    /// nothing): moves every server thread off those CPUs, unless `--server-cpus` placed them,
    /// or the pins leave no CPU over.
    pub fn avoid(&self, pinned: &[usize]) {
        if self.fixed.is_some() {
            return;
        }
        let rest: Vec<usize> = self.all.iter().copied().filter(|c| !pinned.contains(c)).collect();
        let cpus = if rest.is_empty() || rest.len() == self.all.len() { Vec::new() } else { rest };
        let mut state = self.lock();
        if state.cpus == cpus {
            return;
        }
        tracing::info!(?cpus, pipeline = ?pinned, "Server threads moved (empty: every CPU)");
        for &tid in &state.threads {
            confine(tid, &cpus, &self.all);
        }
        state.cpus = cpus;
    }
}

/// Allows thread `tid` on `cpus` (empty: on `all`; both empty, as when the process's CPUs could
/// not be read: leaves it alone).
fn confine(tid: Pid, cpus: &[usize], all: &[usize]) {
    let list = if cpus.is_empty() { all } else { cpus };
    if list.is_empty() {
        return;
    }
    if let Err(e) = set_thread_cpus(tid, list) {
        tracing::warn!(?cpus, error = %e, "could not move a server thread; it runs where it was");
    }
}
