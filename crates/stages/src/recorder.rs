//! What the recording sinks (`bdf_sink`, `edf_sink`, `csv_sink`) share: the EDF/BDF sink itself
//! (generic over the format), marker placement, and the report a session reads.
//!
//! A recording holds exactly what was acquired: the sinks' queues are `block` only
//! ([`StageType::RECORDS`]); a BDF/EDF data record is a divisor of the input's packet, so every
//! packet is whole records and nothing is ever padded; a gap in the input's timestamps starts a
//! new stretch at its true time (EDF+D/BDF+D record onsets, CSV's per-row timestamps) with an
//! annotation (a markers-file row in CSV) saying where and how long; what is written is flushed
//! to the disk at least every `flush_ms` (at most 1 s).
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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Live counters of one recording sink, for the session that owns the file.
#[derive(Debug)]
pub struct RecorderReport {
    /// Samples of each channel in the file: what a reader gets back (BDF/EDF: complete data
    /// records; CSV: rows).
    pub samples: AtomicU64,
    /// Samples of each channel the sink took but could not put in the file without padding: a
    /// BDF/EDF data record left unfilled at the end or before a gap (only with packets of
    /// varying size). Zero for the sources' fixed packets.
    pub samples_unwritten: AtomicU64,
    /// Data records written (EDF/BDF) or flushes (CSV).
    pub records: AtomicU64,
    pub markers: AtomicU64,
    /// Markers lost: the sink's marker queue or the file's annotation room was full, or the
    /// marker fell before the recording's first sample.
    pub markers_dropped: AtomicU64,
    /// Values at or beyond the file's physical range (written as its limit).
    pub clipped: AtomicU64,
    /// Samples missing in the input: a packet's timestamp later than the previous packet's end.
    pub gap_samples: AtomicU64,
    /// Gaps in the input (each one marked in the file).
    pub gaps: AtomicU64,
    /// Time of the first sample written, ns since the UNIX epoch; `i64::MIN` until then.
    pub first_ns: AtomicI64,
    /// Set once the file is closed cleanly.
    pub closed: AtomicBool,
}

impl Default for RecorderReport {
    fn default() -> Self {
        RecorderReport {
            samples: AtomicU64::new(0),
            samples_unwritten: AtomicU64::new(0),
            records: AtomicU64::new(0),
            markers: AtomicU64::new(0),
            markers_dropped: AtomicU64::new(0),
            clipped: AtomicU64::new(0),
            gap_samples: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            first_ns: AtomicI64::new(i64::MIN),
            closed: AtomicBool::new(false),
        }
    }
}

impl RecorderReport {
    /// The first sample's time, once the sink has it.
    pub fn first_sample_ns(&self) -> Option<i64> {
        Some(self.first_ns.load(Ordering::Acquire)).filter(|&t| t != i64::MIN)
    }
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

/// A recording sink's markers: its subscription to the [`MarkerHub`]. Markers are written as
/// they are taken, at their own time (snapped to the nearest sample): none waits for its
/// sample, so markers stamped in the future hold nothing up.
#[derive(Default)]
pub struct MarkerPlacer {
    sub: Option<Arc<Subscription>>,
}

/// The sample whose time is nearest `ts_ns`, for a stream whose sample 0 is at `start_ns`.
pub fn sample_index(ts_ns: i64, start_ns: i64, rate: f64) -> u64 {
    ((ts_ns - start_ns) as f64 * rate / 1e9).round().max(0.0) as u64
}

impl MarkerPlacer {
    pub fn start(&mut self) {
        self.sub = Some(MarkerHub::global().subscribe());
    }

    /// Hands every marker posted since the last call to `place`. Never allocates.
    pub fn drain<E>(&mut self, mut place: impl FnMut(&Marker) -> Result<(), E>) -> Result<(), E> {
        let Some(sub) = &self.sub else { return Ok(()) };
        while let Some(m) = sub.pop() {
            place(&m)?;
        }
        Ok(())
    }

