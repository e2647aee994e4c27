//! `file_source`: replays a recording through the same graph as live data (docs/recording.md, "Replaying").
//!
//! BDF/EDF (by the file's extension, `.bdf` or `.edf`): the rate, labels and physical range
//! come from the header; timestamps run from the header's start (with the sub-second part of
//! the first record's onset) at `1/rate`; the physical range goes into the stream's full scale
//! (`vref`/`gains`), so `bdf_sink` writes the same digital values again; the file's annotations
//! are posted as markers (see [`crate::markers`]) as their records are read.
//!
//! CSV as written by `csv_sink`: header `timestamp,<label>…`, one row per sample, timestamps in
//! seconds since the UNIX epoch. The rate comes from the timestamp spacing, the labels from the
//! header, the timestamps from the file.
//!
//! **Timestamps.** A file keeps each sample's time only to its printed resolution (1 µs for
//! six decimals), while a packet carries the exact time of its first sample and the rest follow
//! at `1/rate`. So the source recovers the stream's clock: every row `k` of a regular stretch
//! says the clock's origin `t0` lies in `[row_k − k/rate, row_k − k/rate + resolution)`; the
//! intersection of those intervals holds every origin that reproduces every row exactly. Packets
//! are stamped from the lowest such origin, so replaying a file and writing it again gives the
//! same file. A row outside the interval (a gap, a clock jump) starts a new stretch and a new
//! packet: the timestamps stay the file's.
use pipeline::rt::{monotonic_ns, sleep_until_ns};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Produce, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::files::LineCap;
use crate::markers::{Marker, MarkerHub};
use formats::edf::{Reader as EdfReader, Record as EdfRecord};

/// What the values of a CSV file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Units {
    /// Microvolts (what `csv_sink` writes after `to_voltage`).
    #[default]
    Uv,
    /// Raw ADC counts (what `csv_sink` writes straight from a source).
    Counts,
}

fn d_true() -> bool {
    true
}
fn d_gain() -> f64 {
    24.0
}
fn d_vref() -> f64 {
    crate::emulator::VREF
}

/// Parameters of `file_source`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceParams {
    /// The recording to replay: BDF/EDF as written by `bdf_sink`/`edf_sink` (by extension), or
    /// CSV as written by `csv_sink`.
    pub path: PathBuf,
    /// Paced by the file's timestamps (default true), or as fast as the graph takes it.
    #[serde(default = "d_true")]
    pub realtime: bool,
    /// Samples per packet; default rate / 250 (a packet every 4 ms).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    pub batch: Option<usize>,
    /// Start again from the beginning at the end of the file, with timestamps running on
    /// (default false: the source ends, and the pipeline drains).
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// CSV only: the values are `uv` (default) or raw `counts`.
    #[serde(default)]
    pub units: Units,
    /// Samples per second; default: measured from the file's timestamps.
    #[serde(default)]
    #[schemars(range(min = 0.001, max = 1_000_000.0))]
    pub rate: Option<f64>,
    /// For `units: counts`: the PGA gain the counts were taken at (default 24).
    #[serde(default = "d_gain")]
    #[schemars(range(min = 1.0, max = 24.0))]
    pub gain: f64,
    /// For `units: counts`: the ADC reference in volts (default 4.5).
    #[serde(default = "d_vref")]
    #[schemars(range(min = 0.1, max = 10.0))]
    pub vref: f64,
    /// Channel labels, one per channel (default: the file's own).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Rows read at build time to measure the rate.
const RATE_PROBE_ROWS: usize = 4096;

/// The longest single sleep while paced, so a stop is noticed promptly during a gap in a file.
const MAX_SLEEP_NS: u64 = 100_000_000;

