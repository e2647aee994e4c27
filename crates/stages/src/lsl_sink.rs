//! `lsl_sink`: publishes a stream as a Lab Streaming Layer outlet of float32 samples.
//!
//! The pipeline never waits for LSL. On the data path the sink only copies the packet into one
//! of a fixed set of preallocated chunks (transposed to LSL's sample-major order, each sample
//! with its own LSL timestamp) and hands the chunk to the sink's own thread through a bounded
//! queue; when every chunk is taken it drops the oldest queued one and counts it. That thread
//! calls liblsl (which locks and allocates inside). No allocation, lock or system call on the
//! data path beyond one `unpark` when the LSL thread sleeps.
//!
//! Timestamps: the offset between eegd's clock (ns since the UNIX epoch, from the first DRDY +
//! n / rate) and `lsl_local_clock` is measured once at start; each sample's LSL timestamp is its
//! own acquisition time through that offset, never the time it is pushed.
//!
//! Stream layout: a time series (voltage or raw) is one LSL channel per eegd channel, one LSL
//! sample per eegd sample, at the stream's rate. A spectrum or band-power packet is one LSL
//! sample of `channels × bins` (or `channels × bands`) values, channel-major — value `k` is
//! channel `k / bins`, bin `k % bins` — at the spectra's rate; the description lists each
//! value's label (`Fp1:10Hz`, `Fp1:alpha`) and the frequency axis.
use lsl::{ClockMap, DescNode, Format, Outlet};
use pipeline::stage::{BuildCx, ParamError, Upstream};
use pipeline::wake::Waker;
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_queue::ArrayQueue;

/// Chunks between the data path and the LSL thread; more queued than this drops the oldest.
pub const CHUNKS: usize = 32;

/// Seconds of data liblsl keeps for a slow consumer.
const MAX_BUFFERED_S: i32 = 60;

/// The stream name when neither `stream_name` nor the stage's `name` says.
pub const DEFAULT_STREAM_NAME: &str = "eegd";

/// The LSL stream name: `stream_name`, else the stage's own name when the file gave it one
/// (a stage without a `name` is called by its type), else `default`.
pub fn stream_name(
    explicit: Option<&str>,
    stage: &str,
    type_name: &str,
    default: Option<&str>,
) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| (stage != type_name).then(|| stage.to_string()))
        .or(default.map(str::to_string))
}

/// Parameters of `lsl_sink`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LslSinkParams {
    /// The stream's name, which LSL programs resolve it by, when it is not the stage's `name`
    /// (default: the stage's `name` when the file gives one, else `eegd`).
    #[serde(default)]
    pub stream_name: Option<String>,
    /// The stream's content type (default `EEG`; `EEG-PSD` for spectra, `EEG-BandPower` for
    /// band powers).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Identifies the stream across restarts, so LabRecorder and inlets pick it up again
    /// (default `eegd@<hostname>/<stage name>`, the same every run on this machine).
    #[serde(default)]
    pub source_id: Option<String>,
}

/// One packet's worth of samples in LSL's order.
struct Chunk {
    data: Box<[f32]>,
    timestamps: Box<[f64]>,
    samples: usize,
}

/// What the data path and the LSL thread share.
struct Handoff {
    free: ArrayQueue<Box<Chunk>>,
    full: ArrayQueue<Box<Chunk>>,
    waker: Waker,
    stop: AtomicBool,
}

/// The stream's shape as LSL sees it.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// LSL channels per sample.
    channels: usize,
    /// LSL samples per packet at most.
    samples: usize,
    /// One LSL sample per packet (spectra, band powers) rather than one per eegd sample.
    per_packet: bool,
    rate: f64,
}

/// Publishes packets on an LSL outlet.
pub struct LslSink {
    name: String,
    source_id: String,
    type_: String,
    layout: Layout,
    desc: DescNode,
    clock: ClockMap,
    handoff: Arc<Handoff>,
    thread: Option<JoinHandle<()>>,
}