    /// Markers the subscription's queue had no room for.
    pub fn lost(&self) -> u64 {
        self.sub.as_ref().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Stops taking markers; the caller drains what is left once more.
    pub fn stop(&mut self) {
        if let Some(sub) = &self.sub {
            MarkerHub::global().unsubscribe(sub);
            let lost = sub.dropped.load(Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(lost, "Marker queue was full; markers lost");
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

/// Markers a second the annotation room of a BDF/EDF file holds (more wait for later records).
pub const MARKERS_PER_S: f64 = 64.0;

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
    /// Longest time a sample waits in memory before it is written and flushed to the disk, ms
    /// (default 1000, at most 1000). Data records last at most this long, and divide the
    /// input's packets (so no record is ever padded).
    #[serde(default = "d_flush_ms")]
    #[schemars(range(min = 1, max = 1000))]
    pub flush_ms: u64,
    /// Physical range ±`range_uv` of every channel, µV (counts for a raw stream). Values at or
    /// beyond it are written as its limit and counted (`samples_clipped`). Default: `edf_sink`
    /// ±3000 µV (16 bits: 0.09 µV steps); `bdf_sink` the ADC's full scale at each channel's gain
    /// (±vref/gain, so one file step is one ADC step and only a railed channel reaches it).
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
    /// `range_uv` when none is given for a voltage stream; `None`: the ADC's full scale.
    const DEFAULT_RANGE_UV: Option<f64>;
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
    /// Samples per flush to the disk (`flush_ms`), and samples taken since the last one.
    flush_samples: u64,
    unsynced: u64,
    placer: MarkerPlacer,
    report: Arc<RecorderReport>,
    _f: PhantomData<F>,
}

/// Writes one marker into `w` at its time (relative to the first sample at `start_ns`), on the
/// nearest sample; counts it as placed or dropped. A marker before the first sample is not in
/// the recording: dropped.
fn annotate<W: std::io::Write + std::io::Seek>(
    w: &mut Writer<W>,
    start_ns: i64,
    rate: f64,
    m: &Marker,
    report: &RecorderReport,
) {
    let rel = m.timestamp_ns - start_ns;
    let half = (0.5e9 / rate) as i64;
    let at = w.nearest_sample_ns(rel);
    let placed = rel >= -half && w.annotate(at.max(0), m.duration_ns, &m.text).is_ok();
    let counter = if placed { &report.markers } else { &report.markers_dropped };
    counter.fetch_add(1, Ordering::Relaxed);
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
            self.report.first_ns.store(h.timestamp_ns, Ordering::Release);
        }
        let (start, rate) = (self.start_ns, self.cfg.rate);
        let Some(w) = self.writer.as_mut() else { return Ok(()) };
        let rel = h.timestamp_ns - start;
        let expected = w.next_onset_ns();
        // More than half a sample late: samples are missing. The file goes on at the packet's
        // true time, with the gap marked.
        if (rel - expected) as f64 * rate / 1e9 > 0.5 {
            let missing = ((rel - expected) as f64 * rate / 1e9).round() as u64;
            let cut = w
                .resume_at(rel)
                .map_err(|e| StageError::msg(format!("writing {}: {e}", self.path.display())))?;
            self.report.gap_samples.fetch_add(missing, Ordering::Relaxed);
            self.report.gaps.fetch_add(1, Ordering::Relaxed);
            self.report.samples_unwritten.fetch_add(cut, Ordering::Relaxed);
            // A file whose first record the gap cut short starts at the first sample it holds.
            self.report.first_ns.store(start + w.start_shift_ns(), Ordering::Release);
        }
        let report = &self.report;
        self.placer.drain(|m| {
            annotate(w, start, rate, m, report);
            Ok::<(), StageError>(())
        })?;
        let res = match self.kind {
            Kind::Raw => w.write_planar(&pkt.i32s()[..h.len()], n),
            _ => w.write_planar(&pkt.f32s()[..h.len()], n),
        };
        if let Err(e) = res {
            return Err(StageError::msg(format!("writing {}: {e}", self.path.display())));
        }
        self.unsynced += n as u64;
        if self.unsynced >= self.flush_samples {
            // `flush_ms` of samples: make them reach the disk, so a kill loses at most that.
            let flushed = w.flush().and_then(|_| w.get_ref().get_ref().sync_data());
            if let Err(e) = flushed {
                return Err(StageError::msg(format!("writing {}: {e}", self.path.display())));
            }
            self.unsynced = 0;
        }
        self.report.samples.store(w.samples_written(), Ordering::Relaxed);
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
        let report = self.report.clone();
        let Some(mut w) = self.writer.take() else {
            // Nothing was recorded: markers posted meanwhile fell outside it.
            let _ = self.placer.drain(|_| {
                report.markers_dropped.fetch_add(1, Ordering::Relaxed);
                Ok::<(), StageError>(())
            });
            report.markers_dropped.fetch_add(self.placer.lost(), Ordering::Relaxed);
            return Ok(());
        };
        let (start, rate) = (self.start_ns, self.cfg.rate);
        self.placer.drain(|m| {
            annotate(&mut w, start, rate, m, &report);
            Ok::<(), StageError>(())
        })?;
        report.markers_dropped.fetch_add(self.placer.lost(), Ordering::Relaxed);
        // A last record that never filled (packets of varying size only): left out, counted.
        let tail = w.samples() - w.samples_written();
        let (buf, unwritten) = w.finish().map_err(|e| self.io_err(e))?;
        report.samples_unwritten.fetch_add(tail, Ordering::Relaxed);
        // Markers that never found room (only past the annotation room's rate): counted as lost.
        report.markers.fetch_sub(unwritten.annotations, Ordering::Relaxed);
        report.markers_dropped.fetch_add(unwritten.annotations, Ordering::Relaxed);
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
        let record_samples = edf::record_samples_dividing(s.rate, s.max_samples.max(1), p.flush_ms as f64 / 1000.0)
            .ok_or_else(|| {
                ParamError::new(
                    "flush_ms",
                    format!(
                        "no data record of whole samples at {} Hz both fits in {} ms and divides the input's packets of {} samples",
                        s.rate, p.flush_ms, s.max_samples
                    ),
                )
            })?;
        let (dmin, dmax) = Format::Bdf.digital_range();
        let mut signals = Vec::with_capacity(s.channels);
        for c in 0..s.channels {
            let (lo, hi, unit) =
                match (s.kind, p.range_uv.or(F::DEFAULT_RANGE_UV.filter(|_| s.kind != Kind::Raw))) {
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
            annotation_bytes: edf::annotation_bytes_for(record_samples as f64 / s.rate, MARKERS_PER_S),
            // A burst of a full marker queue still leaves room for markers coming after it.
            max_pending_annotations: 4 * crate::markers::QUEUE_CAPACITY,
        };
        let report = new_report(&p.path);
        let sink = FileSink {
            path: p.path.clone(),
            kind: s.kind,
            cfg,
            file: None,
            writer: None,
            start_ns: 0,
            flush_samples: ((s.rate * p.flush_ms as f64 / 1000.0) as u64).max(1),
            unsynced: 0,
            placer: MarkerPlacer::default(),
            report,
            _f: PhantomData,
        };
        Ok((sink, None))
    }
}
