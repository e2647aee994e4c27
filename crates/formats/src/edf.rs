//! EDF+ (16-bit) and BDF+ (24-bit) files: a streaming writer and a record-by-record reader.
//!
//! Layout (edfplus.info, "EDF+ specification"): a header of `256 × (signals + 1)` ASCII bytes,
//! then data records of equal duration, each holding `samples_per_record` little-endian
//! two's-complement integers of every signal in turn (2 bytes in EDF, 3 in BDF). The last signal
//! is the annotations signal (`EDF Annotations` / `BDF Annotations`): its bytes carry Time-stamped
//! Annotation Lists (TALs), `+onset[\x15duration]\x14text\x14…\x00`. The first TAL of every record
//! has empty text and gives the record's onset, in seconds after the header's start second (so
//! the first record's TAL holds the sub-second part of the start time).
//!
//! The writer writes the header at once with a record count of `-1` ("unknown", which readers
//! resolve from the file size) and each data record as soon as it is complete, so a file whose
//! writer was killed holds every complete record that reached the disk. [`Writer::finish`]
//! writes the true record count into the header.
//!
//! A file never holds a sample that was not given to the writer: no record is padded. The
//! recorders choose records that divide their packets ([`record_samples_dividing`]), so every
//! packet is whole records; a record that still does not fill (a packet of another size at the
//! end, or before a gap) is left out of the file and counted ([`Unwritten`]). Gaps in the input
//! make the file EDF+D/BDF+D: every record's time-keeping TAL gives its true onset, and an
//! annotation `gap: N samples not acquired` spans the missing time.
//!
//! Quantisation: `physical = (digital - digital_min) × gain + physical_min` with
//! `gain = (physical_max - physical_min) / (digital_max - digital_min)`, computed from the header
//! fields as written (8 ASCII characters each), so a reader gets back exactly what was meant.
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Which of the two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// European Data Format+, 16-bit samples.
    Edf,
    /// BioSemi Data Format+, 24-bit samples.
    Bdf,
}

impl Format {
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            Format::Edf => 2,
            Format::Bdf => 3,
        }
    }

    /// The full digital range, `(min, max)`.
    pub const fn digital_range(self) -> (i32, i32) {
        match self {
            Format::Edf => (-32_768, 32_767),
            Format::Bdf => (-8_388_608, 8_388_607),
        }
    }

    pub const fn annotation_label(self) -> &'static str {
        match self {
            Format::Edf => "EDF Annotations",
            Format::Bdf => "BDF Annotations",
        }
    }
}

/// What can go wrong reading or writing a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a valid EDF/BDF file: {0}")]
    Header(String),
    #[error("invalid writer configuration: {0}")]
    Config(String),
    #[error("{0} annotations are already waiting for a data record; this one is dropped")]
    AnnotationsFull(usize),
}

/// One data signal to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// Up to 16 characters.
    pub label: String,
    /// Physical dimension, up to 8 characters (`uV`).
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    /// Up to 80 characters (`HP:0.1Hz LP:75Hz`), may be empty.
    pub prefilter: String,
    /// Up to 80 characters, may be empty.
    pub transducer: String,
}

/// Everything a [`Writer`] needs before the first sample.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub format: Format,
    /// EDF+ patient field: `code sex birthdate name`, `X` for unknown (`X X X X`).
    pub patient: String,
    /// Free text appended to the EDF+ recording field after `Startdate dd-MMM-yyyy`.
    pub recording: String,
    /// Time of the first sample, ns since the UNIX epoch.
    pub start_ns: i64,
    /// Samples per second of every data signal.
    pub rate: f64,
    /// Samples of each signal in one data record (see [`record_samples_for`]).
    pub record_samples: usize,
    pub signals: Vec<SignalSpec>,
    /// Bytes of annotations in each data record besides its time-keeping TAL (at least
    /// [`MIN_ANNOTATION_BYTES`]; see [`annotation_bytes_for`]).
    pub annotation_bytes: usize,
    /// Annotations that may wait for room in a data record before [`Writer::annotate`] refuses
    /// more.
    pub max_pending_annotations: usize,
}

/// Least room for annotations in one data record, bytes: one annotation with a duration and
/// [`RECORD_TEXT`] bytes of text.
pub const MIN_ANNOTATION_BYTES: usize = TAL_OVERHEAD + RECORD_TEXT;

/// Annotation text kept in a file with the least room per record, bytes (longer text is cut at
/// a character boundary; more room per record keeps more, up to [`MAX_ANNOTATION_TEXT`]).
pub const RECORD_TEXT: usize = 64;

/// Default room for annotations per data record ([`MIN_ANNOTATION_BYTES`]).
pub const ANNOTATION_BYTES: usize = MIN_ANNOTATION_BYTES;

/// Longest annotation text kept, in bytes (longer text is cut at a character boundary).
pub const MAX_ANNOTATION_TEXT: usize = 256;

/// Room for annotations per data record so that `markers_per_s` markers a second, each with a
/// short text (up to 24 bytes), fit in the records of that second: records of `record_s`
/// seconds hold `record_s × markers_per_s` of them, and at least one of [`RECORD_TEXT`] bytes.
pub fn annotation_bytes_for(record_s: f64, markers_per_s: f64) -> usize {
    let per_record = (record_s * markers_per_s).ceil().max(0.0) as usize;
    (per_record * (TAL_OVERHEAD + 24)).max(MIN_ANNOTATION_BYTES)
}

