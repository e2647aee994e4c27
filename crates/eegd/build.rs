//! The UI and the ready-made pipelines are built into the binary (`include_dir!`): rebuild when
//! they change.
fn main() {
    println!("cargo:rerun-if-changed=../../ui");
    println!("cargo:rerun-if-changed=../../pipelines");
}
