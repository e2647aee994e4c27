//! Two sources in one pipeline (two chips, or a chip and an emulator) keep distinct stream ids
//! from the source through every stage after it.
use pipeline::exec::Pipeline;
use pipeline::topology::graph::plan;
use stages::broker::Broker;
use std::collections::BTreeSet;

#[test]
fn two_sources_have_distinct_stream_ids_end_to_end() {
    stages::link();
    let yaml = "stages:
  - emulator: { name: chip_a, channels: 8, rate: 250, realtime: false }
  - to_voltage: { name: volts_a }
  - websocket_sink: { name: ws_a, topic: two_sources_a }
  - emulator: { name: chip_b, channels: 4, rate: 250, realtime: false, seed: 9 }
  - to_voltage: { name: volts_b }
  - websocket_sink: { name: ws_b, topic: two_sources_b }
";
    let (a, b) = (Broker::global().topic("two_sources_a"), Broker::global().topic("two_sources_b"));
    a.subscribe(None);
    b.subscribe(None);
    let plan = plan("two.yaml", yaml).unwrap_or_else(|d| panic!("{d}"));
    let declared: BTreeSet<u16> = ["volts_a", "volts_b"]
        .iter()
        .map(|n| plan.stages.iter().find(|s| s.name == *n).unwrap().output.as_ref().unwrap().meta.stream_id)
        .collect();
    assert_eq!(declared.len(), 2, "the two streams' metadata share a stream id");

    let pipeline = Pipeline::start(plan).unwrap();
    let (mut ids_a, mut ids_b) = (BTreeSet::new(), BTreeSet::new());
    while ids_a.is_empty() || ids_b.is_empty() {
        if let Some(p) = a.pop() {
            assert_eq!(p.header().channels, 8);
            assert_eq!(p.header().stream_id, p.header().meta.stream_id);
            ids_a.insert(p.header().stream_id);
        }
        if let Some(p) = b.pop() {
            assert_eq!(p.header().channels, 4);
            ids_b.insert(p.header().stream_id);
        }
        std::thread::yield_now();
    }
    pipeline.stop();
    pipeline.join();
    a.unsubscribe();
    b.unsubscribe();
    assert_eq!(ids_a.len(), 1);
    assert_eq!(ids_b.len(), 1);
    assert!(ids_a.is_disjoint(&ids_b), "both sources stamped stream id {ids_a:?}");
    assert_eq!(ids_a.union(&ids_b).copied().collect::<BTreeSet<_>>(), declared);
}
