//! docs/stages.md is `eegd stages --markdown`: this fails when a stage, a parameter or a
//! parameter's doc changes without the reference being regenerated.
use std::process::Command;

#[test]
fn committed_stage_reference_matches_the_registry() {
    let out = Command::new(env!("CARGO_BIN_EXE_eegd")).args(["stages", "--markdown"]).output().unwrap();
    assert!(out.status.success(), "eegd stages --markdown failed: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/stages.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/stages.md is out of date (first difference at line {}: committed {:?}, generated {:?}).\n\
             Regenerate it with: cargo run -q -p eegd -- stages --markdown > docs/stages.md",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}