/// Replays a CSV recording.
pub struct FileSource {
    path: PathBuf,
    realtime: bool,
    looping: bool,
    kind: Kind,
    batch: usize,
    channels: usize,
    rate: f64,
    meta: Arc<StreamMeta>,
    stream_id: u16,
    reader: Option<csv::Reader<CsvFile>>,
    record: csv::ByteRecord,
    /// One packet's samples, channel-major with `batch` samples per channel (`f32` or `i32` bits).
    staging: Vec<u32>,
    /// A row read but not yet sent: it began a new stretch of the clock.
    carry: Option<(i64, i64)>,
    carry_values: Vec<u32>,
    clock: ClockFit,
    seq: u64,
    /// Rows read so far (1-based line numbers in errors: row + 2).
    rows: u64,
    /// Added to the file's timestamps on each loop, so time runs on.
    loop_offset_ns: i64,
    /// The file's own first and latest timestamps, before any loop offset.
    first_raw: Option<i64>,
    last_raw: i64,
    /// The first timestamp sent: the origin of the replay's pacing.
    first_ts: Option<i64>,
    start_mono: u64,
    ended: bool,
    /// BDF/EDF replay (else CSV).
    edf: Option<EdfReplay>,
}

/// True if `path` names a BDF or EDF file (by extension).
fn is_edf(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("bdf") || e.eq_ignore_ascii_case("edf"))
}

/// A BDF/EDF file being replayed, record by record.
struct EdfReplay {
    reader: Option<EdfReader<BufReader<File>>>,
    rec: EdfRecord,
    /// Samples of the current record already sent.
    pos: usize,
    spr: usize,
    /// `physical = digital × gain + offset`, per channel.
    gain: Vec<f64>,
    offset: Vec<f64>,
    /// Physical values are µV times this (1 for µV, 1000 for mV, …).
    to_uv: Vec<f64>,
    /// Time of sample 0 of the file, ns since the epoch, plus the loop offset.
    start_ns: i64,
    /// Samples sent since `start_ns`.
    sent: u64,
    /// Samples in one pass of the file (for `loop`).
    per_pass: u64,
}

/// What the build learns from a BDF/EDF header.
struct EdfProbe {
    labels: Vec<String>,
    rate: f64,
    kind: Kind,
    /// ±µV full scale of each channel (its largest physical magnitude).
    range_uv: Vec<f64>,
}

fn open_edf(path: &Path) -> Result<EdfReader<BufReader<File>>, String> {
    let f = crate::files::open_read(path)?;
    EdfReader::open(BufReader::new(f)).map_err(|e| format!("`{}`: {e}", path.display()))
}

fn uv_per_unit(unit: &str) -> f64 {
    match unit {
        "mV" => 1e3,
        "V" => 1e6,
        "nV" => 1e-3,
        _ => 1.0,
    }
}

fn probe_edf(path: &Path) -> Result<EdfProbe, String> {
    let r = open_edf(path)?;
    let h = r.header();
    let data = h.data_signals();
    let Some(&first) = data.first() else {
        return Err(format!("`{}` holds no data signals", path.display()));
    };
    let spr = h.signals[first].samples_per_record;
    if data.iter().any(|&k| h.signals[k].samples_per_record != spr) {
        return Err(format!(
            "`{}`: signals at different rates cannot be replayed as one stream",
            path.display()
        ));
    }
    if h.record_duration_s.is_nan() || h.record_duration_s <= 0.0 || spr == 0 {
        return Err(format!("`{}`: records of no duration", path.display()));
    }
    let counts = data.iter().all(|&k| h.signals[k].unit == "counts");
    let range_uv = data
        .iter()
        .map(|&k| {
            let s = &h.signals[k];
            s.physical_max.abs().max(s.physical_min.abs()) * if counts { 1.0 } else { uv_per_unit(&s.unit) }
        })
        .collect();
    Ok(EdfProbe {
        labels: data.iter().map(|&k| h.signals[k].label.clone()).collect(),
        rate: spr as f64 / h.record_duration_s,
        kind: if counts { Kind::Raw } else { Kind::Voltage },
        range_uv,
    })
}

impl EdfReplay {
    fn open(path: &Path) -> Result<EdfReplay, String> {
        let reader = open_edf(path)?;
        let h = reader.header().clone();
        let data = h.data_signals();
        let spr = h.signals[data[0]].samples_per_record;
        Ok(EdfReplay {
            rec: EdfRecord::default(),
            pos: spr,
            spr,
            gain: data.iter().map(|&k| h.signals[k].gain()).collect(),
            offset: data.iter().map(|&k| h.signals[k].offset()).collect(),
            to_uv: data.iter().map(|&k| uv_per_unit(&h.signals[k].unit)).collect(),
            start_ns: h.start_ns(),
            sent: 0,
            per_pass: h.records * spr as u64,
            reader: Some(reader),
        })
    }
}