impl LslSink {
    /// Copies `pkt` into `c` in LSL order with LSL timestamps.
    fn fill(&self, pkt: &Packet, c: &mut Chunk) {
        let h = pkt.header();
        let (ch, n) = (h.channels as usize, h.samples as usize);
        let t0 = self.clock.to_lsl(h.timestamp_ns);
        let values: &[f32] = match h.kind {
            Kind::Raw => &[],
            _ => &pkt.f32s()[..h.len()],
        };
        if self.layout.per_packet {
            let k = values.len().min(c.data.len());
            c.data[..k].copy_from_slice(&values[..k]);
            c.data[k..].fill(f32::NAN);
            c.timestamps[0] = t0;
            c.samples = 1;
            return;
        }
        let n = n.min(self.layout.samples);
        let ch = ch.min(self.layout.channels);
        if h.kind == Kind::Raw {
            let raw = &pkt.i32s()[..h.len()];
            for s in 0..n {
                for k in 0..ch {
                    c.data[s * ch + k] = raw[k * h.samples as usize + s] as f32;
                }
            }
        } else {
            for s in 0..n {
                for k in 0..ch {
                    c.data[s * ch + k] = values[k * h.samples as usize + s];
                }
            }
        }
        let rate = if h.rate > 0.0 { h.rate } else { self.layout.rate };
        for (s, t) in c.timestamps[..n].iter_mut().enumerate() {
            *t = t0 + s as f64 / rate;
        }
        c.samples = n;
    }

    fn stop_thread(&mut self) {
        self.handoff.stop.store(true, Ordering::Release);
        self.handoff.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The LSL thread: pushes each queued chunk, sleeps (parked) while there is none.
fn run_outlet(mut outlet: Outlet, h: Arc<Handoff>, channels: usize, name: String, ready: SyncSender<()>) {
    h.waker.bind_current();
    let _ = ready.send(());
    let mut failures = 0u64;
    loop {
        h.waker.wait_until(|| !h.full.is_empty() || h.stop.load(Ordering::Acquire));
        while let Some(c) = h.full.pop() {
            if let Err(e) = outlet.push_chunk(&c.data[..c.samples * channels], &c.timestamps[..c.samples]) {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(stream = %name, error = %e, "LSL push failed");
                }
            }
            let _ = h.free.push(c);
        }
        if h.stop.load(Ordering::Acquire) && h.full.is_empty() {
            return;
        }
    }
}

impl Stage for LslSink {
    fn start(&mut self) -> Result<(), StageError> {
        let err = |e: lsl::LslError| StageError::msg(format!("`lsl_sink`: {e}"));
        let mut info = lsl::StreamInfo::new(
            &self.name,
            &self.type_,
            self.layout.channels,
            self.layout.rate,
            Format::Float32,
            &self.source_id,
        )
        .map_err(err)?;
        info.write_desc(&self.desc).map_err(err)?;
        let outlet = Outlet::new(&info, MAX_BUFFERED_S).map_err(err)?;
        self.clock = ClockMap::measure(|| lsl::local_clock().unwrap_or(0.0), lsl::clock::unix_now_ns);
        self.handoff.stop.store(false, Ordering::Release);
        let (h, ch, name) = (self.handoff.clone(), self.layout.channels, self.name.clone());
        let (ready_tx, ready) = sync_channel(1);
        self.thread = Some(
            std::thread::Builder::new()
                .name(format!("lsl:{}", self.name))
                .spawn(move || run_outlet(outlet, h, ch, name, ready_tx))?,
        );
        // Returns once the thread runs, so its start-up (which allocates) is over before data.
        ready.recv().map_err(|_| StageError::msg("`lsl_sink`: the outlet thread did not start"))?;
        Ok(())
    }

    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = &self.handoff;
        let mut chunk = match h.free.pop() {
            Some(c) => c,
            // Every chunk is queued: the LSL thread is behind. Reuse the oldest.
            None => match h.full.pop() {
                Some(c) => {
                    cx.count_drop(1);
                    c
                }
                None => {
                    cx.count_drop(1);
                    return Ok(());
                }
            },
        };
        self.fill(&pkt, &mut chunk);
        if let Err(c) = h.full.push(chunk) {
            let _ = h.free.push(c);
            cx.count_drop(1);
        }
        h.waker.wake();
        Ok(())
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        self.stop_thread();
        Ok(())
    }
}