/// The most samples per data record, up to `max_duration_s` of them, whose duration (the header
/// field of 8 characters) is exact: `Some(n)` with `n / rate` representable, else `None`.
pub fn record_samples_for(rate: f64, max_duration_s: f64) -> Option<usize> {
    largest_exact(rate, ((rate * max_duration_s + 1e-9).floor() as usize).max(1), |_| true)
}

/// The most samples per data record that divide `packet` (so a stream of packets of `packet`
/// samples is always whole records: nothing is ever padded or left out, and a gap between
/// packets falls between records), last at most `max_duration_s` and have an exact duration.
pub fn record_samples_dividing(rate: f64, packet: usize, max_duration_s: f64) -> Option<usize> {
    let most = ((rate * max_duration_s + 1e-9).floor() as usize).min(packet);
    largest_exact(rate, most, |n| packet.is_multiple_of(n))
}

fn largest_exact(rate: f64, most: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    if !(rate.is_finite() && rate > 0.0) || most == 0 {
        return None;
    }
    (1..=most).rev().filter(|&n| ok(n)).find(|&n| {
        let d: f64 = fmt_num(n as f64 / rate, 8).parse().unwrap_or(0.0);
        (d * rate - n as f64).abs() < 1e-9 * n as f64
    })
}

/// An annotation: onset (ns after the first sample), optional duration, text.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub onset_ns: i64,
    pub duration_ns: Option<i64>,
    pub text: String,
}

/// `v` in at most `width` characters, as precise as fits (EDF numeric header fields).
pub fn fmt_num(v: f64, width: usize) -> String {
    let plain = format!("{v}");
    if plain.len() <= width {
        return plain;
    }
    for p in (0..=width).rev() {
        let s = format!("{v:.p$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        if s.len() <= width {
            return s;
        }
    }
    format!("{}", v.round() as i64)
}

/// Header text: printable ASCII only (others become `_`), cut or space-padded to `width`.
fn field(out: &mut Vec<u8>, s: &str, width: usize) {
    let mut n = 0;
    for ch in s.chars().take(width) {
        out.push(if (' '..='~').contains(&ch) { ch as u8 } else { b'_' });
        n += 1;
    }
    out.extend(std::iter::repeat_n(b' ', width - n));
}

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

/// Writes seconds given in ns as `+S[.fffffffff]` (trailing zeros trimmed), into a fixed buffer.
fn write_onset(w: &mut impl Write, ns: i64) -> io::Result<()> {
    w.write_all(if ns < 0 { b"-" } else { b"+" })?;
    write_secs(w, ns.unsigned_abs())
}

/// Writes ns as seconds `S[.fffffffff]`, no sign (TAL durations).
fn write_secs(w: &mut impl Write, a: u64) -> io::Result<()> {
    let (s, mut f) = (a / 1_000_000_000, a % 1_000_000_000);
    write!(w, "{s}")?;
    if f != 0 {
        let mut digits = 9;
        while f % 10 == 0 {
            f /= 10;
            digits -= 1;
        }
        write!(w, ".{f:0digits$}")?;
    }
    Ok(())
}

/// Parses `+S[.f…]` to ns, exactly (no floating point).
fn parse_onset(s: &[u8]) -> Option<i64> {
    let (neg, rest) = match s.first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => return None,
    };
    let mut parts = rest.splitn(2, |&b| b == b'.');
    let int = parts.next()?;
    let frac = parts.next().unwrap_or(b"");
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut ns: i64 = 0;
    for &d in int {
        ns = ns.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    ns = ns.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000;
    for &d in frac.iter().take(9) {
        ns += i64::from(d - b'0') * scale;
        scale /= 10;
    }
    Some(if neg { -ns } else { ns })
}

/// A value the writer can take: `f32` physical values (µV) or `i32` (raw counts).
pub trait Sample: Copy {
    fn to_f64(self) -> f64;
}

impl Sample for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Sample for i32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

/// Offset of the record count in the header.
const RECORDS_AT: u64 = 236;
/// Offset of the reserved field (`EDF+C` / `EDF+D`) in the header.
const RESERVED_AT: u64 = 192;

/// Bytes of the time-keeping TAL that opens every data record: `+` and up to 10 digits of
/// seconds, `.` and 9 decimals, then `\x14\x14\x00`.
pub const ONSET_TAL_BYTES: usize = 24;

/// Bytes a TAL takes besides its text: onset (18), duration (`\x15` + 18), `\x14`, `\x14\x00`.
const TAL_OVERHEAD: usize = 40;

/// What [`Writer::finish`] reports about the data it could not put in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unwritten {
    /// Samples of each channel given to the writer but not in the file: a last data record (or
    /// one cut short by a gap) that never filled. Never padded: they are left out and counted.
    /// Zero when every packet holds whole data records (see [`record_samples_dividing`]).
    pub samples: u64,
    /// The caller's annotations still waiting for room when the file was closed.
    pub annotations: u64,
    /// The writer's own gap annotations still waiting (the gaps still show in record onsets).
    pub gap_annotations: u64,
}

