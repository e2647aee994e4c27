//! `lsl_source`: another program's Lab Streaming Layer stream as an eegd source.
//!
//! `kind: signal` — a numeric stream (another eegd, OpenBCI GUI, BrainFlow, a vendor's app)
//! becomes a voltage stream: labels, units and rate from its description. Timestamps follow the
//! eegd rule (first sample + n / rate, integer ns): the first sample's LSL timestamp, corrected
//! onto this machine's clock (`lsl_time_correction`, then the LSL → UNIX offset measured at
//! start), anchors the stream. When a sample arrives more than [`gap_tolerance_s`] later than
//! the stream clock says (its outlet went away and came back, or the network stalled), the
//! samples missing are counted in the stage's `overruns` and the stream jumps to the sample's
//! true index, so recordings show the gap where it happened; a stream running slow is
//! re-anchored the same way without a count.
//!
//! `kind: markers` — each string sample becomes an eegd marker at its LSL timestamp corrected
//! onto this machine's clock, posted to the [`MarkerHub`](crate::markers::MarkerHub), so
//! recordings place it on the right sample. The stage emits no packets.
//!
//! Both reconnect when the outlet disappears and comes back (liblsl's recovery by
//! `source_id`; a stream without one is resolved again by the same query).
use crate::markers::{Marker, MarkerHub};
use lsl::{ClockMap, Inlet, PullError, Query};
use pipeline::rt::monotonic_ns;
use pipeline::stage::{BuildCx, ParamError, Produce};
use pipeline::{Context, Header, Kind, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LslKind {
    /// Numbers, one channel per value: becomes a voltage stream.
    #[default]
    Signal,
    /// Strings: each sample becomes a marker.
    Markers,
}

fn d_timeout() -> f64 {
    5.0
}

/// Parameters of `lsl_source`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LslSourceParams {
    /// `signal` (default) or `markers`.
    #[serde(default)]
    pub kind: LslKind,
    /// The stream's name, when it is not the stage's `name` (default: the stage's `name` when
    /// the file gives one; otherwise any name matches).
    #[serde(default)]
    pub stream_name: Option<String>,
    /// The stream's content type (`EEG`, `Markers`, …).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The stream's `source_id`.
    #[serde(default)]
    pub source_id: Option<String>,
    /// An XPath predicate over the stream's info instead of the three above, e.g.
    /// `name='eegd' and hostname='pi'`.
    #[serde(default)]
    pub predicate: Option<String>,
    /// How long to look for the stream, seconds (default 5).
    #[serde(default = "d_timeout")]
    #[schemars(range(min = 0.1, max = 600.0))]
    pub timeout_s: f64,
    /// Signal streams: the channel count, if known beforehand. With `rate` given too, the
    /// pipeline validates without the stream being there (the stream must then match).
    #[serde(default)]
    pub channels: Option<usize>,
    /// Signal streams: the sample rate, Hz, if known beforehand.
    #[serde(default)]
    #[schemars(range(min = 0.1, max = 100000.0))]
    pub rate: Option<f64>,
    /// Signal streams: most samples per packet (default rate / 10, at least 16).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65536))]
    pub batch: Option<usize>,
}

