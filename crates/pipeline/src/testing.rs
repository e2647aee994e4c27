//! Runs one stage with no executor, threads or queues: for unit tests and micro-benchmarks.
use crate::pool::{Packet, Pool};
use crate::stage::{lookup, BuildCx, Context, DynStage, Produce, StageError};
use crate::stats::StageStats;
use crate::stream::StreamInfo;
use crate::topology::yaml::Node;
use std::sync::atomic::AtomicBool;

/// Waits until every one of `stages` has taken at least `n` packets, for tests that watch a
/// running pipeline (polls each millisecond).
pub fn wait_packets_in(stages: &[&StageStats], n: u64) {
    while stages.iter().any(|s| s.packets_in.load(std::sync::atomic::Ordering::Relaxed) < n) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A voltage stream of `channels` × up to `max_samples` per packet at `rate`, default metadata.
pub fn voltage_stream(channels: usize, rate: f64, max_samples: usize) -> StreamInfo {
    StreamInfo { kind: crate::Kind::Voltage, rate, channels, max_samples, meta: Default::default() }
}

/// The header of a voltage packet of `channels` × `samples` at `rate`, everything else default.
pub fn voltage_header(channels: usize, samples: usize, rate: f64) -> crate::Header {
    crate::Header {
        kind: crate::Kind::Voltage,
        channels: channels as u32,
        samples: samples as u32,
        rate,
        ..crate::Header::default()
    }
}

/// One stage, built from its registered type and JSON parameters, fed by hand.
pub struct Harness {
    stage: Box<dyn DynStage>,
    pool: Pool,
    out: Vec<Packet>,
    stop: AtomicBool,
    stats: StageStats,
    /// The stream the stage gives (sinks: `None`).
    pub output: Option<StreamInfo>,
}

impl Harness {
    /// Builds stage type `type_name` with `params` for `inputs`; a pool of `packets` packets
    /// large enough for every input and the output.
    pub fn new(
        type_name: &str,
        params: serde_json::Value,
        inputs: &[StreamInfo],
        packets: usize,
    ) -> Result<Harness, String> {
        let reg = lookup(type_name).ok_or_else(|| format!("no stage type `{type_name}`"))?;
        let node = Node::from_json(&params);
        let p = (reg.decode)(&node)
            .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?;
        let (stage, output) = p
            .build(inputs, &BuildCx { name: type_name, stream_id: 0, upstream: &[] })
            .map_err(|e| format!("{}: {}", e.param, e.message))?;
        let words = inputs.iter().chain(output.iter()).map(|s| s.words()).max().unwrap_or(1).max(1);
        Ok(Harness {
            stage,
            pool: Pool::new(packets, words),
            out: Vec::new(),
            stop: AtomicBool::new(false),
            stats: StageStats::default(),
            output,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn stats(&self) -> &StageStats {
        &self.stats
    }

    pub fn stage(&mut self) -> &mut dyn DynStage {
        &mut *self.stage
    }

    fn cx(&mut self) -> (&mut Box<dyn DynStage>, Context<'_>) {
        (
            &mut self.stage,
            Context { out: &mut self.out, pool: &self.pool, stop: &self.stop, stats: &self.stats },
        )
    }

    pub fn start(&mut self) -> Result<(), StageError> {
        self.stage.start()
    }

    /// Feeds one packet on `input`; returns what the stage emitted.
    pub fn push(&mut self, input: usize, pkt: Packet) -> Result<Vec<Packet>, StageError> {
        let (stage, mut cx) = self.cx();
        stage.process(input, pkt, &mut cx)?;
        Ok(self.out.drain(..).collect())
    }

    /// Calls a source's `produce` once; returns what it emitted.
    pub fn produce(&mut self) -> Result<(Produce, Vec<Packet>), StageError> {
        let (stage, mut cx) = self.cx();
        let r = stage.produce(&mut cx)?;
        Ok((r, self.out.drain(..).collect()))
    }

    /// Ends the input; returns what the stage emitted while finishing.
    pub fn finish(&mut self) -> Result<Vec<Packet>, StageError> {
        let (stage, mut cx) = self.cx();
        stage.finish(&mut cx)?;
        Ok(self.out.drain(..).collect())
    }

    /// A packet from the harness's pool with the given header and `f32` values.
    pub fn packet_f32(&self, header: crate::Header, values: &[f32]) -> Packet {
        let mut p = self.pool.acquire(header).expect("harness pool exhausted");
        p.make_mut().expect("fresh packet").f32s_mut().copy_from_slice(values);
        p
    }

    /// A packet from the harness's pool with the given header and `i32` values.
    pub fn packet_i32(&self, header: crate::Header, values: &[i32]) -> Packet {
        let mut p = self.pool.acquire(header).expect("harness pool exhausted");
        p.make_mut().expect("fresh packet").i32s_mut().copy_from_slice(values);
        p
    }
}