/// The stream clock recovered from rounded timestamps (see the module doc).
#[derive(Debug, Clone, Default)]
struct ClockFit {
    /// Rows in the current stretch.
    k: u64,
    /// The interval of origins consistent with every row of the stretch, ns.
    lo: i64,
    hi: i64,
}

impl ClockFit {
    /// Offset of sample `k` from the origin, ns, rounded as `csv_sink` rounds it.
    fn offset(k: u64, rate: f64) -> i64 {
        (k as f64 * 1e9 / rate).round() as i64
    }

    /// Takes a row stamped `ts` (resolution `res` ns). Returns false when it does not fit the
    /// current stretch; the caller then starts a new one with [`ClockFit::restart`].
    fn admit(&mut self, ts: i64, res: i64, rate: f64) -> bool {
        let off = Self::offset(self.k, rate);
        let (lo, hi) = (ts - off, ts - off + res - 1);
        if self.k == 0 {
            (self.lo, self.hi) = (lo, hi);
        } else {
            let (nlo, nhi) = (self.lo.max(lo), self.hi.min(hi));
            if nlo > nhi {
                return false;
            }
            (self.lo, self.hi) = (nlo, nhi);
        }
        self.k += 1;
        true
    }

    fn restart(&mut self) {
        self.k = 0;
    }

    /// The timestamp of stretch sample `k`.
    fn at(&self, k: u64, rate: f64) -> i64 {
        self.lo + Self::offset(k, rate)
    }
}

/// Parses a CSV timestamp field: ns since the epoch and the printed resolution in ns.
fn parse_ts(field: &[u8]) -> Option<(i64, i64)> {
    formats::csv::parse_timestamp_with_resolution(std::str::from_utf8(field).ok()?.trim())
}

/// The rate of an ADS1299 or a whole number of Hz, if `measured` is that close to one; else
/// `measured` itself.
fn snap_rate(measured: f64) -> f64 {
    for r in crate::emulator::RATES {
        if (measured / r as f64 - 1.0).abs() < 0.01 {
            return r as f64;
        }
    }
    if (measured - measured.round()).abs() < 1e-3 * measured.max(1.0) {
        return measured.round();
    }
    measured
}

/// What the build learns from the head of a file.
struct Probe {
    labels: Vec<String>,
    rate: f64,
}

/// A CSV file as read: whole lines, each at most [`MAX_LINE_BYTES`](crate::files::MAX_LINE_BYTES).
type CsvFile = LineCap<BufReader<File>>;

fn open(path: &Path) -> Result<csv::Reader<CsvFile>, String> {
    let f = crate::files::open_read(path)?;
    let capped = LineCap::new(BufReader::new(f), crate::files::MAX_LINE_BYTES);
    Ok(csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(capped))
}

fn probe(path: &Path, rate: Option<f64>) -> Result<Probe, String> {
    let mut r = open(path)?;
    let headers = r.headers().map_err(|e| format!("`{}`: {e}", path.display()))?.clone();
    if headers.get(0).map(str::trim) != Some("timestamp") {
        return Err(format!(
            "`{}` is not a CSV recording: its first column is not `timestamp`",
            path.display()
        ));
    }
    if headers.get(1).map(str::trim) == Some("channel") {
        return Err(format!(
            "`{}` holds spectra or band powers (`timestamp,channel,…`); only time series can be replayed",
            path.display()
        ));
    }
    let labels: Vec<String> = headers.iter().skip(1).map(|s| s.trim().to_string()).collect();
    if labels.is_empty() {
        return Err(format!("`{}` has no channel columns", path.display()));
    }
    if let Some(rate) = rate {
        return Ok(Probe { labels, rate });
    }
    let mut rec = csv::ByteRecord::new();
    let (mut first, mut last, mut n) = (0i64, 0i64, 0usize);
    while n < RATE_PROBE_ROWS
        && r.read_byte_record(&mut rec).map_err(|e| format!("`{}`: {e}", path.display()))?
    {
        let (ts, _) = parse_ts(rec.get(0).unwrap_or_default())
            .ok_or_else(|| format!("`{}`: row {}: bad timestamp", path.display(), n + 1))?;
        if n == 0 {
            first = ts;
        }
        last = ts;
        n += 1;
    }
    if n < 2 || last <= first {
        return Err(format!(
            "`{}`: cannot tell the sample rate from fewer than two distinct timestamps; give `rate`",
            path.display()
        ));
    }
    Ok(Probe { labels, rate: snap_rate((n - 1) as f64 * 1e9 / (last - first) as f64) })
}