impl Drop for LslSink {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// This machine's name, for the default `source_id`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The default `source_id`: the same for the same stage on the same machine, run after run.
pub fn default_source_id(host: &str, stage: &str) -> String {
    format!("eegd@{host}/{stage}")
}

fn layout(s: &StreamInfo) -> Layout {
    match s.kind {
        Kind::Raw | Kind::Voltage => {
            Layout { channels: s.channels, samples: s.max_samples, per_packet: false, rate: s.rate }
        }
        Kind::Spectrum | Kind::BandPower => {
            Layout { channels: s.channels * s.max_samples, samples: 1, per_packet: true, rate: s.rate }
        }
    }
}

/// The unit as the XDF conventions spell it.
fn unit_name(units: &str, kind: Kind) -> String {
    match (units, kind) {
        ("uV", _) | ("", Kind::Voltage) => "microvolts".into(),
        ("counts", _) | ("", Kind::Raw) => "counts".into(),
        ("uV^2/Hz", _) => "microvolts^2/Hz".into(),
        ("uV^2", _) => "microvolts^2".into(),
        (u, _) => u.to_string(),
    }
}

/// Manufacturer and model from the source's identity.
fn acquisition(sensor_id: &str) -> (String, String) {
    if sensor_id.starts_with("ads1299") {
        ("Texas Instruments".into(), "ADS1299".into())
    } else if sensor_id == "emulator" {
        ("eegd".into(), "ADS1299 emulator".into())
    } else {
        ("eegd".into(), if sensor_id.is_empty() { "unknown".into() } else { sensor_id.to_string() })
    }
}

fn channel_label(meta: &StreamMeta, c: usize) -> String {
    meta.labels.get(c).cloned().unwrap_or_else(|| format!("Ch{}", c + 1))
}

/// A parameter value as XML text.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The stream's `<desc>`, following the XDF metadata conventions: `channels/channel/{label,
/// unit, type}`, `acquisition/{manufacturer, model}`, and `filtering`: every stage upstream with
/// its parameters, and the total group delay.
pub fn describe(s: &StreamInfo, upstream: &[Upstream], type_: &str) -> DescNode {
    let meta = &s.meta;
    let unit = unit_name(&meta.units, s.kind);
    let mut channels = DescNode::new("channels");
    let per_packet = matches!(s.kind, Kind::Spectrum | Kind::BandPower);
    for c in 0..s.channels {
        let label = channel_label(meta, c);
        if !per_packet {
            channels.children.push(
                DescNode::new("channel")
                    .with(DescNode::leaf("label", label))
                    .with(DescNode::leaf("unit", unit.clone()))
                    .with(DescNode::leaf("type", type_)),
            );
            continue;
        }
        for b in 0..s.max_samples {
            let what = match s.kind {
                Kind::BandPower => meta.bands.get(b).cloned().unwrap_or_else(|| format!("band{b}")),
                _ => meta.axis.get(b).map(|f| format!("{f}Hz")).unwrap_or_else(|| format!("bin{b}")),
            };
            channels.children.push(
                DescNode::new("channel")
                    .with(DescNode::leaf("label", format!("{label}:{what}")))
                    .with(DescNode::leaf("unit", unit.clone()))
                    .with(DescNode::leaf("type", type_)),
            );
        }
    }
    let (manufacturer, model) = acquisition(&meta.sensor_id);
    let mut filtering = DescNode::new("filtering");
    for u in upstream {
        let mut params = DescNode::new("params");
        if let serde_json::Value::Object(m) = &u.params {
            for (k, v) in m.iter().filter(|(_, v)| !v.is_null()) {
                params.children.push(DescNode::leaf(k, value_text(v)));
            }
        }
        filtering.children.push(
            DescNode::new("stage")
                .with(DescNode::leaf("name", u.name.clone()))
                .with(DescNode::leaf("type", u.type_name))
                .with(params),
        );
    }
    filtering.children.push(DescNode::leaf("total_group_delay_s", format!("{}", meta.group_delay_s)));
    let mut root = DescNode::new("desc")
        .with(channels)
        .with(
            DescNode::new("acquisition")
                .with(DescNode::leaf("manufacturer", manufacturer))
                .with(DescNode::leaf("model", model))
                .with(DescNode::leaf("sensor_id", meta.sensor_id.clone())),
        )
        .with(filtering);
    if per_packet {
        let (what, axis) = match s.kind {
            Kind::BandPower => ("bands", meta.bands.join(",")),
            _ => ("frequencies_hz", meta.axis.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",")),
        };
        root.children.push(
            DescNode::new("layout")
                .with(DescNode::leaf("order", "channel-major: value k is channel k / n, entry k % n"))
                .with(DescNode::leaf("channels", s.channels.to_string()))
                .with(DescNode::leaf("n", s.max_samples.to_string()))
                .with(DescNode::leaf(what, axis)),
        );
    }
    root
}