/// A streaming EDF+/BDF+ writer. Give it `W` buffered (`BufWriter<File>`): it writes one record
/// at a time.
///
/// **No sample is invented.** Data records hold only samples given to the writer: a record
/// that never fills (the last one, or one cut short by a gap) is left out of the file and
/// counted ([`Unwritten::samples`]), never padded. Choose the record length with
/// [`record_samples_dividing`] so that every packet is whole records, and nothing is ever left
/// out.
///
/// **Gaps keep time true.** [`Writer::resume_at`] starts a new stretch of samples at a later
/// time: the file becomes EDF+D/BDF+D, each data record's time-keeping TAL gives its true onset,
/// and an annotation `gap: N samples not acquired` (with the gap's duration) marks where the
/// samples are missing. A file without gaps is EDF+C/BDF+C once finished.
///
/// **Annotations never lengthen the file.** Each record has room for the time-keeping TAL and
/// [`WriterConfig::annotation_bytes`] of annotations; annotations that do not fit wait for the
/// next records (their onsets are absolute, so where they are stored does not move them). When
/// [`WriterConfig::max_pending_annotations`] wait, [`Writer::annotate`] refuses more, and
/// [`Writer::finish`] counts those still waiting: the caller counts every one it could not write.
pub struct Writer<W: Write + Seek> {
    out: W,
    format: Format,
    channels: usize,
    spr: usize,
    rate: f64,
    gain: Vec<f64>,
    offset: Vec<f64>,
    dmin: i32,
    dmax: i32,
    /// Digital values of the record being filled, channel-major.
    record: Vec<i32>,
    fill: usize,
    /// The encoded record, data then annotations.
    bytes: Vec<u8>,
    ann_bytes: usize,
    /// Longest annotation text kept, bytes.
    text_limit: usize,
    pending: Vec<Annotation>,
    /// Whether each pending annotation is the writer's own (a gap's).
    pending_gap: Vec<bool>,
    /// Text buffers of the annotations, preallocated and reused.
    free: Vec<String>,
    max_pending: usize,
    records: u64,
    /// Sub-second part of the start time, ns: the first record's onset.
    frac_ns: i64,
    /// The caller's time origin (`start_ns`), the recording subfield, and how far after that
    /// origin the file starts (non-zero when a gap cut short the first record: the file then
    /// starts at the first sample it holds). Onsets the caller gives count from its origin.
    origin_ns: i64,
    recording: String,
    shift_ns: i64,
    /// Onset (ns after the first sample) of the current stretch of contiguous samples, and the
    /// samples of it given so far (written or in the record being filled).
    seg_onset_ns: i64,
    seg_samples: u64,
    /// Samples of each channel in the file (complete records).
    written: u64,
    discarded: u64,
    gaps: u64,
    clipped: u64,
}

impl<W: Write + Seek> Writer<W> {
    /// Writes the header (record count `-1`) and returns a writer for the data records.
    pub fn create(mut out: W, cfg: &WriterConfig) -> Result<Self, Error> {
        if cfg.signals.is_empty() {
            return Err(Error::Config("no signals".into()));
        }
        if cfg.record_samples == 0 || !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            return Err(Error::Config("the rate and the samples per record must be positive".into()));
        }
        let bps = cfg.format.bytes_per_sample();
        let space = cfg.annotation_bytes.max(MIN_ANNOTATION_BYTES);
        let ann_samples = (ONSET_TAL_BYTES + space).div_ceil(bps);
        let ann_bytes = ann_samples * bps;
        let (dmin, dmax) = cfg.format.digital_range();
        let duration = fmt_num(cfg.record_samples as f64 / cfg.rate, 8);
        let ns = cfg.signals.len() + 1;
        let frac_ns = cfg.start_ns.rem_euclid(1_000_000_000);