impl FileSource {
    fn err(&self, msg: impl std::fmt::Display) -> StageError {
        StageError::msg(format!("{}: line {}: {msg}", self.path.display(), self.rows + 1))
    }

    /// Parses the current record's values into `dst[c * stride]`.
    fn parse_values(&self, dst: &mut [u32], stride: usize) -> Result<(), StageError> {
        if self.record.len() != self.channels + 1 {
            return Err(self.err(format!("{} columns, expected {}", self.record.len(), self.channels + 1)));
        }
        for c in 0..self.channels {
            let field = std::str::from_utf8(&self.record[c + 1]).map_err(|_| self.err("not UTF-8"))?.trim();
            dst[c * stride] = match self.kind {
                Kind::Raw => {
                    field.parse::<i32>().map_err(|_| self.err(format!("bad count `{field}`")))? as u32
                }
                _ => field.parse::<f32>().map_err(|_| self.err(format!("bad value `{field}`")))?.to_bits(),
            };
        }
        Ok(())
    }

    /// Reads the next row into `self.record` and returns its timestamp (with the loop offset)
    /// and resolution; at the end of the file, loops or returns `None`.
    fn next_row(&mut self) -> Result<Option<(i64, i64)>, StageError> {
        loop {
            let Some(reader) = self.reader.as_mut() else { return Ok(None) };
            if reader.read_byte_record(&mut self.record).map_err(|e| self.err(e))? {
                self.rows += 1;
                let (raw, res) = parse_ts(self.record.get(0).unwrap_or_default())
                    .ok_or_else(|| self.err("bad timestamp"))?;
                self.first_raw.get_or_insert(raw);
                self.last_raw = raw;
                return Ok(Some((raw + self.loop_offset_ns, res)));
            }
            if !self.looping || self.first_raw.is_none() {
                self.reader = None;
                return Ok(None);
            }
            // From the top, one sample period after the last row, so the clock runs on.
            let span = self.last_raw - self.first_raw.unwrap_or(0) + ClockFit::offset(1, self.rate);
            self.loop_offset_ns += span;
            self.rows = 0;
            let mut r = open(&self.path).map_err(StageError::msg)?;
            r.headers().map_err(|e| self.err(e))?;
            self.reader = Some(r);
        }
    }

    /// Fills one packet: up to `batch` rows of one stretch of the clock. Returns the rows read
    /// and the stretch index of the first.
    fn fill(&mut self) -> Result<(usize, u64), StageError> {
        let mut n = 0;
        let mut k0 = self.clock.k;
        let mut staging = std::mem::take(&mut self.staging);
        let result = (|| {
            if let Some((ts, res)) = self.carry.take() {
                self.clock.restart();
                k0 = 0;
                let admitted = self.clock.admit(ts, res, self.rate);
                debug_assert!(admitted);
                for c in 0..self.channels {
                    staging[c * self.batch] = self.carry_values[c];
                }
                n = 1;
            }
            while n < self.batch {
                let Some((ts, res)) = self.next_row()? else { break };
                if !self.clock.admit(ts, res, self.rate) {
                    if n == 0 {
                        // The packet starts the new stretch.
                        self.clock.restart();
                        k0 = 0;
                        self.clock.admit(ts, res, self.rate);
                    } else {
                        // The row belongs to the next packet.
                        let mut carry = std::mem::take(&mut self.carry_values);
                        self.parse_values(&mut carry, 1)?;
                        self.carry_values = carry;
                        self.carry = Some((ts, res));
                        break;
                    }
                }
                self.parse_values(&mut staging[n..], self.batch)?;
                n += 1;
            }
            Ok(())
        })();
        self.staging = staging;
        result.map(|()| (n, k0))
    }

