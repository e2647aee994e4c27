//! Pipeline files that once crashed, aborted or stalled `eegd validate`/`run`: each is now a
//! positioned error and exit code 2. The bounds are `pipeline::topology::limits`.
use pipeline::topology::limits;
use std::process::{Command, Output};

fn eegd(args: &[&str], src: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, src).unwrap();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_eegd"))
        .args(args)
        .arg(&file)
        .args(if args[0] == "run" { &["--duration", "0.2"][..] } else { &[][..] })
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts exit code 2 and a `p.yaml:LINE:COL: error:` line containing `part`.
fn assert_refused(args: &[&str], src: &str, line: usize, part: &str) {
    let (code, err) = eegd(args, src);
    assert_eq!(code, 2, "{args:?}: {err}");
    let prefix = format!("p.yaml:{line}:");
    assert!(
        err.lines().any(|l| l.contains(&prefix) && l.contains("error:") && l.contains(part)),
        "{args:?}: no `{prefix}` error with {part:?} in:\n{err}"
    );
}

const MISTYPED_INPUT: [(&str, &str); 3] =
    [("csv_sink", "path: x.csv"), ("bdf_sink", "path: x.bdf"), ("edf_sink", "path: x.edf")];

#[test]
fn a_sink_with_a_mistyped_input_is_an_error_not_a_panic() {
    for (sink, params) in MISTYPED_INPUT {
        let src = format!(
            "stages:\n  - emulator: {{ channels: 4, rate: 250 }}\n  - {sink}: {{ inputs: [emulatr], {params} }}\n"
        );
        for cmd in ["validate", "run"] {
            assert_refused(&[cmd], &src, 3, "unknown input `emulatr`; did you mean `emulator`?");
        }
    }
}

#[test]
fn a_first_stage_that_needs_an_input_is_an_error_not_a_panic() {
    // Found by `fuzz_api.rs`: the stage was built with no input and indexed it.
    for stage in ["notch: {}", "align_and_zip: {}", "csv_sink: { path: x.csv }"] {
        assert_refused(&["validate"], &format!("stages:\n  - {stage}\n"), 2, "needs");
    }
}

#[test]
fn a_sink_with_an_empty_inputs_list_is_an_error() {
    let src =
        "stages:\n  - emulator: { channels: 4, rate: 250 }\n  - csv_sink: { inputs: [], path: x.csv }\n";
    assert_refused(&["validate"], src, 3, "`inputs` is empty");
}

#[test]
fn a_huge_pool_is_refused_where_it_is_written() {
    let src = "stages:\n  - emulator: { channels: 4, rate: 250 }\n  - null_sink:\nruntime:\n  pool_packets: 4000000000\n";
    assert_refused(&["validate"], src, 5, "pool_packets");
    assert_refused(&["run"], src, 5, "pool_packets");
    let src =
        "stages:\n  - emulator: { channels: 4, rate: 250 }\n  - null_sink:\nruntime:\n  pool_packets: 4e9\n";
    assert_refused(&["validate"], src, 5, "pool_packets");
}

fn chain(gains: usize) -> String {
    let mut src = String::from("stages:\n  - emulator: { channels: 4, rate: 250 }\n  - to_voltage:\n");
    for k in 0..gains {
        src.push_str(&format!("  - gain: {{ factor: 1.0, name: g{k} }}\n"));
    }
    src.push_str("  - null_sink:\n");
    src
}

#[test]
fn a_six_thousand_stage_chain_is_refused_at_the_first_stage_over() {
    // Line 2 is the first stage, so stage k (0-based) is on line k + 2.
    assert_refused(&["validate"], &chain(6000), limits::MAX_STAGES + 2, "a pipeline may have at most 256");
    assert_refused(&["run"], &chain(6000), limits::MAX_STAGES + 2, "at most 256");
}