impl StageType for LslSink {
    type Params = LslSinkParams;
    const NAME: &'static str = "lsl_sink";
    const ROLE: Role = Role::Sink;
    const ACCEPTS: &'static [Kind] = Kind::ANY;
    const DOC: &'static str = "Publishes the stream as a Lab Streaming Layer outlet of float32 samples \
        (needs liblsl at run time: found on the library path or through EEGD_LIBLSL). The stream is \
        named by `stream_name`, else the stage's `name`, else `eegd`. The description \
        follows the XDF conventions: `channels/channel/{label, unit, type}`, `acquisition/{manufacturer, \
        model}`, and `filtering` (each upstream stage with its params, and `total_group_delay_s`). Each \
        sample carries its own acquisition time mapped onto the LSL clock, never the push time. The \
        pipeline never waits: packets go to the sink's own thread through a bounded queue that drops \
        the oldest (counted in `drops`). Time series: one LSL channel per channel. Spectra and band \
        powers: one LSL sample per packet of channels × bins (or bands) values, channel-major.\n\n\
        Inputs: voltage, raw counts, spectrum or band powers. Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - lsl_sink: { name: eegd, type: EEG }\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let s = &inputs[0];
        let type_ = p.type_.clone().unwrap_or_else(|| {
            match s.kind {
                Kind::Spectrum => "EEG-PSD",
                Kind::BandPower => "EEG-BandPower",
                _ => "EEG",
            }
            .into()
        });
        let layout = layout(s);
        let desc = describe(s, cx.upstream, &type_);
        let free = ArrayQueue::new(CHUNKS);
        for _ in 0..CHUNKS {
            let _ = free.push(Box::new(Chunk {
                data: vec![0.0; layout.channels * layout.samples].into_boxed_slice(),
                timestamps: vec![0.0; layout.samples].into_boxed_slice(),
                samples: 0,
            }));
        }
        Ok((
            LslSink {
                source_id: p.source_id.clone().unwrap_or_else(|| default_source_id(&hostname(), cx.name)),
                name: stream_name(p.stream_name.as_deref(), cx.name, Self::NAME, Some(DEFAULT_STREAM_NAME))
                    .unwrap_or_default(),
                type_,
                layout,
                desc,
                clock: ClockMap { offset_ns: 0 },
                handoff: Arc::new(Handoff {
                    free,
                    full: ArrayQueue::new(CHUNKS),
                    waker: Waker::new(),
                    stop: AtomicBool::new(false),
                }),
                thread: None,
            },
            None,
        ))
    }
}