        let mut h = Vec::with_capacity(256 * (ns + 1));
        match cfg.format {
            Format::Edf => field(&mut h, "0", 8),
            Format::Bdf => {
                h.push(0xFF);
                field(&mut h, "BIOSEMI", 7);
            }
        }
        field(&mut h, &cfg.patient, 80);
        start_fields(&mut h, cfg.start_ns, &cfg.recording);
        field(&mut h, &(256 * (ns + 1)).to_string(), 8);
        // `+D` until a clean finish knows there was no gap: a file cut short by a kill may have
        // had one, and `+D` is right for a contiguous file too.
        field(&mut h, &reserved(cfg.format, true), 44);
        field(&mut h, "-1", 8);
        field(&mut h, &duration, 8);
        field(&mut h, &ns.to_string(), 4);
        let ann_label = cfg.format.annotation_label();
        for s in &cfg.signals {
            field(&mut h, &s.label, 16);
        }
        field(&mut h, ann_label, 16);
        for s in &cfg.signals {
            field(&mut h, &s.transducer, 80);
        }
        field(&mut h, "", 80);
        for s in &cfg.signals {
            field(&mut h, &s.unit, 8);
        }
        field(&mut h, "", 8);
        let mut gain = Vec::with_capacity(cfg.signals.len());
        let mut offset = Vec::with_capacity(cfg.signals.len());
        let mut pmins = Vec::new();
        let mut pmaxs = Vec::new();
        for s in &cfg.signals {
            let (lo, hi) = (fmt_num(s.physical_min, 8), fmt_num(s.physical_max, 8));
            let (l, u): (f64, f64) =
                (lo.parse().unwrap_or(s.physical_min), hi.parse().unwrap_or(s.physical_max));
            if u.partial_cmp(&l) != Some(std::cmp::Ordering::Greater) {
                return Err(Error::Config(format!(
                    "signal `{}`: physical range {lo}..{hi} is empty",
                    s.label
                )));
            }
            let g = (u - l) / f64::from(dmax - dmin);
            gain.push(g);
            offset.push(l - g * f64::from(dmin));
            pmins.push(lo);
            pmaxs.push(hi);
        }
        for v in &pmins {
            field(&mut h, v, 8);
        }
        field(&mut h, &dmin.to_string(), 8);
        for v in &pmaxs {
            field(&mut h, v, 8);
        }
        field(&mut h, &dmax.to_string(), 8);
        for _ in &cfg.signals {
            field(&mut h, &dmin.to_string(), 8);
        }
        field(&mut h, &dmin.to_string(), 8);
        for _ in &cfg.signals {
            field(&mut h, &dmax.to_string(), 8);
        }
        field(&mut h, &dmax.to_string(), 8);
        for s in &cfg.signals {
            field(&mut h, &s.prefilter, 80);
        }
        field(&mut h, "", 80);
        for _ in &cfg.signals {
            field(&mut h, &cfg.record_samples.to_string(), 8);
        }
        field(&mut h, &ann_samples.to_string(), 8);
        for _ in 0..ns {
            field(&mut h, "", 32);
        }
        debug_assert_eq!(h.len(), 256 * (ns + 1));
        out.write_all(&h)?;

