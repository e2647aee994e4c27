//! What the recording sinks (`bdf_sink`, `edf_sink`, `csv_sink`) share: the EDF/BDF sink itself
//! (generic over the format), marker placement, and the report a session reads.
//!
//! A recording never loses data silently: the sinks' queues are `block` only
//! ([`StageType::RECORDS`]), each data record is written and flushed as soon as it is complete
//! (records last at most `flush_ms`, at most 1 s), and a gap in the input's timestamps is counted
//! as samples dropped upstream.
use crate::markers::{Marker, MarkerHub, Subscription};
use formats::edf::{self, Format, SignalSpec, Writer, WriterConfig};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Live counters of one recording sink, for the session that owns the file.
#[derive(Debug, Default)]
pub struct RecorderReport {
    /// Samples of each channel written (accepted; a clean stop writes them all).
    pub samples: AtomicU64,
    /// Data records written (EDF/BDF) or flushes (CSV).
    pub records: AtomicU64,
    pub markers: AtomicU64,
    /// Markers lost (the sink's marker queue or the file's annotation space was full).
    pub markers_dropped: AtomicU64,
    /// Values outside the file's physical range (written as its limit).
    pub clipped: AtomicU64,
    /// Samples missing in the input: a packet's timestamp later than the previous packet's end.
    pub gap_samples: AtomicU64,
    /// Set once the file is closed cleanly.
    pub closed: AtomicBool,
}

fn reports() -> &'static Mutex<HashMap<PathBuf, Weak<RecorderReport>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Weak<RecorderReport>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The report of the recording sink writing `path` (as its params gave it), while that sink
/// exists.
pub fn report_for(path: &Path) -> Option<Arc<RecorderReport>> {
    reports().lock().ok()?.get(path).and_then(Weak::upgrade)
}

pub(crate) fn new_report(path: &Path) -> Arc<RecorderReport> {
    let r = Arc::new(RecorderReport::default());
    if let Ok(mut m) = reports().lock() {
        m.retain(|_, w| w.strong_count() > 0);
        m.insert(path.to_path_buf(), Arc::downgrade(&r));
    }
    r
}

/// Places markers at their sample: drains a subscription into a preallocated list and hands
/// each marker over once the sink has the sample its time falls on.
pub struct MarkerPlacer {
    sub: Option<Arc<Subscription>>,
    pending: Vec<Marker>,
}

impl Default for MarkerPlacer {
    fn default() -> Self {
        MarkerPlacer { sub: None, pending: Vec::with_capacity(crate::markers::QUEUE_CAPACITY) }
    }
}

/// The sample whose time is nearest `ts_ns`, for a stream whose sample 0 is at `start_ns`.
pub fn sample_index(ts_ns: i64, start_ns: i64, rate: f64) -> u64 {
    ((ts_ns - start_ns) as f64 * rate / 1e9).round().max(0.0) as u64
}

impl MarkerPlacer {
    pub fn start(&mut self) {
        self.sub = Some(MarkerHub::global().subscribe());
    }

    /// Hands every marker that falls before sample `end` to `place(sample, marker)`; keeps the
    /// later ones. Never allocates: the list has the subscription queue's capacity.
    pub fn place<E>(
        &mut self,
        start_ns: i64,
        rate: f64,
        end: u64,
        report: &RecorderReport,
        mut place: impl FnMut(u64, &Marker) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(sub) = &self.sub {
            while self.pending.len() < self.pending.capacity() {
                let Some(m) = sub.pop() else { break };
                self.pending.push(m);
            }
        }
        let mut err = None;
        self.pending.retain(|m| {
            if err.is_some() {
                return true;
            }
            let at = sample_index(m.timestamp_ns, start_ns, rate);
            if at >= end {
                return true;
            }
            match place(at, m) {
                Ok(()) => {
                    report.markers.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => err = Some(e),
            }
            false
        });
        err.map_or(Ok(()), Err)
    }

    /// Stops taking markers; the caller then places what is left with `end = u64::MAX`.
    pub fn stop(&mut self) {
        if let Some(sub) = self.sub.take() {
            MarkerHub::global().unsubscribe(&sub);
            let lost = sub.dropped.load(Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(lost, "Marker queue was full; markers lost");
            }
            while self.pending.len() < self.pending.capacity() {
                let Some(m) = sub.pop() else { break };
                self.pending.push(m);
            }
        }
    }
}

impl Drop for MarkerPlacer {
    /// A sink dropped without `finish` (its pipeline failed to start) leaves the hub too.
    fn drop(&mut self) {
        if let Some(sub) = self.sub.take() {
            MarkerHub::global().unsubscribe(&sub);
        }
    }
}

fn d_flush_ms() -> u64 {
    1000
}

fn d_patient() -> String {
    "X X X X".into()
}

/// Parameters of `bdf_sink` and `edf_sink`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkParams {
    /// The file to write (created or truncated).
    pub path: PathBuf,
    /// Longest time a sample waits in memory before it is written and flushed, ms (default
    /// 1000, at most 1000): data records last this long (or less, to hold whole samples).
    #[serde(default = "d_flush_ms")]
    #[schemars(range(min = 1, max = 1000))]
    pub flush_ms: u64,
    /// Physical range ±`range_uv` of every channel. Default: the ADC's full scale at each
    /// channel's gain (±vref/gain), so nothing clips. In EDF (16 bits) one step is then
    /// 2·range/65535: 5.7 µV at gain 24 and vref 4.5 V; set e.g. `range_uv: 3000` for 0.09 µV
    /// steps when the signal stays within ±3 mV (values beyond it clip, and are counted).
    #[serde(default)]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub range_uv: Option<f64>,
    /// EDF+ patient field: `code sex birthdate name` (`X` for unknown; default `X X X X`).
    #[serde(default = "d_patient")]
    pub patient: String,
    /// Free text for the EDF+ recording field's equipment subfield (after `eegd_`; spaces
    /// become `_`).
    #[serde(default)]
    pub recording: String,
}