pipeline::register_stage!(LslSink);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn voltage(labels: &[&str], delay: f64) -> StreamInfo {
        StreamInfo {
            kind: Kind::Voltage,
            rate: 250.0,
            channels: labels.len(),
            max_samples: 4,
            meta: Arc::new(StreamMeta {
                labels: labels.iter().map(|s| s.to_string()).collect(),
                units: "uV".into(),
                sensor_id: "ads1299:/dev/spidev0.0".into(),
                group_delay_s: delay,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn description_has_channels_acquisition_and_the_filter_chain() {
        let up = [
            Upstream { name: "adc".into(), type_name: "ads1299", params: json!({"rate": 250}) },
            Upstream {
                name: "bp".into(),
                type_name: "bandpass",
                params: json!({"low_hz": 1.0, "high_hz": 40.0}),
            },
        ];
        let d = describe(&voltage(&["Fp1", "Fp2"], 0.0125), &up, "EEG");
        let chans = &d.child("channels").unwrap().children;
        assert_eq!(chans.len(), 2);
        assert_eq!(chans[1].value_of("label"), Some("Fp2"));
        assert_eq!(chans[1].value_of("unit"), Some("microvolts"));
        assert_eq!(chans[1].value_of("type"), Some("EEG"));
        let acq = d.child("acquisition").unwrap();
        assert_eq!(
            (acq.value_of("manufacturer"), acq.value_of("model")),
            (Some("Texas Instruments"), Some("ADS1299"))
        );
        let f = d.child("filtering").unwrap();
        assert_eq!(f.children[1].value_of("type"), Some("bandpass"));
        assert_eq!(f.children[1].child("params").unwrap().value_of("high_hz"), Some("40.0"));
        assert_eq!(f.value_of("total_group_delay_s"), Some("0.0125"));
    }

    #[test]
    fn spectra_are_one_sample_of_channels_times_bins_labelled_channel_major() {
        let s = StreamInfo {
            kind: Kind::Spectrum,
            rate: 4.0,
            channels: 2,
            max_samples: 3,
            meta: Arc::new(StreamMeta {
                labels: vec!["C3".into(), "C4".into()],
                units: "uV^2/Hz".into(),
                axis: vec![0.0, 1.0, 2.0],
                ..Default::default()
            }),
        };
        assert_eq!(layout(&s), Layout { channels: 6, samples: 1, per_packet: true, rate: 4.0 });
        let d = describe(&s, &[], "EEG-PSD");
        let labels: Vec<_> =
            d.child("channels").unwrap().children.iter().map(|c| c.value_of("label").unwrap()).collect();
        assert_eq!(labels, ["C3:0Hz", "C3:1Hz", "C3:2Hz", "C4:0Hz", "C4:1Hz", "C4:2Hz"]);
        assert_eq!(d.child("layout").unwrap().value_of("frequencies_hz"), Some("0,1,2"));
    }

    #[test]
    fn the_stream_is_named_by_stream_name_else_the_stage_name_else_eegd() {
        assert_eq!(stream_name(Some("s"), "box1", "lsl_sink", Some("eegd")).as_deref(), Some("s"));
        assert_eq!(stream_name(None, "box1", "lsl_sink", Some("eegd")).as_deref(), Some("box1"));
        assert_eq!(stream_name(None, "lsl_sink", "lsl_sink", Some("eegd")).as_deref(), Some("eegd"));
        assert_eq!(stream_name(None, "lsl_source", "lsl_source", None), None);
    }

    #[test]
    fn default_source_id_is_the_same_every_run() {
        assert_eq!(default_source_id("pi5", "lsl_sink"), default_source_id("pi5", "lsl_sink"));
        assert_ne!(default_source_id("pi5", "a"), default_source_id("pi5", "b"));
    }

    #[test]
    fn samples_are_transposed_and_stamped_from_their_acquisition_time() {
        let s = voltage(&["A", "B"], 0.0);
        let sink = LslSink {
            name: "x".into(),
            source_id: String::new(),
            type_: "EEG".into(),
            layout: layout(&s),
            desc: DescNode::default(),
            clock: ClockMap { offset_ns: 1_700_000_000_000_000_000 },
            handoff: Arc::new(Handoff {
                free: ArrayQueue::new(1),
                full: ArrayQueue::new(1),
                waker: Waker::new(),
                stop: AtomicBool::new(false),
            }),
            thread: None,
        };
        let mut h =
            pipeline::testing::Harness::new("null_sink", json!({}), std::slice::from_ref(&s), 2).unwrap();
        let hdr = pipeline::Header {
            kind: Kind::Voltage,
            channels: 2,
            samples: 3,
            rate: 250.0,
            timestamp_ns: 1_700_000_100_000_000_000,
            ..Default::default()
        };
        let pkt = h.packet_f32(hdr, &[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
        let mut c = Chunk {
            data: vec![0.0; 8].into_boxed_slice(),
            timestamps: vec![0.0; 4].into_boxed_slice(),
            samples: 0,
        };
        sink.fill(&pkt, &mut c);
        assert_eq!(c.samples, 3);
        assert_eq!(&c.data[..6], &[1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
        for (k, t) in c.timestamps[..3].iter().enumerate() {
            assert!((t - (100.0 + k as f64 * 0.004)).abs() < 1e-9, "{k}: {t}");
        }
        let _ = h.push(0, pkt.clone());
    }
}
