//! `websocket_sink`: hands packets to the broker for WebSocket clients; never waits for them.
use crate::broker::{Broker, Topic};
use pipeline::stage::{BuildCx, ErrorPolicy, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn d_topic() -> String {
    "eeg".into()
}

/// Parameters of `websocket_sink`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketSinkParams {
    /// The topic clients subscribe to (`/ws/data?topic=…`), default `eeg`.
    #[serde(default = "d_topic")]
    pub topic: String,
    /// Most packets per second handed on; the rest are skipped whole (default: all).
    #[serde(default)]
    #[schemars(range(min = 0.1, max = 10000.0))]
    pub max_rate_hz: Option<f64>,
}

/// Publishes packets to a broker topic.
pub struct WebsocketSink {
    topic: Arc<Topic>,
    min_gap_ns: i64,
    last_ts: Option<i64>,
}

impl Stage for WebsocketSink {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let ts = pkt.header().timestamp_ns;
        if let Some(last) = self.last_ts {
            if ts - last < self.min_gap_ns && ts >= last {
                cx.count_drop(1);
                return Ok(());
            }
        }
        self.last_ts = Some(ts);
        self.topic.publish(pkt);
        Ok(())
    }
}

impl StageType for WebsocketSink {
    type Params = WebsocketSinkParams;
    const NAME: &'static str = "websocket_sink";
    const ROLE: Role = Role::Sink;
    const ACCEPTS: &'static [Kind] = &[Kind::Voltage, Kind::Spectrum, Kind::BandPower];
    const ON_ERROR: ErrorPolicy = ErrorPolicy::SkipPacket;
    const DOC: &'static str = "Hands packets to the daemon's WebSocket broker under `topic`; slow clients \
        lose frames (counted), the pipeline never waits.\n\nInputs: voltage, spectrum or band powers. Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - websocket_sink: { topic: eeg, max_rate_hz: 60 }\n";

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let min_gap_ns = p.max_rate_hz.map(|r| (1e9 / r) as i64).unwrap_or(0);
        Ok((WebsocketSink { topic: Broker::global().topic(&p.topic), min_gap_ns, last_ts: None }, None))
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        if p.topic != self.topic.name {
            return Err(ParamError::new(
                "topic",
                "the topic cannot change while running; restart the pipeline",
            ));
        }
        self.min_gap_ns = p.max_rate_hz.map(|r| (1e9 / r) as i64).unwrap_or(0);
        Ok(())
    }
}

pipeline::register_stage!(WebsocketSink);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::Header;

    #[test]
    fn max_rate_skips_whole_packets_and_topic_gets_the_rest() {
        let input = StreamInfo {
            kind: Kind::Voltage,
            rate: 1000.0,
            channels: 1,
            max_samples: 1,
            meta: Default::default(),
        };
        let mut h = Harness::new(
            "websocket_sink",
            serde_json::json!({"topic": "t-rate", "max_rate_hz": 10}),
            &[input],
            64,
        )
        .unwrap();
        let topic = Broker::global().topic("t-rate");
        topic.subscribe(None);
        let mut got = 0;
        for i in 0..50i64 {
            let hdr = Header {
                kind: Kind::Voltage,
                channels: 1,
                samples: 1,
                timestamp_ns: i * 10_000_000,
                ..Header::default()
            };
            h.push(0, h.packet_f32(hdr, &[0.0])).unwrap();
            while topic.pop().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 5, "50 packets over 0.5 s at 10 Hz");
        assert_eq!(h.stats().drops.load(std::sync::atomic::Ordering::Relaxed), 45);
    }
}
