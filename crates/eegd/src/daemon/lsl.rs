//! Lab Streaming Layer in the daemon and the CLI: the liblsl check a pipeline with LSL stages
//! needs before it starts.
use pipeline::topology::graph::Plan;

/// The stage types that need liblsl.
pub const LSL_STAGES: &[&str] = &["lsl_sink", "lsl_source"];

/// Does `plan` use liblsl? Then liblsl must load, or the pipeline does not start: the error
/// names the first LSL stage and says how to install liblsl. A plan without LSL stages never
/// loads it.
pub fn check_liblsl(plan: &Plan) -> Result<(), String> {
    let Some(s) = plan.stages.iter().find(|s| LSL_STAGES.contains(&s.type_name)) else { return Ok(()) };
    lsl::available().map_err(|e| format!("`{}` ({}): {e}", s.name, s.type_name))
}

use super::control::Controller;
use lsl::{ClockMap, Format, Outlet};
use pipeline::wake::Waker;
use serde_json::json;
use stages::markers::{Marker, MarkerHub};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The LSL marker outlet `--lsl-markers NAME` republishes every marker on.
pub struct MarkerOutlet {
    outlet: Outlet,
    clock: ClockMap,
}

impl MarkerOutlet {
    /// A string stream of type `Markers` called `name`, with a `source_id` stable across restarts.
    pub fn open(name: &str) -> Result<MarkerOutlet, lsl::LslError> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let sid = format!("eegd-markers@{}/{name}", host.trim());
        let info = lsl::StreamInfo::new(name, "Markers", 1, 0.0, Format::String, &sid)?;
        let outlet = Outlet::new(&info, 60)?;
        let clock = ClockMap::measure(|| lsl::local_clock().unwrap_or(0.0), lsl::clock::unix_now_ns);
        Ok(MarkerOutlet { outlet, clock })
    }

    fn publish(&mut self, m: &Marker) {
        if let Err(e) = self.outlet.push_string(&m.text, self.clock.to_lsl(m.timestamp_ns)) {
            tracing::warn!(error = %e, "LSL marker outlet");
        }
    }
}

/// The daemon's view of every marker: whoever posts one to the [`MarkerHub`] (the page and
/// `POST /api/markers`, an `lsl_source` of markers, a replayed file), the tap shows it to
/// control clients (`{"event": "marker", "marker": {"label", "timestamp_ns", "source": "hub"}}`;
/// the hub counts it, `eegd_markers_total`), and republishes it on the LSL marker outlet when there is one.
pub struct MarkerTap {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl MarkerTap {
    pub fn start(ctl: Arc<Controller>, mut outlet: Option<MarkerOutlet>) -> std::io::Result<MarkerTap> {
        let (stop, waker) = (Arc::new(AtomicBool::new(false)), Arc::new(Waker::new()));
        let sub = MarkerHub::global().subscribe_waking(waker.clone());
        let (s, w) = (stop.clone(), waker.clone());
        let thread = std::thread::Builder::new().name("eegd-markers".into()).spawn(move || {
            w.bind_current();
            loop {
                w.wait_until(|| !sub.is_empty() || s.load(Ordering::Acquire));
                while let Some(m) = sub.pop() {
                    ctl.push(json!({ "event": "marker", "marker": marker_json(&m) }));
                    if let Some(o) = outlet.as_mut() {
                        o.publish(&m);
                    }
                }
                if s.load(Ordering::Acquire) {
                    MarkerHub::global().unsubscribe(&sub);
                    return;
                }
            }
        })?;
        Ok(MarkerTap { stop, waker, thread: Some(thread) })
    }

    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn marker_json(m: &Marker) -> serde_json::Value {
    json!({ "label": &*m.text, "timestamp_ns": m.timestamp_ns, "source": "hub" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_event_carries_label_and_time() {
        let v = marker_json(&Marker::new(1_700_000_000_123_456_789, "stim A"));
        assert_eq!(
            v,
            json!({"label": "stim A", "timestamp_ns": 1_700_000_000_123_456_789i64, "source": "hub"})
        );
    }
}