    fn wait_until(&self, deadline: u64, cx: &Context<'_>) {
        loop {
            let now = monotonic_ns();
            if now >= deadline || cx.stopping() {
                return;
            }
            sleep_until_ns(deadline.min(now + MAX_SLEEP_NS));
        }
    }
}

impl FileSource {
    /// Fills `staging` with up to `batch` samples from the BDF/EDF records; posts each record's
    /// annotations as markers when it is read. Returns the samples filled.
    fn fill_edf(&mut self) -> Result<usize, StageError> {
        let (path, looping, kind, batch, channels) =
            (&self.path, self.looping, self.kind, self.batch, self.channels);
        let Some(e) = self.edf.as_mut() else { return Ok(0) };
        let mut n = 0;
        while n < batch {
            if e.pos == e.spr {
                let Some(r) = e.reader.as_mut() else { break };
                let more = r
                    .read_record(&mut e.rec)
                    .map_err(|err| StageError::msg(format!("{}: {err}", path.display())))?;
                if !more {
                    if looping && e.per_pass > 0 {
                        let mut fresh = EdfReplay::open(path).map_err(StageError::msg)?;
                        fresh.start_ns = e.start_ns + (e.per_pass as f64 * 1e9 / self.rate).round() as i64;
                        *e = fresh;
                        continue;
                    }
                    e.reader = None;
                    break;
                }
                e.pos = 0;
                for a in &e.rec.annotations {
                    MarkerHub::global().post(Marker {
                        timestamp_ns: e.start_ns + a.onset_ns,
                        duration_ns: a.duration_ns,
                        text: Arc::from(a.text.as_str()),
                    });
                }
            }
            let take = (e.spr - e.pos).min(batch - n);
            for c in 0..channels {
                let (g, o, u) = (e.gain[c], e.offset[c], e.to_uv[c]);
                let src = &e.rec.digital[c][e.pos..e.pos + take];
                let dst = &mut self.staging[c * batch + n..c * batch + n + take];
                for (d, &v) in dst.iter_mut().zip(src) {
                    let phys = f64::from(v) * g + o;
                    *d = match kind {
                        Kind::Raw => (phys.round() as i32) as u32,
                        _ => ((phys * u) as f32).to_bits(),
                    };
                }
            }
            e.pos += take;
            n += take;
        }
        Ok(n)
    }

    fn produce_edf(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        let n = self.fill_edf()?;
        let Some(e) = self.edf.as_mut() else { return Ok(Produce::End) };
        if n == 0 {
            self.ended = true;
            return Ok(Produce::End);
        }
        let first = e.sent;
        e.sent += n as u64;
        let at = |k: u64| e.start_ns + (k as f64 * 1e9 / self.rate).round() as i64;
        let ts = at(first);
        if self.realtime {
            let origin = *self.first_ts.get_or_insert(ts);
            if self.start_mono == 0 {
                self.start_mono = monotonic_ns();
            }
            let last = at(first + n as u64 - 1);
            self.wait_until(self.start_mono + (last - origin).max(0) as u64, cx);
        }
        self.emit_staged(ts, n, cx)
    }

    /// Sends the first `n` samples of `staging` as one packet stamped `ts`.
    fn emit_staged(&mut self, ts: i64, n: usize, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        let header = Header {
            stream_id: self.stream_id,
            kind: self.kind,
            seq: self.seq,
            timestamp_ns: ts,
            rate: self.rate,
            channels: self.channels as u32,
            samples: n as u32,
            ready_ns: 0,
            meta: self.meta.clone(),
        };
        self.seq += 1;
        let Ok(mut pkt) = cx.alloc(header) else {
            // The graph could not keep up with an unpaced replay only if a queue dropped; a
            // pool exhausted here is counted like a device's lost samples.
            cx.count_drop(1);
            return Ok(Produce::Ready);
        };
        {
            let mut m = pkt.make_mut()?;
            let out = m.words_mut();
            for c in 0..self.channels {
                out[c * n..(c + 1) * n].copy_from_slice(&self.staging[c * self.batch..c * self.batch + n]);
            }
            m.header_mut().ready_ns = monotonic_ns();
        }
        cx.emit(pkt);
        Ok(Produce::Ready)
    }
}

