//! Hardware trigger markers to the control clients: one thread, subscribed to the marker hub,
//! turns each trigger marker into a `marker` event on `/ws/control` (with `origin: "trigger"`),
//! so the live view can draw it on its sample.
//!
//! The thread parks until a trigger is posted (the hub wakes it: no polling); the source that
//! posts never waits for it. Markers typed through `POST /api/markers` are pushed by the
//! controller itself and do not pass here.
use crate::daemon::control::Controller;
use pipeline::wake::Waker;
use serde_json::json;
use stages::markers::{MarkerHub, Origin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The forwarding thread.
pub struct TriggerEvents {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TriggerEvents {
    /// Starts the thread; it runs `setup` first. Subscribed when this returns.
    pub fn start(ctl: Arc<Controller>, setup: impl FnOnce() + Send + 'static) -> TriggerEvents {
        let stop = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Waker::new());
        let (s, w) = (stop.clone(), waker.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let t = std::thread::Builder::new()
            .name("eegd-triggers".into())
            .spawn(move || {
                setup();
                w.bind_current();
                let sub = MarkerHub::global().subscribe_waking(w.clone());
                let _ = ready_tx.send(());
                while !s.load(Ordering::Relaxed) {
                    while let Some(m) = sub.pop() {
                        if m.origin != Origin::Trigger {
                            continue;
                        }
                        ctl.push(json!({ "event": "marker", "marker": {
                            "label": &*m.text, "timestamp_ns": m.timestamp_ns, "origin": m.origin.name(),
                        }}));
                    }
                    w.wait_until(|| s.load(Ordering::Relaxed) || !sub.is_empty());
                }
                MarkerHub::global().unsubscribe(&sub);
            })
            .expect("spawning the trigger events thread");
        let _ = ready_rx.recv();
        TriggerEvents { stop, waker, thread: Mutex::new(Some(t)) }
    }

    /// Stops the thread and waits for it.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}