        let channels = cfg.signals.len();
        let max_pending = cfg.max_pending_annotations.max(1);
        let text_limit = MAX_ANNOTATION_TEXT.min(space - TAL_OVERHEAD);
        Ok(Writer {
            out,
            format: cfg.format,
            channels,
            spr: cfg.record_samples,
            rate: cfg.rate,
            gain,
            offset,
            dmin,
            dmax,
            record: vec![0; channels * cfg.record_samples],
            fill: 0,
            bytes: vec![0; channels * cfg.record_samples * bps + ann_bytes],
            ann_bytes,
            text_limit,
            pending: Vec::with_capacity(max_pending),
            pending_gap: Vec::with_capacity(max_pending),
            free: (0..max_pending).map(|_| String::with_capacity(text_limit + 4)).collect(),
            max_pending,
            records: 0,
            frac_ns,
            origin_ns: cfg.start_ns,
            recording: cfg.recording.clone(),
            shift_ns: 0,
            seg_onset_ns: 0,
            seg_samples: 0,
            written: 0,
            discarded: 0,
            gaps: 0,
            clipped: 0,
        })
    }

    /// Appends `samples` samples of every channel, channel-major (`data[c * samples + i]`), right
    /// after the samples before them. Writes each data record as it completes; returns how many
    /// it wrote. Allocates nothing.
    pub fn write_planar<T: Sample>(&mut self, data: &[T], samples: usize) -> Result<usize, Error> {
        if data.len() < self.channels * samples {
            return Err(Error::Config(format!(
                "{} values given for {} channels × {samples} samples",
                data.len(),
                self.channels
            )));
        }
        let mut done = 0;
        let mut written = 0;
        while done < samples {
            let take = (self.spr - self.fill).min(samples - done);
            for c in 0..self.channels {
                let (g, o) = (self.gain[c], self.offset[c]);
                let src = &data[c * samples + done..c * samples + done + take];
                let dst = &mut self.record[c * self.spr + self.fill..c * self.spr + self.fill + take];
                for (d, s) in dst.iter_mut().zip(src) {
                    let v = ((s.to_f64() - o) / g).round();
                    // At or beyond a limit: the file cannot tell the value from a clipped one
                    // (a railed channel sits exactly at full scale), so it counts as clipped.
                    *d = if v <= f64::from(self.dmin) {
                        self.clipped += 1;
                        self.dmin
                    } else if v >= f64::from(self.dmax) {
                        self.clipped += 1;
                        self.dmax
                    } else {
                        v as i32
                    };
                }
            }
            self.fill += take;
            self.seg_samples += take as u64;
            done += take;
            if self.fill == self.spr {
                self.emit_record()?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Onset (ns after the first sample) the next sample has if it follows the last one.
    pub fn next_onset_ns(&self) -> i64 {
        self.seg_onset_ns + self.span_ns(self.seg_samples)
    }

    /// Starts a new stretch of samples at `onset_ns` (ns after the first sample), after a gap in
    /// the input: records from here on carry their true onset, and an annotation marks the gap.
    /// A record the gap cut short is left out (never padded); returns how many samples of each
    /// channel that was (zero when packets hold whole records). `onset_ns` must not be earlier
    /// than [`Writer::next_onset_ns`].
    pub fn resume_at(&mut self, onset_ns: i64) -> Result<u64, Error> {
        let from = self.next_onset_ns();
        if onset_ns < from {
            return Err(Error::Config(format!(
                "resuming at {onset_ns} ns, before the last sample ({from} ns)"
            )));
        }
        let cut = self.fill as u64;
        self.discarded += cut;
        self.fill = 0;
        let missing = ((onset_ns - from) as f64 * self.rate / 1e9).round() as u64;
        self.gaps += 1;
        self.seg_onset_ns = onset_ns;
        self.seg_samples = 0;
        if self.records == 0 {
            // Nothing in the file yet: it starts here, at the first sample it will hold (a
            // reader takes the first record's onset as the start).
            self.shift_ns = onset_ns;
            let start = self.origin_ns + onset_ns;
            self.frac_ns = start.rem_euclid(1_000_000_000);
            let mut h = Vec::with_capacity(96);
            start_fields(&mut h, start, &self.recording);
            self.out.seek(SeekFrom::Start(RECORDING_AT))?;
            self.out.write_all(&h)?;
            self.out.seek(SeekFrom::End(0))?;
        }
        // The gap's annotation: from the first missing sample, as long as the gap. Not counted
        // against the caller's markers; if there is no room it is the one that waits longest.
        let mut text = [0u8; 64];
        let mut cur = io::Cursor::new(&mut text[..]);
        let _ = write!(cur, "gap: {missing} samples not acquired");
        let n = cur.position() as usize;
        let text = std::str::from_utf8(&text[..n]).unwrap_or("gap");
        // When every slot holds a caller's annotation, the gap still shows in the record onsets
        // (EDF+D) and in `gaps()`.
        if self.annotate(from, Some(onset_ns - from), text).is_ok() {
            if let Some(g) = self.pending_gap.last_mut() {
                *g = true;
            }
        }
        Ok(cut)
    }

    /// The onset of the sample nearest `onset_ns` on the current stretch's sample grid (ns
    /// after the first sample): where an event at that time is placed.
    pub fn nearest_sample_ns(&self, onset_ns: i64) -> i64 {
        let k = ((onset_ns - self.seg_onset_ns) as f64 * self.rate / 1e9).round() as i64;
        self.seg_onset_ns + (k as f64 * 1e9 / self.rate).round() as i64
    }

    /// Queues an annotation for the next data record written. `onset_ns` counts from the first
    /// sample. The text goes into a preallocated buffer (cut to what one record holds, at most
    /// [`MAX_ANNOTATION_TEXT`] bytes): no allocation. Refuses when
    /// [`WriterConfig::max_pending_annotations`] already wait.
    pub fn annotate(&mut self, onset_ns: i64, duration_ns: Option<i64>, text: &str) -> Result<(), Error> {
        let Some(mut clean) = self.free.pop().filter(|_| self.pending.len() < self.max_pending) else {
            return Err(Error::AnnotationsFull(self.pending.len()));
        };
        clean.clear();
        for c in text.chars() {
            if clean.len() + c.len_utf8() > self.text_limit {
                break;
            }
            clean.push(if matches!(c, '\x00' | '\x14' | '\x15') { ' ' } else { c });
        }
        self.pending.push(Annotation { onset_ns, duration_ns, text: clean });
        self.pending_gap.push(false);
        Ok(())
    }

    /// The onset, ns after the first sample, of sample `index` of an unbroken recording.
    pub fn sample_onset_ns(&self, index: u64) -> i64 {
        self.span_ns(index)
    }

    fn span_ns(&self, samples: u64) -> i64 {
        (samples as f64 * 1e9 / self.rate).round() as i64
    }

    /// Samples of each channel accepted so far (written or waiting in the record buffer).
    pub fn samples(&self) -> u64 {
        self.written + self.fill as u64
    }

    /// Samples of each channel in the file: complete data records.
    pub fn samples_written(&self) -> u64 {
        self.written
    }

    /// Samples of each channel left out because a gap cut their record short.
    pub fn samples_discarded(&self) -> u64 {
        self.discarded
    }

    /// Gaps marked with [`Writer::resume_at`].
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Annotations waiting for room in the next records.
    pub fn annotations_pending(&self) -> usize {
        self.pending.len()
    }

    /// Complete data records written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// How far after the caller's origin (`start_ns`) the file starts: non-zero only when a gap
    /// cut the first record short, so the file starts at the first sample it holds.
    pub fn start_shift_ns(&self) -> i64 {
        self.shift_ns
    }

    /// Samples of each channel in one data record.
    pub fn record_samples(&self) -> usize {
        self.spr
    }

    /// Values at or beyond the physical range's limits, written as the digital limit.
    pub fn clipped(&self) -> u64 {
        self.clipped
    }

    /// The physical value of one digital step of each channel.
    pub fn resolution(&self) -> &[f64] {
        &self.gain
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes what is written so far to `W`'s destination.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes the record count (and `+C` when there was no gap) into the header. A partial
    /// last record is left out, and annotations still waiting are not written: both are counted
    /// in the [`Unwritten`] returned, never padded and never given records of their own.
    pub fn finish(mut self) -> Result<(W, Unwritten), Error> {
        let gap_annotations = self.pending_gap.iter().filter(|&&g| g).count() as u64;
        let unwritten = Unwritten {
            samples: self.discarded + self.fill as u64,
            annotations: self.pending.len() as u64 - gap_annotations,
            gap_annotations,
        };
        self.out.seek(SeekFrom::Start(RECORDS_AT))?;
        let mut count = Vec::with_capacity(8);
        field(&mut count, &self.records.to_string(), 8);
        self.out.write_all(&count)?;
        if self.gaps == 0 {
            self.out.seek(SeekFrom::Start(RESERVED_AT))?;
            let mut r = Vec::with_capacity(44);
            field(&mut r, &reserved(self.format, false), 44);
            self.out.write_all(&r)?;
        }
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok((self.out, unwritten))
    }

    fn emit_record(&mut self) -> Result<(), Error> {
        let bps = self.format.bytes_per_sample();
        let n = self.channels * self.spr;
        for (v, b) in self.record[..n].iter().zip(self.bytes.chunks_exact_mut(bps)) {
            let le = v.to_le_bytes();
            b.copy_from_slice(&le[..bps]);
        }
        // The record's first sample is `spr` before the last one given.
        let onset = self.frac_ns - self.shift_ns
            + self.seg_onset_ns
            + self.span_ns(self.seg_samples - self.spr as u64);
        let frac = self.frac_ns - self.shift_ns;
        let ann = &mut self.bytes[n * bps..];
        ann.fill(0);
        let mut cur = io::Cursor::new(&mut ann[..]);
        write_onset(&mut cur, onset)?;
        cur.write_all(b"\x14\x14\x00")?;
        let mut sent = 0;
        for a in &self.pending {
            let mark = cur.position();
            let fits = (|| -> io::Result<()> {
                write_onset(&mut cur, frac + a.onset_ns)?;
                if let Some(d) = a.duration_ns {
                    cur.write_all(b"\x15")?;
                    write_secs(&mut cur, d.unsigned_abs())?;
                }
                cur.write_all(b"\x14")?;
                cur.write_all(a.text.as_bytes())?;
                cur.write_all(b"\x14\x00")
            })();
            if fits.is_err() || cur.position() as usize > self.ann_bytes {
                let end = cur.position() as usize;
                let start = mark as usize;
                cur.get_mut()[start..end.min(self.ann_bytes)].fill(0);
                break;
            }
            sent += 1;
        }
        for a in self.pending.drain(..sent) {
            self.free.push(a.text);
        }
        self.pending_gap.drain(..sent);
        self.out.write_all(&self.bytes)?;
        self.records += 1;
        self.written += self.spr as u64;
        self.fill = 0;
        Ok(())
    }
}

/// Offset of the recording field, which the start date and time follow.
const RECORDING_AT: u64 = 88;

/// The header's recording field (80 bytes, `Startdate dd-MMM-yyyy X X <recording>`), start date
/// and start time (8 each): the second in which the first data record starts.
fn start_fields(h: &mut Vec<u8>, start_ns: i64, recording: &str) {
    let dt = crate::civil::DateTime::from_unix(start_ns.div_euclid(1_000_000_000));
    let month = MONTHS[(dt.month as usize).saturating_sub(1) % 12];
    let rec = format!("Startdate {:02}-{month}-{:04} X X {recording}", dt.day, dt.year);
    field(h, &rec, 80);
    field(h, &format!("{:02}.{:02}.{:02}", dt.day, dt.month, dt.year.rem_euclid(100)), 8);
    field(h, &format!("{:02}.{:02}.{:02}", dt.hour, dt.minute, dt.second), 8);
}

/// The header's reserved field: `EDF+C`/`BDF+C`, or `+D` for a discontinuous file.
fn reserved(format: Format, discontinuous: bool) -> String {
    let f = if format == Format::Bdf { "BDF" } else { "EDF" };
    format!("{f}+{}", if discontinuous { 'D' } else { 'C' })
}

/// One signal as a file's header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalHeader {
    pub label: String,
    pub transducer: String,
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: i32,
    pub digital_max: i32,
    pub prefilter: String,
    pub samples_per_record: usize,
}

impl SignalHeader {
    /// Physical value of one digital step.
    pub fn gain(&self) -> f64 {
        (self.physical_max - self.physical_min) / f64::from(self.digital_max - self.digital_min).max(1.0)
    }

    /// `physical = digital × gain + offset`.
    pub fn offset(&self) -> f64 {
        self.physical_min - self.gain() * f64::from(self.digital_min)
    }

    pub fn is_annotations(&self) -> bool {
        self.label == "EDF Annotations" || self.label == "BDF Annotations"
    }
}

/// A file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub format: Format,
    pub patient: String,
    pub recording: String,
    /// The header's start date and time, seconds since the UNIX epoch (UTC as written).
    pub start_s: i64,
    /// Sub-second part of the start: the first data record's onset, ns.
    pub start_frac_ns: i64,
    /// The record count in the header (`-1` if the writer never finished).
    pub records_in_header: i64,
    /// Complete data records in the file (from the file size when the header says `-1` or more
    /// than the file holds).
    pub records: u64,
    pub record_duration_s: f64,
    /// Every signal, the annotations signal included.
    pub signals: Vec<SignalHeader>,
    header_bytes: u64,
}

impl Header {
    /// Time of the first sample, ns since the UNIX epoch.
    pub fn start_ns(&self) -> i64 {
        self.start_s * 1_000_000_000 + self.start_frac_ns
    }

    /// Indices of the data signals (all but annotations).
    pub fn data_signals(&self) -> Vec<usize> {
        (0..self.signals.len()).filter(|&i| !self.signals[i].is_annotations()).collect()
    }

    pub fn annotation_signal(&self) -> Option<usize> {
        self.signals.iter().position(SignalHeader::is_annotations)
    }

    fn record_bytes(&self) -> usize {
        self.signals.iter().map(|s| s.samples_per_record).sum::<usize>() * self.format.bytes_per_sample()
    }
}

/// One data record as read: digital values of each data signal, and its annotations.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The record's onset, ns after the first record's.
    pub onset_ns: i64,
    /// Digital values, one `Vec` per data signal (in [`Header::data_signals`] order).
    pub digital: Vec<Vec<i32>>,
    /// The record's annotations other than its own onset; onsets count from the first sample.
    pub annotations: Vec<Annotation>,
}