#[test]
fn a_chain_at_the_stage_limit_runs() {
    let src = chain(limits::MAX_STAGES - 3);
    let (code, err) = eegd(&["validate"], &src);
    assert_eq!(code, 0, "{err}");
    let (code, err) = eegd(&["run"], &src);
    assert_eq!(code, 0, "{}", err.lines().take(5).collect::<Vec<_>>().join("\n"));
}

#[test]
fn too_many_sinks_files_or_groups_are_refused() {
    let mut src = String::from("stages:\n  - emulator: { channels: 4, rate: 250 }\n");
    for k in 0..=limits::MAX_SINKS {
        src.push_str(&format!("  - null_sink: {{ name: n{k}, inputs: emulator }}\n"));
    }
    let part = format!("at most {} sink stages", limits::MAX_SINKS);
    assert_refused(&["validate"], &src, limits::MAX_SINKS + 3, &part);

    let mut src = String::from("stages:\n  - emulator: { channels: 4, rate: 250 }\n");
    for k in 0..=limits::MAX_FILES {
        src.push_str(&format!("  - csv_sink: {{ name: c{k}, inputs: emulator, path: c{k}.csv }}\n"));
    }
    assert_refused(&["validate"], &src, limits::MAX_FILES + 3, "stages that open a file");

    let mut src = String::from("stages:\n  - emulator: { channels: 4, rate: 250 }\n");
    for k in 0..=limits::MAX_GROUPS {
        src.push_str(&format!("  - null_sink: {{ name: n{k}, inputs: emulator, group: g{k} }}\n"));
    }
    // The source's own group is the first, so the group of sink MAX_GROUPS - 1 is one over.
    let part = format!("more than {} thread groups", limits::MAX_GROUPS);
    assert_refused(&["validate"], &src, limits::MAX_GROUPS + 2, &part);
}

#[test]
fn yaml_bombs_are_refused() {
    // Anchors used as mapping keys, expanding to 10^9 values.
    let mut bomb = String::from("stages: [ { null_sink: {} } ]\na0: &a0 [x,x,x,x,x,x,x,x]\n");
    for level in 1..10 {
        let items: Vec<String> = (0..8).map(|k| format!("*a{} : {k}", level - 1)).collect();
        bomb.push_str(&format!("a{level}: &a{level} {{{}}}\n", items.join(",")));
    }
    assert!(bomb.len() < 1000);
    let (code, err) = eegd(&["validate"], &bomb);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("aliases expanded"), "{err}");

    // ~10 KB of nesting.
    let nested = format!("stages: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let (code, err) = eegd(&["validate"], &nested);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.yaml:1:"), "{err}");

    // 2,000 repeated keys: every one reported, from one parse.
    let mut dups = String::from("stages:\n  - emulator: { channels: 4, rate: 250 }\n  - null_sink:\n");
    for k in 0..2000 {
        dups.push_str(&format!("runtime: {{ queue_capacity: {} }}\n", k + 1));
    }
    let (code, err) = eegd(&["validate"], &dups);
    assert_eq!(code, 2);
    assert_eq!(err.matches("duplicate key `runtime`").count(), 1999, "{}", &err[..err.len().min(500)]);

    let big =
        format!("stages: [ {{ null_sink: {{ name: \"{}\" }} }} ]\n", "n".repeat(limits::MAX_FILE_BYTES));
    assert_refused(&["validate"], &big, 1, "at most 1 MiB");
}

#[test]
fn file_source_refuses_devices_and_fifos_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in ["/dev/zero".to_string(), "/dev/zero.bdf".to_string(), fifo.display().to_string()] {
        let src = format!("stages:\n  - file_source: {{ path: \"{path}\" }}\n  - null_sink: {{}}\n");
        for cmd in ["validate", "run"] {
            let (code, err) = eegd(&[cmd], &src);
            assert_eq!(code, 2, "{cmd} {path}: {err}");
            assert!(
                err.contains("p.yaml:2:")
                    && (err.contains("not a regular file") || err.contains("cannot open")),
                "{err}"
            );
        }
    }
}
