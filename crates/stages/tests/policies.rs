//! `on_error` policies with a stage that panics, run through the real executor.
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::stats::StageState;
use pipeline::topology::graph::plan;
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Parameters of the test stage `panic_after`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PanicAfterParams {
    /// Packets passed on before the panic.
    after: u64,
}

/// Passes packets on, then panics on packet `after`.
struct PanicAfter {
    after: u64,
    seen: u64,
}

impl Stage for PanicAfter {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        self.seen += 1;
        if self.seen > self.after {
            panic!("boom at packet {}", self.seen);
        }
        cx.emit(pkt);
        Ok(())
    }
}

impl StageType for PanicAfter {
    type Params = PanicAfterParams;
    const NAME: &'static str = "panic_after";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = Kind::ANY;
    const DOC: &'static str = "Test stage: panics after `after` packets.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - panic_after: { after: 1 }\n  - null_sink: {}\n";
    fn build(
        p: &Self::Params,
        i: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        Ok((PanicAfter { after: p.after, seen: 0 }, Some(i[0].clone())))
    }
}
pipeline::register_stage!(PanicAfter);

fn pipeline(policy: &str) -> String {
    format!(
        "stages:
  - emulator: {{ channels: 4, rate: 1000, batch: 4, realtime: false }}
  - to_voltage: {{}}
  - panic_after: {{ after: 10, on_error: {policy} }}
  - null_sink: {{ name: after_panic }}
  - null_sink: {{ name: other_branch, inputs: [to_voltage] }}
"
    )
}

fn wait_packets(p: &Pipeline, stage: &str, n: u64) {
    let stats = p.shared().stage(stage).unwrap().stats.clone();
    while stats.packets_in.load(Ordering::Relaxed) < n && !p.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn drain_then_stop_keeps_the_other_branch_running() {
    stages::link();
    let p = Pipeline::start(plan("t", &pipeline("drain_then_stop")).unwrap()).unwrap();
    wait_packets(&p, "other_branch", 5_000);
    let shared = p.shared().clone();
    let state = p.join();
    assert_eq!(state, PipelineState::Stopped, "a drain_then_stop error does not fail the pipeline");
    let get = |n: &str| shared.stage(n).unwrap().stats.clone();
    let (src, bad, after, other) =
        (get("emulator"), get("panic_after"), get("after_panic"), get("other_branch"));
    assert_eq!(bad.state(), StageState::Stopped);
    assert_eq!(bad.errors.load(Ordering::Relaxed), 1);
    assert!(bad.last_error().unwrap().contains("boom at packet 11"));
    assert_eq!(after.packets_in.load(Ordering::Relaxed), 10, "what only it feeds stopped too");
    assert_eq!(after.state(), StageState::Finished);
    let produced = src.packets_out.load(Ordering::Relaxed);
    assert!(produced >= 5_000);
    assert_eq!(other.packets_in.load(Ordering::Relaxed), produced, "the other branch got every packet");
    let dropped = bad.drops.load(Ordering::Relaxed);
    assert_eq!(dropped, produced - 10, "the failed packet and every later one are counted as drops");
}

#[test]
fn fatal_fails_the_pipeline_with_the_message() {
    stages::link();
    let p = Pipeline::start(plan("t", &pipeline("fatal")).unwrap()).unwrap();
    assert!(
        p.shared().wait_finished(Some(Duration::from_secs(30))),
        "a fatal error stops the pipeline by itself"
    );
    let shared = p.shared().clone();
    let state = p.join();
    match state {
        PipelineState::Failed(msg) => {
            assert!(msg.contains("panic_after") && msg.contains("boom at packet 11"), "{msg}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(shared.stage("panic_after").unwrap().stats.state(), StageState::Failed);
    let src = shared.stage("emulator").unwrap().stats.packets_out.load(Ordering::Relaxed);
    let other = shared.stage("other_branch").unwrap().stats.packets_in.load(Ordering::Relaxed);
    assert_eq!(other, src, "the stop drained what the source had produced");
}

#[test]
fn skip_packet_drops_and_goes_on() {
    stages::link();
    let p = Pipeline::start(plan("t", &pipeline("skip_packet")).unwrap()).unwrap();
    wait_packets(&p, "other_branch", 2_000);
    let shared = p.shared().clone();
    assert_eq!(p.join(), PipelineState::Stopped);
    let bad = shared.stage("panic_after").unwrap().stats.clone();
    assert_eq!(bad.state(), StageState::Finished);
    assert!(bad.errors.load(Ordering::Relaxed) > 1, "every packet after the tenth panics and is skipped");
    assert_eq!(bad.errors.load(Ordering::Relaxed), bad.drops.load(Ordering::Relaxed));
}
