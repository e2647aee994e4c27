//! Two sources in one pipeline carry distinct stream ids, in their packets' headers and in
//! their stream metadata.
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::topology::graph::plan;
use stages::broker::Broker;

const PIPELINE: &str = "
stages:
  - emulator: { name: left, channels: 2, rate: 250, batch: 5, samples: 10, realtime: false }
  - to_voltage: { name: left_uv }
  - websocket_sink: { name: left_ws, topic: sources-left }
  - emulator: { name: right, channels: 3, rate: 500, batch: 5, samples: 10, realtime: false }
  - to_voltage: { name: right_uv }
  - websocket_sink: { name: right_ws, topic: sources-right }
";

#[test]
fn two_emulators_get_distinct_stream_ids() {
    stages::link();
    let plan = plan("sources", PIPELINE).expect("valid pipeline");
    let meta_id =
        |name: &str| plan.stages[plan.index_of(name).unwrap()].output.as_ref().unwrap().meta.stream_id;
    let (left, right) = (meta_id("left"), meta_id("right"));
    assert_ne!(left, right);
    let topics = [Broker::global().topic("sources-left"), Broker::global().topic("sources-right")];
    topics.iter().for_each(|t| t.subscribe(None));
    let p = Pipeline::start(plan).expect("starts");
    assert!(p.shared().wait_finished(Some(std::time::Duration::from_secs(20))), "the sources end");
    assert_eq!(p.join(), PipelineState::Stopped);
    for (topic, id, channels) in [(&topics[0], left, 2), (&topics[1], right, 3)] {
        let mut n = 0;
        while let Some(pkt) = topic.pop() {
            let h = pkt.header();
            assert_eq!((h.stream_id, h.meta.stream_id, h.channels), (id, id, channels));
            n += 1;
        }
        assert_eq!(n, 2, "two packets of five samples from `{}`", topic.name);
    }
}