/// Which file a [`FileSink`] writes, and its stage name and documentation.
pub trait FileFormat: Send + 'static {
    const FORMAT: Format;
    const NAME: &'static str;
    const DOC: &'static str;
    const EXAMPLE: &'static str;
}

/// The ADC full scale of channel `c`, ±µV, from the stream metadata: vref/gain.
pub fn full_scale_uv(meta: &StreamMeta, c: usize) -> Option<f64> {
    let g = meta.gains.get(c).copied().or_else(|| meta.gains.first().copied())?;
    (meta.vref > 0.0 && g > 0.0).then(|| meta.vref / g * 1e6)
}

/// The label of channel `c`, or `Ch<c+1>`.
pub fn label(meta: &StreamMeta, c: usize) -> String {
    meta.labels.get(c).cloned().unwrap_or_else(|| format!("Ch{}", c + 1))
}

/// Writes a time series as BDF+ or EDF+, with markers as annotations.
pub struct FileSink<F: FileFormat> {
    path: PathBuf,
    kind: Kind,
    cfg: WriterConfig,
    file: Option<File>,
    writer: Option<Writer<BufWriter<File>>>,
    start_ns: i64,
    placer: MarkerPlacer,
    report: Arc<RecorderReport>,
    _f: PhantomData<F>,
}

impl<F: FileFormat> FileSink<F> {
    pub fn report(&self) -> &Arc<RecorderReport> {
        &self.report
    }

    fn io_err(&self, e: impl std::fmt::Display) -> StageError {
        StageError::msg(format!("writing {}: {e}", self.path.display()))
    }

    fn write(&mut self, pkt: &Packet) -> Result<(), StageError> {
        let h = pkt.header();
        let n = h.samples as usize;
        if self.writer.is_none() {
            // The header needs the first sample's time: written once, at the first packet.
            let Some(file) = self.file.take() else { return Ok(()) };
            self.start_ns = h.timestamp_ns;
            let cfg = WriterConfig { start_ns: h.timestamp_ns, ..self.cfg.clone() };
            let mut w =
                Writer::create(BufWriter::with_capacity(1 << 16, file), &cfg).map_err(|e| self.io_err(e))?;
            // The header on disk at once: from now on the file opens, even after a kill.
            w.flush().map_err(|e| self.io_err(e))?;
            self.writer = Some(w);
        }
        let (start, rate) = (self.start_ns, self.cfg.rate);
        let Some(w) = self.writer.as_mut() else { return Ok(()) };
        let expected = start + w.sample_onset_ns(w.samples());
        let gap = sample_index(h.timestamp_ns, expected, rate);
        if gap > 0 {
            self.report.gap_samples.fetch_add(gap, Ordering::Relaxed);
        }
        let end = w.samples() + n as u64;
        let report = &self.report;
        self.placer.place(start, rate, end, report, |at, m| {
            if w.annotate(w.sample_onset_ns(at), m.duration_ns, &m.text).is_err() {
                report.markers_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), StageError>(())
        })?;
        let res = match self.kind {
            Kind::Raw => w.write_planar(&pkt.i32s()[..h.len()], n),
            _ => w.write_planar(&pkt.f32s()[..h.len()], n),
        };
        let records = match res {
            Ok(r) => r,
            Err(e) => return Err(StageError::msg(format!("writing {}: {e}", self.path.display()))),
        };
        if records > 0 {
            // A record is complete: make it reach the disk, so a kill loses at most one record.
            let flushed = w.flush().and_then(|_| w.get_ref().get_ref().sync_data());
            if let Err(e) = flushed {
                return Err(StageError::msg(format!("writing {}: {e}", self.path.display())));
            }
        }
        self.report.samples.store(w.samples(), Ordering::Relaxed);
        self.report.records.store(w.records(), Ordering::Relaxed);
        self.report.clipped.store(w.clipped(), Ordering::Relaxed);
        Ok(())
    }
}

