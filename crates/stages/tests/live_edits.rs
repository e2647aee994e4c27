//! Live edits on a running pipeline: what they refuse, and what they keep running.
use pipeline::edit::{stage_from_text, Applied, EditError};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stats::StageState;
use pipeline::testing::wait_packets_in;
use pipeline::topology::graph::plan;
use std::sync::atomic::Ordering;

const PIPELINE: &str = "
stages:
  - emulator: { channels: 4, rate: 1000, batch: 10 }
  - to_voltage: {}
  - bandpass: { low_hz: 1, high_hz: 40 }
  - null_sink: { name: view }
  - downsample: { inputs: [bandpass], factor: 4 }
  - null_sink: { name: slow }
";

fn start() -> Pipeline {
    stages::link();
    let p = Pipeline::start(plan("live_edits", PIPELINE).expect("valid pipeline")).expect("starts");
    let view = p.shared().stage("view").unwrap().stats;
    wait_packets_in(&[&view], 5);
    p
}

fn decl(src: &str) -> pipeline::topology::file::StageDecl {
    stage_from_text("edit", src).expect("a stage item")
}

#[test]
fn removing_a_stage_that_feeds_others_needs_cascade_and_names_them() {
    let p = start();
    let sh = p.shared().clone();
    match sh.remove_stage("bandpass", false) {
        Err(EditError::HasDependants { stage, dependants }) => {
            assert_eq!(stage, "bandpass");
            assert_eq!(dependants, ["view", "downsample", "slow"]);
        }
        other => panic!("expected HasDependants, got {other:?}"),
    }
    assert_eq!(sh.stages().len(), 6, "nothing removed");
    let r = sh.remove_stage("downsample", true).unwrap();
    assert_eq!(
        r,
        Applied::Remove { stage: "downsample".into(), removed: vec!["downsample".into(), "slow".into()] }
    );
    let view = sh.stage("view").unwrap().stats;
    let n = view.packets_in.load(Ordering::Relaxed);
    wait_packets_in(&[&view], n + 5);
    assert!(matches!(sh.remove_stage("nothing", false), Err(EditError::UnknownStage(_))));
    assert!(matches!(sh.remove_stage("emulator", true), Err(EditError::Source(_))));
    assert_eq!(p.join(), PipelineState::Stopped);
}

#[test]
fn replacing_bandpass_with_highpass_keeps_its_consumers_fed() {
    let p = start();
    let sh = p.shared().clone();
    let r = sh.replace_stage("bandpass", &decl("highpass: { hz: 0.5 }")).unwrap();
    assert!(matches!(r, Applied::Replace { ref type_name, .. } if type_name == "highpass"), "{r:?}");
    assert_eq!(sh.stage("bandpass").unwrap().type_name, "highpass");
    let (view, slow) = (sh.stage("view").unwrap().stats, sh.stage("slow").unwrap().stats);
    let (a, b) = (view.packets_in.load(Ordering::Relaxed), slow.packets_in.load(Ordering::Relaxed));
    wait_packets_in(&[&view], a + 10);
    wait_packets_in(&[&slow], b + 3);
    // A transform for a sink does not fit.
    let e = sh.replace_stage("bandpass", &decl("null_sink: {}")).unwrap_err();
    assert!(e.to_string().contains("a replacement must give what its consumers take"), "{e}");
    assert_eq!(p.join(), PipelineState::Stopped);
}

#[test]
fn an_invalid_add_says_where_and_leaves_the_pipeline_untouched() {
    let p = start();
    let sh = p.shared().clone();
    let cases = [
        ("fftt: { inputs: [bandpass] }", "1:1: unknown stage type `fftt`; did you mean `fft`?"),
        ("fft: { size: 256, inputs: [bandpas] }", "unknown input `bandpas`; did you mean `bandpass`?"),
        ("fft: { size: 256, inputs: [view] }", "a sink, which gives no output"),
        (
            "band_power: { inputs: [bandpass] }",
            "`bandpass` gives voltage but `band_power` (band_power) takes only spectrum",
        ),
        ("notch: { hz: 50, name: view, inputs: [bandpass] }", "a stage named `view` is running already"),
        ("fft: { size: 255, inputs: [bandpass] }", "`fft`: "),
    ];
    for (src, want) in cases {
        match sh.add_stage(&decl(src)) {
            Err(EditError::Invalid(d)) => {
                let text = d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
                assert!(text.contains(want), "{src}: {text}");
                assert!(d.iter().all(|d| d.span.is_some()), "{src}: every error has a position: {text}");
            }
            other => panic!("{src}: expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(sh.stages().len(), 6);
    let view = sh.stage("view").unwrap().stats;
    let n = view.packets_in.load(Ordering::Relaxed);
    wait_packets_in(&[&view], n + 5);
    assert_eq!(p.join(), PipelineState::Stopped);
}

#[test]
fn a_locked_recorder_refuses_edits_upstream_of_it() {
    let p = start();
    let sh = p.shared().clone();
    assert!(sh.set_locked("slow", true));
    assert!(matches!(
        sh.replace_stage("bandpass", &decl("highpass: { hz: 1 }")),
        Err(EditError::Locked { .. })
    ));
    assert!(matches!(sh.remove_stage("slow", false), Err(EditError::Locked { .. })));
    // A branch beside it is fine.
    sh.add_stage(&decl("null_sink: { name: extra, inputs: [to_voltage] }")).unwrap();
    sh.remove_stage("extra", false).unwrap();
    assert!(sh.set_locked("slow", false));
    assert_eq!(p.join(), PipelineState::Stopped);
}

#[test]
fn a_removed_file_sink_is_drained_and_finished_on_its_own_thread() {
    let p = start();
    let sh = p.shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("branch.csv");
    let src = format!("csv_sink: {{ path: {:?}, inputs: [bandpass] }}", path.display().to_string());
    let r = sh.add_stage(&decl(&src)).unwrap();
    assert!(matches!(r, Applied::Add { ref group, .. } if group == "io"), "{r:?}");
    let csv = sh.stage("csv_sink").unwrap().stats;
    wait_packets_in(&[&csv], 20);
    // A recording sink locks itself: removing it while it records is refused.
    assert!(matches!(sh.remove_stage("csv_sink", false), Err(EditError::Locked { .. })));
    assert!(sh.set_locked("csv_sink", false));
    sh.remove_stage("csv_sink", false).unwrap();
    assert_eq!(csv.state(), StageState::Finished);
    let taken = csv.packets_in.load(Ordering::Relaxed);
    let text = std::fs::read_to_string(&path).unwrap();
    // A header, then one row per sample of every packet it took (10 samples each).
    assert_eq!(text.lines().count() as u64, 1 + 10 * taken, "every packet it took is in the file");
    assert!(sh.stage("csv_sink").is_none());
    assert_eq!(p.join(), PipelineState::Stopped);
}
