//! Without liblsl, a pipeline with an LSL stage does not start (exit 2, the message says how to
//! install liblsl), and a pipeline without one runs as ever: liblsl is never loaded for it.
use std::process::Command;

fn eegd_without_liblsl(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eegd"));
    c.env("EEGD_LIBLSL", dir.join("no-such-liblsl.so")).current_dir(dir);
    c
}

#[test]
fn an_lsl_pipeline_without_liblsl_exits_2_saying_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lsl.yaml");
    std::fs::write(&file, "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - lsl_sink: { name: box1 }\n")
        .unwrap();
    let out = eegd_without_liblsl(dir.path()).arg("run").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`box1` (lsl_sink): liblsl (Lab Streaming Layer) is not available"), "{err}");
    assert!(err.contains("EEGD_LIBLSL") && err.contains("pip install pylsl"), "{err}");
    // The file itself is valid: `validate` does not need liblsl.
    let out = eegd_without_liblsl(dir.path()).arg("validate").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_pipeline_without_lsl_stages_runs_without_liblsl() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.yaml");
    std::fs::write(
        &file,
        "stages:\n  - emulator: { realtime: false, samples: 1000 }\n  - to_voltage: {}\n  - null_sink: {}\n",
    )
    .unwrap();
    let out = eegd_without_liblsl(dir.path()).arg("run").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