impl<F: FileFormat> Stage for FileSink<F> {
    fn start(&mut self) -> Result<(), StageError> {
        let f = File::create(&self.path).map_err(|e| self.io_err(e))?;
        self.file = Some(f);
        self.placer.start();
        Ok(())
    }

    fn process(&mut self, _: usize, pkt: Packet, _: &mut Context<'_>) -> Result<(), StageError> {
        self.write(&pkt)
    }

    /// Locked while it records: nothing upstream may change under a recording.
    fn is_locked(&self) -> bool {
        self.file.is_some() || self.writer.is_some()
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        self.placer.stop();
        let Some(mut w) = self.writer.take() else { return Ok(()) };
        let (start, rate, report) = (self.start_ns, self.cfg.rate, self.report.clone());
        self.placer.place(start, rate, u64::MAX, &report, |at, m| {
            if w.annotate(w.sample_onset_ns(at), m.duration_ns, &m.text).is_err() {
                report.markers_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), StageError>(())
        })?;
        report.samples.store(w.samples(), Ordering::Relaxed);
        let buf = w.finish().map_err(|e| self.io_err(e))?;
        let file = buf.into_inner().map_err(|e| self.io_err(e.error()))?;
        file.sync_all().map_err(|e| self.io_err(e))?;
        report.closed.store(true, Ordering::Release);
        Ok(())
    }
}

impl<F: FileFormat> StageType for FileSink<F> {
    type Params = FileSinkParams;
    const NAME: &'static str = F::NAME;
    const ROLE: Role = Role::Sink;
    const ACCEPTS: &'static [Kind] = Kind::TIME_SERIES;
    const BLOCKING_IO: bool = true;
    const RECORDS: bool = true;
    const DOC: &'static str = F::DOC;
    const EXAMPLE: &'static str = F::EXAMPLE;

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if p.flush_ms == 0 || p.flush_ms > 1000 {
            e.push(ParamError::new(
                "flush_ms",
                "must be 1–1000 ms: a recording is flushed at least once a second",
            ));
        }
        if p.range_uv.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            e.push(ParamError::new("range_uv", "must be a positive number of µV"));
        }
        e
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let s = &inputs[0];
        let record_samples =
            edf::record_samples_for(s.rate, p.flush_ms as f64 / 1000.0).ok_or_else(|| {
                ParamError::new(
                    "flush_ms",
                    format!("no whole number of samples at {} Hz fits in {} ms", s.rate, p.flush_ms),
                )
            })?;
        let (dmin, dmax) = Format::Bdf.digital_range();
        let mut signals = Vec::with_capacity(s.channels);
        for c in 0..s.channels {
            let (lo, hi, unit) = match (s.kind, p.range_uv) {
                (Kind::Raw, Some(r)) => (-r, r, "counts"),
                (Kind::Raw, None) => (f64::from(dmin), f64::from(dmax), "counts"),
                (_, Some(r)) => (-r, r, "uV"),
                (_, None) => {
                    let r = full_scale_uv(&s.meta, c).ok_or_else(|| {
                        ParamError::new(
                            "range_uv",
                            "the stream carries no ADC full scale (vref, gain): set `range_uv`",
                        )
                    })?;
                    (-r, r, "uV")
                }
            };
            let unit = if s.kind == Kind::Voltage && !s.meta.units.is_empty() {
                s.meta.units.clone()
            } else {
                unit.into()
            };
            signals.push(SignalSpec {
                label: label(&s.meta, c),
                unit,
                physical_min: lo,
                physical_max: hi,
                prefilter: String::new(),
                transducer: String::new(),
            });
        }
        // EDF+ subfields are separated by spaces: spaces inside one become `_`.
        let recording = if p.recording.is_empty() {
            "eegd".to_string()
        } else {
            format!("eegd_{}", p.recording.trim().replace(' ', "_"))
        };
        let cfg = WriterConfig {
            format: F::FORMAT,
            patient: p.patient.clone(),
            recording,
            start_ns: 0,
            rate: s.rate,
            record_samples,
            signals,
            annotation_bytes: edf::ANNOTATION_BYTES,
            max_pending_annotations: crate::markers::QUEUE_CAPACITY,
        };
        let report = new_report(&p.path);
        let sink = FileSink {
            path: p.path.clone(),
            kind: s.kind,
            cfg,
            file: None,
            writer: None,
            start_ns: 0,
            placer: MarkerPlacer::default(),
            report,
            _f: PhantomData,
        };
        Ok((sink, None))
    }
}