impl Stage for FileSource {
    fn start(&mut self) -> Result<(), StageError> {
        if is_edf(&self.path) {
            self.edf = Some(EdfReplay::open(&self.path).map_err(StageError::msg)?);
            return Ok(());
        }
        let mut r = open(&self.path).map_err(StageError::msg)?;
        r.headers().map_err(|e| self.err(e))?;
        self.reader = Some(r);
        Ok(())
    }

    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        if self.ended {
            return Ok(Produce::End);
        }
        if self.edf.is_some() {
            return self.produce_edf(cx);
        }
        let (n, k0) = self.fill()?;
        if n == 0 {
            self.ended = true;
            return Ok(Produce::End);
        }
        let ts = self.clock.at(k0, self.rate);
        if self.realtime {
            // Paced by the file's clock: the packet is due when its last sample is.
            let first = *self.first_ts.get_or_insert(ts);
            if self.start_mono == 0 {
                self.start_mono = monotonic_ns();
            }
            let last = self.clock.at(k0 + n as u64 - 1, self.rate);
            self.wait_until(self.start_mono + (last - first).max(0) as u64, cx);
        }
        self.emit_staged(ts, n, cx)
    }
}

impl StageType for FileSource {
    type Params = FileSourceParams;
    const NAME: &'static str = "file_source";
    const ROLE: Role = Role::Source;
    const ACCEPTS: &'static [Kind] = &[];
    const OPENS_FILE: bool = true;
    const DOC: &'static str =
        "Replays a recording through the graph: BDF/EDF (by extension) as written by `bdf_sink`/`edf_sink`, \
        their annotations becoming markers again, or CSV as written by `csv_sink`. The rate \
        comes from the header (BDF/EDF) or the file's timestamps (CSV), the labels from its header, the \
        timestamps from the file; `realtime: false` replays as fast as the graph takes it.\n\n\
        Inputs: none. Outputs: voltage (uV), or raw counts with `units: counts`.";
    const EXAMPLE: &'static str =
        "stages:\n  - file_source: { path: /tmp/eegd-example.csv, realtime: false }\n  \
        - bandpass: { low_hz: 1, high_hz: 40 }\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if is_edf(&p.path) && (p.units != Units::Uv || p.rate.is_some()) {
            e.push(ParamError::new(
                "units",
                "`units` and `rate` apply only to CSV: a BDF/EDF header says both",
            ));
        }
        if p.units == Units::Uv && p.gain != d_gain() {
            e.push(ParamError::new("gain", "applies only to `units: counts`"));
        }
        e
    }

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        if is_edf(&p.path) {
            return build_edf(p, cx);
        }
        let probe = probe(&p.path, p.rate).map_err(|m| ParamError::new("path", m))?;
        let channels = probe.labels.len();
        let (kind, units) = match p.units {
            Units::Uv => (Kind::Voltage, "uV"),
            Units::Counts => (Kind::Raw, "counts"),
        };
        let meta = StreamMeta {
            labels: crate::labels::labels_or(&p.labels, probe.labels)?,
            units: units.into(),
            gains: vec![p.gain; channels],
            vref: p.vref,
            ..Default::default()
        };
        let mut src = FileSource::new(p, cx, kind, probe.rate, meta);
        src.record = csv::ByteRecord::with_capacity(64 * (channels + 1), channels + 1);
        src.carry_values = vec![0; channels];
        let out = src.stream_info();
        Ok((src, Some(out)))
    }
}