impl LslSourceParams {
    /// The query, with the stream name from `stream_name` or the stage's name.
    fn query(&self, stage: &str) -> Query {
        Query {
            name: crate::lsl_sink::stream_name(self.stream_name.as_deref(), stage, LslSource::NAME, None),
            type_: self.type_.clone(),
            source_id: self.source_id.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

/// How late a sample may be against the stream clock before it counts as a gap, seconds.
pub fn gap_tolerance_s(rate: f64) -> f64 {
    (3.0 / rate).max(0.1)
}

/// The eegd sample clock of a stream received over LSL: first sample + n / rate, re-anchored at
/// gaps. Pure, so its rule is tested without liblsl.
#[derive(Debug, Clone, Default)]
pub struct SampleClock {
    rate: f64,
    /// eegd time of sample `anchor_index`.
    anchor_ns: Option<i64>,
    anchor_index: u64,
    /// Index of the next sample.
    next: u64,
}

impl SampleClock {
    pub fn new(rate: f64) -> SampleClock {
        SampleClock { rate, ..Default::default() }
    }

    fn time_of(&self, index: u64) -> i64 {
        self.anchor_ns.unwrap_or(0) + ((index - self.anchor_index) as f64 * 1e9 / self.rate).round() as i64
    }

    /// The next `n` samples arrived, the first at eegd time `arrived_ns`: the timestamp of the
    /// first, and how many samples were missing before it.
    pub fn take(&mut self, arrived_ns: i64, n: u64) -> (i64, u64) {
        let mut missing = 0;
        match self.anchor_ns {
            None => {
                self.anchor_ns = Some(arrived_ns);
                self.anchor_index = self.next;
            }
            Some(_) => {
                let late_s = (arrived_ns - self.time_of(self.next)) as f64 * 1e-9;
                if late_s.abs() > gap_tolerance_s(self.rate) {
                    if late_s > 0.0 {
                        missing = (late_s * self.rate).round() as u64;
                        self.next += missing;
                    }
                    self.anchor_ns = Some(arrived_ns);
                    self.anchor_index = self.next;
                }
            }
        }
        let t = self.time_of(self.next);
        self.next += n;
        (t, missing)
    }
}

/// Reads an LSL stream.
pub struct LslSource {
    params: LslSourceParams,
    query: Query,
    channels: usize,
    rate: f64,
    meta: Arc<StreamMeta>,
    stream_id: u16,
    inlet: Option<Inlet>,
    clock: ClockMap,
    correction_s: f64,
    samples: SampleClock,
    data: Vec<f32>,
    timestamps: Vec<f64>,
    seq: u64,
}

/// Wait per pull, so a stop is noticed promptly.
const PULL_WAIT_S: f64 = 0.1;

impl LslSource {
    fn connect(&mut self, timeout_s: f64) -> Result<bool, StageError> {
        let err = |e: lsl::LslError| StageError::msg(format!("`lsl_source`: {e}"));
        let Some(info) = lsl::resolve(&self.query, timeout_s).map_err(err)? else { return Ok(false) };
        if self.params.kind == LslKind::Signal {
            if info.is_string() {
                return Err(StageError::msg(format!(
                    "`lsl_source`: the stream {} carries strings; use `kind: markers`",
                    self.query
                )));
            }
            if info.channel_count() != self.channels {
                return Err(StageError::msg(format!(
                    "`lsl_source`: the stream {} has {} channels, the pipeline was built for {}",
                    self.query,
                    info.channel_count(),
                    self.channels
                )));
            }
            if (info.nominal_srate() - self.rate).abs() > 1e-6 * self.rate {
                return Err(StageError::msg(format!(
                    "`lsl_source`: the stream {} runs at {} Hz, the pipeline was built for {} Hz",
                    self.query,
                    info.nominal_srate(),
                    self.rate
                )));
            }
        }
        let mut inlet = Inlet::new(&info, 360, true).map_err(err)?;
        inlet.open(timeout_s.max(1.0)).map_err(err)?;
        self.correction_s = inlet.time_correction(timeout_s.max(1.0)).ok().flatten().unwrap_or(0.0);
        self.inlet = Some(inlet);
        Ok(true)
    }

    /// The outlet is gone for good: look for the stream again (a short wait per call).
    fn reconnect(&mut self) -> Result<Produce, StageError> {
        self.inlet = None;
        if self.connect(PULL_WAIT_S * 5.0)? {
            tracing::info!(stream = %self.query, "LSL stream back");
        }
        Ok(Produce::Ready)
    }

    fn produce_markers(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        let Some(inlet) = self.inlet.as_mut() else { return self.reconnect() };
        match inlet.pull_string(PULL_WAIT_S) {
            Ok(Some((text, ts))) => {
                if let Ok(Some(c)) = inlet.time_correction(1.0) {
                    self.correction_s = c;
                }
                let at = self.clock.to_unix_ns(ts + self.correction_s);
                MarkerHub::global().post(Marker::new(at, &text));
                cx.stats().packets_in.fetch_add(1, Ordering::Relaxed);
                Ok(Produce::Ready)
            }
            Ok(None) => Ok(Produce::Ready),
            Err(PullError::Lost) => self.reconnect(),
            Err(PullError::Code(c)) => Err(StageError::msg(format!("`lsl_source`: liblsl error {c}"))),
        }
    }

    fn produce_signal(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        let ch = self.channels;
        let Some(inlet) = self.inlet.as_mut() else { return self.reconnect() };
        let first = match inlet.pull_sample(&mut self.data[..ch], PULL_WAIT_S) {
            Ok(Some(ts)) => ts,
            Ok(None) => return Ok(Produce::Ready),
            Err(PullError::Lost) => return self.reconnect(),
            Err(PullError::Code(c)) => {
                return Err(StageError::msg(format!("`lsl_source`: liblsl error {c}")))
            }
        };
        self.timestamps[0] = first;
        let more = match inlet.pull_available(&mut self.data[ch..], &mut self.timestamps[1..]) {
            Ok(n) => n,
            Err(PullError::Lost) => 0,
            Err(PullError::Code(c)) => {
                return Err(StageError::msg(format!("`lsl_source`: liblsl error {c}")))
            }
        };
        let n = 1 + more;
        let arrived = self.clock.to_unix_ns(first + self.correction_s);
        let (ts, missing) = self.samples.take(arrived, n as u64);
        if missing > 0 {
            cx.stats().overruns.fetch_add(missing, Ordering::Relaxed);
            if let Ok(Some(c)) = inlet.time_correction(0.5) {
                self.correction_s = c;
            }
        }
        let header = Header {
            stream_id: self.stream_id,
            kind: Kind::Voltage,
            seq: self.seq,
            timestamp_ns: ts,
            rate: self.rate,
            channels: ch as u32,
            samples: n as u32,
            ready_ns: 0,
            meta: self.meta.clone(),
        };
        self.seq += 1;
        let Ok(mut pkt) = cx.alloc(header) else {
            cx.count_drop(1);
            return Ok(Produce::Ready);
        };
        {
            let mut m = pkt.make_mut()?;
            let out = m.f32s_mut();
            for s in 0..n {
                for c in 0..ch {
                    out[c * n + s] = self.data[s * ch + c];
                }
            }
            m.header_mut().ready_ns = monotonic_ns();
        }
        cx.emit(pkt);
        Ok(Produce::Ready)
    }
}

impl Stage for LslSource {
    fn start(&mut self) -> Result<(), StageError> {
        let err = |e: lsl::LslError| StageError::msg(format!("`lsl_source`: {e}"));
        lsl::available().map_err(err)?;
        self.clock = ClockMap::measure(|| lsl::local_clock().unwrap_or(0.0), lsl::clock::unix_now_ns);
        if !self.connect(self.params.timeout_s)? {
            return Err(StageError::msg(format!(
                "`lsl_source`: no LSL stream matches {} (looked for {} s)",
                self.query, self.params.timeout_s
            )));
        }
        Ok(())
    }

    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        match self.params.kind {
            LslKind::Signal => self.produce_signal(cx),
            LslKind::Markers => self.produce_markers(cx),
        }
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        self.inlet = None;
        Ok(())
    }
}

/// What the graph is built with: from the parameters, or from the stream's description.
struct Shape {
    channels: usize,
    rate: f64,
    labels: Vec<String>,
    units: String,
}

fn shape_of(p: &LslSourceParams, query: &Query) -> Result<Shape, ParamError> {
    if let (Some(channels), Some(rate)) = (p.channels, p.rate) {
        let labels = (1..=channels).map(|c| format!("Ch{c}")).collect();
        return Ok(Shape { channels, rate, labels, units: "uV".into() });
    }
    let info = lsl::resolve(query, p.timeout_s)
        .map_err(|e| ParamError::new("", e.to_string()))?
        .ok_or_else(|| {
            ParamError::new(
                "",
                format!(
                    "no LSL stream matches {query} (looked for {} s); start it first, or give `channels` and `rate`",
                    p.timeout_s
                ),
            )
        })?;
    if info.is_string() {
        return Err(ParamError::new(
            "kind",
            format!("the stream {query} carries strings; use `kind: markers`"),
        ));
    }
    let channels = info.channel_count();
    let rate = info.nominal_srate();
    if rate <= 0.0 {
        return Err(ParamError::new("", format!("the stream {query} has no regular rate; eegd needs one")));
    }
    // The description is only in the full info, which an inlet fetches.
    let described =
        Inlet::new(&info, 1, false).and_then(|mut i| i.full_info(p.timeout_s)).map(|f| f.channels());
    let described = described.unwrap_or_default();
    Ok(shape_from_description(channels, rate, &described))
}

/// Labels and unit from `desc/channels/channel/{label, unit}`, where the description has them
/// for every channel; otherwise `Ch1`… and microvolts.
pub fn shape_from_description_parts(
    channels: usize,
    described: &[(String, String)],
) -> (Vec<String>, String) {
    let labels = if described.len() == channels && described.iter().all(|(l, _)| !l.is_empty()) {
        described.iter().map(|(l, _)| l.clone()).collect()
    } else {
        (1..=channels).map(|c| format!("Ch{c}")).collect()
    };
    let unit = described.first().map(|(_, u)| u.as_str()).unwrap_or("");
    let units = match unit {
        "" | "microvolts" | "uV" | "µV" => "uV".to_string(),
        other => other.to_string(),
    };
    (labels, units)
}

fn shape_from_description(channels: usize, rate: f64, described: &[(String, String)]) -> Shape {
    let (labels, units) = shape_from_description_parts(channels, described);
    Shape { channels, rate, labels, units }
}

impl StageType for LslSource {
    type Params = LslSourceParams;
    const NAME: &'static str = "lsl_source";
    const ROLE: Role = Role::Source;
    const ACCEPTS: &'static [Kind] = &[];
    const DOC: &'static str = "Reads one Lab Streaming Layer stream, found by `name` (the stage's name, or \
        `stream_name`), `type`, `source_id` or an XPath `predicate` within `timeout_s` (needs liblsl at run time). `kind: signal`: a numeric \
        stream becomes a voltage stream with the labels, units and rate of its description (resolved \
        when the pipeline is built, unless `channels` and `rate` are given); timestamps are the first \
        sample's LSL time corrected onto this machine's clock, then + n / rate. `kind: markers`: each \
        string sample becomes a marker at its LSL timestamp corrected onto this machine's clock, placed \
        by recordings on the sample it falls on. Reconnects when the outlet comes back; samples missing \
        across a gap are counted in `overruns`.\n\nInputs: none. Outputs: voltage (`kind: signal`), \
        nothing (`kind: markers`).";
    const EXAMPLE: &'static str = "stages:\n  - lsl_source: { name: OpenBCI, type: EEG, channels: 8, rate: 250 }\n  - bandpass: { low_hz: 1, high_hz: 40 }\n  - csv_sink: { path: /tmp/eegd-lsl.csv }\n  - lsl_source: { name: stim, kind: markers, type: Markers }\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if p.kind == LslKind::Markers && (p.channels.is_some() || p.rate.is_some() || p.batch.is_some()) {
            e.push(ParamError::new("kind", "`channels`, `rate` and `batch` are for `kind: signal`"));
        }
        e
    }

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let query = p.query(cx.name);
        query.check().map_err(|m| ParamError::new("", m))?;
        let (shape, out) = match p.kind {
            LslKind::Markers => {
                (Shape { channels: 1, rate: 1.0, labels: Vec::new(), units: String::new() }, None)
            }
            LslKind::Signal => {
                let shape = shape_of(p, &query)?;
                let batch = p.batch.unwrap_or(((shape.rate / 10.0).ceil() as usize).max(16));
                let meta = Arc::new(StreamMeta {
                    stream_id: cx.stream_id,
                    labels: shape.labels.clone(),
                    units: shape.units.clone(),
                    sensor_id: format!("lsl:{query}"),
                    ..Default::default()
                });
                let info = StreamInfo {
                    kind: Kind::Voltage,
                    rate: shape.rate,
                    channels: shape.channels,
                    max_samples: batch,
                    meta,
                };
                (shape, Some(info))
            }
        };
        let batch = out.as_ref().map_or(1, |o| o.max_samples);
        let meta = out.as_ref().map(|o| o.meta.clone()).unwrap_or_default();
        Ok((
            LslSource {
                params: p.clone(),
                query,
                channels: shape.channels,
                rate: shape.rate,
                meta,
                stream_id: cx.stream_id,
                inlet: None,
                clock: ClockMap { offset_ns: 0 },
                correction_s: 0.0,
                samples: SampleClock::new(shape.rate),
                data: vec![0.0; shape.channels * batch],
                timestamps: vec![0.0; batch],
                seq: 0,
            },
            out,
        ))
    }
}