/// Reads an EDF+/BDF+ file one data record at a time. Reading records allocates only for
/// annotations (their text): the buffers of a [`Record`] are reused.
pub struct Reader<R: Read + Seek> {
    input: R,
    header: Header,
    next: u64,
    buf: Vec<u8>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn num<T: std::str::FromStr>(b: &[u8], what: &str) -> Result<T, Error> {
    let s = text(b);
    s.parse().map_err(|_| Error::Header(format!("{what} is `{s}`, not a number")))
}

impl<R: Read + Seek> Reader<R> {
    pub fn open(mut input: R) -> Result<Self, Error> {
        let mut fixed = [0u8; 256];
        input.read_exact(&mut fixed).map_err(|_| Error::Header("shorter than a header".into()))?;
        let format = match &fixed[..8] {
            [0xFF, rest @ ..] if rest == b"BIOSEMI" => Format::Bdf,
            v if text(v) == "0" => Format::Edf,
            _ => return Err(Error::Header("the version field is neither EDF nor BDF".into())),
        };
        let patient = text(&fixed[8..88]);
        let recording = text(&fixed[88..168]);
        let date = text(&fixed[168..176]);
        let time = text(&fixed[176..184]);
        let parse3 = |s: &str, what: &str| -> Result<[u32; 3], Error> {
            let p: Vec<u32> = s.split('.').filter_map(|x| x.parse().ok()).collect();
            <[u32; 3]>::try_from(p).map_err(|_| Error::Header(format!("{what} is `{s}`")))
        };
        let [day, month, yy] = parse3(&date, "the start date")?;
        let [hour, minute, second] = parse3(&time, "the start time")?;
        // EDF: years 85–99 are 1985–1999, 00–84 are 2000–2084; EDF+ gives the full year in the
        // recording field.
        let year = recording
            .strip_prefix("Startdate ")
            .and_then(|r| r.get(7..11))
            .and_then(|y| y.parse::<i64>().ok())
            .unwrap_or(if yy >= 85 { 1900 + i64::from(yy) } else { 2000 + i64::from(yy) });
        let start_s = crate::civil::DateTime { year, month, day, hour, minute, second }.to_unix();
        let header_bytes: u64 = num(&fixed[184..192], "the header size")?;
        let records_in_header: i64 = num(&fixed[236..244], "the record count")?;
        let record_duration_s: f64 = num(&fixed[244..252], "the record duration")?;
        let ns: usize = num(&fixed[252..256], "the signal count")?;
        if ns == 0 || header_bytes != 256 * (ns as u64 + 1) {
            return Err(Error::Header(format!("{ns} signals but a header of {header_bytes} bytes")));
        }
        let mut rest = vec![0u8; 256 * ns];
        input.read_exact(&mut rest).map_err(|_| Error::Header("the signal headers are cut short".into()))?;
        let mut at = 0;
        let mut col = |width: usize| -> Vec<&[u8]> {
            let v = (0..ns).map(|i| &rest[at + i * width..at + (i + 1) * width]).collect();
            at += ns * width;
            v
        };
        let labels = col(16);
        let transducers = col(80);
        let units = col(8);
        let pmin = col(8);
        let pmax = col(8);
        let dmin = col(8);
        let dmax = col(8);
        let prefilters = col(80);
        let spr = col(8);
        let mut signals = Vec::with_capacity(ns);
        for i in 0..ns {
            signals.push(SignalHeader {
                label: text(labels[i]),
                transducer: text(transducers[i]),
                unit: text(units[i]),
                physical_min: num(pmin[i], "a physical minimum")?,
                physical_max: num(pmax[i], "a physical maximum")?,
                digital_min: num(dmin[i], "a digital minimum")?,
                digital_max: num(dmax[i], "a digital maximum")?,
                prefilter: text(prefilters[i]),
                samples_per_record: num(spr[i], "samples per record")?,
            });
        }
        let mut header = Header {
            format,
            patient,
            recording,
            start_s,
            start_frac_ns: 0,
            records_in_header,
            records: 0,
            record_duration_s,
            signals,
            header_bytes,
        };
        let rb = header.record_bytes() as u64;
        if rb == 0 {
            return Err(Error::Header("data records of zero bytes".into()));
        }
        let len = input.seek(SeekFrom::End(0))?;
        let in_file = len.saturating_sub(header_bytes) / rb;
        header.records = match u64::try_from(records_in_header) {
            Ok(n) => n.min(in_file),
            Err(_) => in_file,
        };
        input.seek(SeekFrom::Start(header_bytes))?;
        // The header may claim records of any size; a buffer is made only for records the
        // file holds, so it is never larger than the file.
        let buf = if header.records > 0 { vec![0; rb as usize] } else { Vec::new() };
        let mut r = Reader { input, buf, header, next: 0 };
        if r.header.records > 0 {
            let mut first = Record::default();
            r.read_record(&mut first)?;
            r.header.start_frac_ns = first.onset_ns;
            r.input.seek(SeekFrom::Start(header_bytes))?;
            r.next = 0;
        }
        Ok(r)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads the next data record into `rec` (reusing its buffers). `Ok(false)` at the end.
    pub fn read_record(&mut self, rec: &mut Record) -> Result<bool, Error> {
        if self.next >= self.header.records {
            return Ok(false);
        }
        self.input.read_exact(&mut self.buf)?;
        self.next += 1;
        let bps = self.header.format.bytes_per_sample();
        let data = self.header.signals.iter().filter(|s| !s.is_annotations()).count();
        rec.digital.resize_with(data, Vec::new);
        rec.annotations.clear();
        let mut at = 0;
        let mut k = 0;
        let mut onset = None;
        for s in &self.header.signals {
            let bytes = &self.buf[at..at + s.samples_per_record * bps];
            at += bytes.len();
            if s.is_annotations() {
                parse_tals(bytes, &mut onset, &mut rec.annotations);
                continue;
            }
            let out = &mut rec.digital[k];
            k += 1;
            out.clear();
            out.extend(bytes.chunks_exact(bps).map(|b| match bps {
                2 => i32::from(i16::from_le_bytes([b[0], b[1]])),
                _ => i32::from_le_bytes([b[0], b[1], b[2], if b[2] & 0x80 != 0 { 0xFF } else { 0 }]),
            }));
        }
        let frac = self.header.start_frac_ns;
        rec.onset_ns = onset.unwrap_or(((self.next - 1) as f64 * self.header.record_duration_s * 1e9) as i64);
        rec.onset_ns -= frac;
        for a in &mut rec.annotations {
            a.onset_ns -= frac;
        }
        Ok(true)
    }
}

/// Parses the TALs of one record's annotation bytes: the first TAL with empty text is the
/// record's onset; the others are annotations (onsets after the header's start second).
fn parse_tals(bytes: &[u8], onset: &mut Option<i64>, out: &mut Vec<Annotation>) {
    for tal in bytes.split(|&b| b == 0).filter(|t| !t.is_empty()) {
        let mut parts = tal.split(|&b| b == 0x14);
        let Some(time) = parts.next() else { continue };
        let mut tp = time.splitn(2, |&b| b == 0x15);
        let Some(at) = tp.next().and_then(parse_onset) else { continue };
        let duration = tp.next().and_then(|d| {
            let mut s = Vec::with_capacity(d.len() + 1);
            s.push(b'+');
            s.extend_from_slice(d);
            parse_onset(&s)
        });
        let texts: Vec<&[u8]> = parts.filter(|t| !t.is_empty()).collect();
        if texts.is_empty() {
            if onset.is_none() {
                *onset = Some(at);
            }
            continue;
        }
        for t in texts {
            out.push(Annotation {
                onset_ns: at,
                duration_ns: duration,
                text: String::from_utf8_lossy(t).into_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_print_and_parse_exactly() {
        for ns in [0i64, 1_000_000_000, 1_500_000_000, 123_456_789, 62_500_000, -250_000_000] {
            let mut v = Vec::new();
            write_onset(&mut v, ns).unwrap();
            assert_eq!(parse_onset(&v), Some(ns), "{}", String::from_utf8_lossy(&v));
        }
        let mut v = Vec::new();
        write_onset(&mut v, 2_062_500_000).unwrap();
        assert_eq!(v, b"+2.0625");
        assert_eq!(parse_onset(b"12"), None);
    }

    #[test]
    fn numbers_fit_their_header_fields() {
        assert_eq!(fmt_num(187_500.0, 8), "187500");
        assert_eq!(fmt_num(-4_500_000.0, 8), "-4500000");
        assert_eq!(fmt_num(1.0 / 3.0, 8), "0.333333");
        assert_eq!(fmt_num(0.99975, 8), "0.99975");
    }

    #[test]
    fn records_hold_whole_samples_and_exact_durations() {
        assert_eq!(record_samples_for(4000.0, 1.0), Some(4000));
        assert_eq!(record_samples_for(250.0, 0.5), Some(125));
        assert_eq!(record_samples_for(4000.0 / 3.0, 1.0), Some(1333));
        assert_eq!(record_samples_for(0.0, 1.0), None);
        assert_eq!(record_samples_dividing(4000.0, 16, 1.0), Some(16));
        assert_eq!(record_samples_dividing(250.0, 500, 1.0), Some(250));
        assert_eq!(record_samples_dividing(250.0, 7, 1.0), Some(7));
        assert_eq!(record_samples_dividing(4000.0, 6000, 1.0), Some(3000));
    }
}