impl FileSource {
    /// A source of `kind` at `rate` with `meta` (labels, units, gains, vref), ready to open its
    /// file in `start`.
    fn new(p: &FileSourceParams, cx: &BuildCx<'_>, kind: Kind, rate: f64, meta: StreamMeta) -> FileSource {
        let channels = meta.labels.len();
        let batch = p.batch.unwrap_or((rate / 250.0).round() as usize).max(1);
        let meta =
            Arc::new(StreamMeta { stream_id: cx.stream_id, sensor_id: p.path.display().to_string(), ..meta });
        FileSource {
            path: p.path.clone(),
            realtime: p.realtime,
            looping: p.looping,
            kind,
            batch,
            channels,
            rate,
            meta,
            stream_id: cx.stream_id,
            reader: None,
            record: csv::ByteRecord::new(),
            staging: vec![0; channels * batch],
            carry: None,
            carry_values: Vec::new(),
            clock: ClockFit::default(),
            seq: 0,
            rows: 0,
            loop_offset_ns: 0,
            first_raw: None,
            last_raw: 0,
            first_ts: None,
            start_mono: 0,
            ended: false,
            edf: None,
        }
    }

    /// The stream this source gives.
    fn stream_info(&self) -> StreamInfo {
        StreamInfo {
            kind: self.kind,
            rate: self.rate,
            channels: self.channels,
            max_samples: self.batch,
            meta: self.meta.clone(),
        }
    }
}

/// `file_source` for a BDF/EDF file.
fn build_edf(p: &FileSourceParams, cx: &BuildCx<'_>) -> Result<(FileSource, Option<StreamInfo>), ParamError> {
    let probe = probe_edf(&p.path).map_err(|m| ParamError::new("path", m))?;
    let channels = probe.labels.len();
    // The full scale ±vref/gain (µV) of each channel is the file's physical range, so a
    // recording sink downstream writes the same range (and so the same digital values).
    // Raw counts keep the ADC's gain and reference from the parameters, for `to_voltage`.
    let (vref, gains) = match probe.kind {
        Kind::Raw => (p.vref, vec![p.gain; channels]),
        _ => (1.0, probe.range_uv.iter().map(|r| 1e6 / r.max(f64::MIN_POSITIVE)).collect()),
    };
    let meta = StreamMeta {
        labels: crate::labels::labels_or(&p.labels, probe.labels)?,
        units: if probe.kind == Kind::Raw { "counts" } else { "uV" }.into(),
        gains,
        vref,
        ..Default::default()
    };
    let src = FileSource::new(p, cx, probe.kind, probe.rate, meta);
    let out = src.stream_info();
    Ok((src, Some(out)))
}

pipeline::register_stage!(FileSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps_exactly_with_their_resolution() {
        assert_eq!(parse_ts(b"1700000000.123456"), Some((1_700_000_000_123_456_000, 1000)));
        assert_eq!(parse_ts(b"2.5"), Some((2_500_000_000, 100_000_000)));
        assert_eq!(parse_ts(b"7"), Some((7_000_000_000, 1_000_000_000)));
        assert_eq!(parse_ts(b"-1.000001"), Some((-1_000_001_000, 1000)));
        assert_eq!(parse_ts(b"1.2x"), None);
        assert_eq!(parse_ts(b""), None);
    }

    #[test]
    fn snaps_measured_rates_to_the_chip_or_whole_hertz() {
        assert_eq!(snap_rate(15_990.0), 16_000.0);
        assert_eq!(snap_rate(250.4), 250.0);
        assert_eq!(snap_rate(128.0001), 128.0);
        assert_eq!(snap_rate(33.3), 33.3);
    }

    #[test]
    fn clock_fit_recovers_an_origin_that_reproduces_every_row() {
        // 16 kSPS: 62.5 µs steps printed to 1 µs alternate 62 and 63.
        let origin = 1_000_123_456_789i64;
        let mut fit = ClockFit::default();
        for k in 0..100u64 {
            let ts = (origin + k as i64 * 62_500) / 1000 * 1000;
            assert!(fit.admit(ts, 1000, 16_000.0));
        }
        for k in 0..100u64 {
            assert_eq!(fit.at(k, 16_000.0) / 1000, (origin + k as i64 * 62_500) / 1000);
        }
        // A row 1 ms late does not fit: a new stretch begins there.
        assert!(!fit.admit((origin + 100 * 62_500 + 1_000_000) / 1000 * 1000, 1000, 16_000.0));
    }
}