pipeline::register_stage!(LslSource);

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn timestamps_are_first_sample_plus_n_over_rate_whatever_the_arrival_jitter() {
        let mut c = SampleClock::new(250.0);
        assert_eq!(c.take(1_000 * MS, 5), (1_000 * MS, 0));
        // The next chunk arrives 7 ms "late" (network jitter): still on the grid.
        assert_eq!(c.take(1_027 * MS, 3), (1_020 * MS, 0));
        assert_eq!(c.take(1_030 * MS, 1), (1_032 * MS, 0));
    }

    #[test]
    fn a_gap_is_counted_and_the_stream_jumps_to_the_true_index() {
        let mut c = SampleClock::new(250.0);
        c.take(0, 250); // one second
                        // The outlet was away for 2 s: the next sample is 500 samples late.
        let (t, missing) = c.take(3_000 * MS, 10);
        assert_eq!((t, missing), (3_000 * MS, 500));
        assert_eq!(c.take(3_040 * MS, 1), (3_040 * MS, 0));
    }

    #[test]
    fn a_slow_stream_is_reanchored_without_a_count() {
        let mut c = SampleClock::new(100.0);
        c.take(0, 100);
        let (t, missing) = c.take(500 * MS, 1); // expected at 1000 ms, came at 500 ms
        assert_eq!((t, missing), (500 * MS, 0));
    }

    #[test]
    fn labels_and_units_come_from_the_description_when_complete() {
        let d =
            vec![("C3".to_string(), "microvolts".to_string()), ("C4".to_string(), "microvolts".to_string())];
        assert_eq!(
            shape_from_description_parts(2, &d),
            (vec!["C3".to_string(), "C4".to_string()], "uV".to_string())
        );
        // Incomplete: numbered labels.
        assert_eq!(shape_from_description_parts(3, &d).0, ["Ch1", "Ch2", "Ch3"]);
    }

    fn build(params: serde_json::Value, stage: &str) -> Result<(LslSource, Option<StreamInfo>), ParamError> {
        let p: LslSourceParams = serde_json::from_value(params).unwrap();
        LslSource::build(&p, &[], &BuildCx { name: stage, stream_id: 0, upstream: &[] })
    }

    #[test]
    fn the_stage_name_is_the_stream_name_unless_stream_name_says() {
        let (s, _) = build(serde_json::json!({"kind": "markers"}), "stim").unwrap();
        assert_eq!(s.query.to_string(), "name='stim'");
        let (s, _) =
            build(serde_json::json!({"kind": "markers", "stream_name": "x", "type": "M"}), "stim").unwrap();
        assert_eq!(s.query.to_string(), "name='x' and type='M'");
    }

    #[test]
    fn refuses_a_query_that_names_nothing_or_mixes_predicate_and_properties() {
        let e = build(serde_json::json!({"kind": "markers"}), "lsl_source").err().unwrap();
        assert!(e.message.contains("say which stream"), "{}", e.message);
        let e = build(serde_json::json!({"kind": "markers", "predicate": "type='M'"}), "stim").err().unwrap();
        assert!(e.message.contains("not both"), "{}", e.message);
    }

    #[test]
    fn a_signal_of_known_shape_builds_without_the_stream() {
        let (_, out) =
            build(serde_json::json!({"type": "EEG", "channels": 4, "rate": 250.0}), "lsl_source").unwrap();
        let out = out.unwrap();
        assert_eq!((out.channels, out.rate, out.kind), (4, 250.0, Kind::Voltage));
        assert_eq!(out.meta.labels, ["Ch1", "Ch2", "Ch3", "Ch4"]);
    }
}
