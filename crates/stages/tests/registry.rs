//! The registry holds exactly the built-in stages, and every stage's documented example is a
//! valid pipeline.
use pipeline::stage::registry;
use pipeline::topology::graph::plan;

#[test]
fn registry_lists_every_built_in_stage() {
    stages::link();
    let names: Vec<&str> = registry().iter().map(|r| r.name).collect();
    assert_eq!(names, stages::BUILT_IN);
}

#[test]
fn every_example_validates() {
    // The examples that replay a file read its head when the graph is built.
    std::fs::write("/tmp/eegd-example.csv", "timestamp,Fp1,Fp2\n1.000000,1,2\n1.004000,3,4\n").unwrap();
    for r in registry() {
        if let Err(d) = plan(&format!("{} example", r.name), r.example) {
            panic!("{d}");
        }
        assert!(r.example.contains(r.name), "the example of `{}` uses it", r.name);
        assert!(!r.doc.is_empty());
    }
}
