//! `csv_sink`: one row per sample (time series) or per channel spectrum. For time series it
//! records markers in a side file `<name>.markers.csv` (`timestamp,text`, the timestamp of the
//! sample each marker falls on), and each gap in the input's timestamps as a row there too
//! (`gap: N samples not acquired`, at the first missing sample's time). The layout is
//! `formats::csv`'s.
use crate::markers::Marker;
use crate::recorder::{new_report, MarkerPlacer, RecorderReport};
use formats::csv::{sample_time_ns, write_marker, write_rows, write_timestamp, MARKERS_HEADER};
use pipeline::rt::monotonic_ns;
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn d_flush_ms() -> u64 {
    1000
}

/// Parameters of `csv_sink`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSinkParams {
    /// The file to write (created or truncated).
    pub path: PathBuf,
    /// Longest time data may sit in memory before it is written out, ms (default 1000).
    #[serde(default = "d_flush_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub flush_ms: u64,
}

/// Writes a stream as CSV.
pub struct CsvSink {
    path: PathBuf,
    flush_ns: u64,
    header: String,
    out: Option<BufWriter<File>>,
    last_flush: u64,
    /// Time series only: the markers side file, and where markers fall.
    markers_path: Option<PathBuf>,
    markers: Option<BufWriter<File>>,
    placer: MarkerPlacer,
    /// Time of the first sample, once the first packet is in.
    start_ns: Option<i64>,
    /// Time of the first sample of the current stretch (since the last gap), and its samples.
    seg_ns: i64,
    seg_samples: u64,
    samples: u64,
    rate: f64,
    report: Arc<RecorderReport>,
}

/// `<dir>/<stem>.markers.csv` beside `path`.
pub fn markers_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.markers.csv"))
}

/// Writes marker `m` at the sample nearest its time, on the grid of the stretch that starts at
/// `seg_ns`; a marker before the first sample (`start`) is not in the recording: dropped.
fn place(
    mw: &mut impl Write,
    start: i64,
    seg_ns: i64,
    rate: f64,
    m: &Marker,
    report: &RecorderReport,
) -> std::io::Result<()> {
    let k = ((m.timestamp_ns - seg_ns) as f64 * rate / 1e9).round() as i64;
    let at = seg_ns + (k as f64 * 1e9 / rate).round() as i64;
    if at < start {
        report.markers_dropped.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    write_marker(mw, at, &m.text)?;
    report.markers.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

impl CsvSink {
    fn place_markers(&mut self) -> std::io::Result<()> {
        let (Some(start), Some(mw)) = (self.start_ns, self.markers.as_mut()) else { return Ok(()) };
        let (seg, rate, report) = (self.seg_ns, self.rate, &self.report);
        self.placer.drain(|m| place(mw, start, seg, rate, m, report))
    }

    fn write(&mut self, pkt: &Packet) -> std::io::Result<()> {
        let h = pkt.header();
        let (ch, n) = (h.channels as usize, h.samples as usize);
        if matches!(h.kind, Kind::Raw | Kind::Voltage) {
            if self.start_ns.is_none() {
                self.start_ns = Some(h.timestamp_ns);
                self.seg_ns = h.timestamp_ns;
                self.report.first_ns.store(h.timestamp_ns, Ordering::Release);
            }
            let expected = sample_time_ns(self.seg_ns, self.seg_samples as usize, self.rate);
            let late = (h.timestamp_ns - expected) as f64 * self.rate / 1e9;
            if late > 0.5 {
                // Rows carry their own time; the gap is said in the markers file.
                let missing = late.round() as u64;
                self.report.gap_samples.fetch_add(missing, Ordering::Relaxed);
                self.report.gaps.fetch_add(1, Ordering::Relaxed);
                if let Some(mw) = self.markers.as_mut() {
                    write_timestamp(mw, expected)?;
                    writeln!(mw, ",\"gap: {missing} samples not acquired\"")?;
                }
                self.seg_ns = h.timestamp_ns;
                self.seg_samples = 0;
            }
            self.place_markers()?;
            self.seg_samples += n as u64;
        }
        let Some(w) = self.out.as_mut() else { return Ok(()) };
        match h.kind {
            Kind::Raw => write_rows(w, h.timestamp_ns, h.rate, ch, n, &pkt.i32s()[..h.len()])?,
            Kind::Voltage => write_rows(w, h.timestamp_ns, h.rate, ch, n, &pkt.f32s()[..h.len()])?,
            Kind::Spectrum | Kind::BandPower => {
                for c in 0..ch {
                    write_timestamp(w, h.timestamp_ns)?;
                    let label = h.meta.labels.get(c).map(String::as_str).unwrap_or("");
                    write!(w, ",{label}")?;
                    for v in &pkt.f32s()[c * n..(c + 1) * n] {
                        write!(w, ",{v}")?;
                    }
                    w.write_all(b"\n")?;
                }
            }
        }
        self.samples += n as u64;
        self.report.samples.store(self.samples, Ordering::Relaxed);
        let now = monotonic_ns();
        if now.saturating_sub(self.last_flush) >= self.flush_ns {
            w.flush()?;
            if let Some(m) = self.markers.as_mut() {
                m.flush()?;
            }
            self.report.records.fetch_add(1, Ordering::Relaxed);
            self.last_flush = now;
        }
        Ok(())
    }
}

impl Stage for CsvSink {
    fn start(&mut self) -> Result<(), StageError> {
        let mut w = BufWriter::with_capacity(1 << 16, File::create(&self.path)?);
        w.write_all(self.header.as_bytes())?;
        w.flush()?;
        self.out = Some(w);
        if let Some(p) = &self.markers_path {
            let mut m = BufWriter::new(File::create(p)?);
            m.write_all(MARKERS_HEADER.as_bytes())?;
            m.flush()?;
            self.markers = Some(m);
            self.placer.start();
        }
        self.last_flush = monotonic_ns();
        Ok(())
    }

    fn process(&mut self, _: usize, pkt: Packet, _: &mut Context<'_>) -> Result<(), StageError> {
        self.write(&pkt).map_err(|e| StageError::msg(format!("writing {}: {e}", self.path.display())))
    }

    /// Locked while it records: nothing upstream may change under a recording.
    fn is_locked(&self) -> bool {
        self.out.is_some()
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        self.placer.stop();
        let placed = if self.start_ns.is_some() {
            self.place_markers()
        } else {
            // Nothing was recorded: markers posted meanwhile fell outside it.
            let report = &self.report;
            self.placer.drain(|_| {
                report.markers_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        };
        self.report.markers_dropped.fetch_add(self.placer.lost(), Ordering::Relaxed);
        let path = self.path.clone();
        let err = |e: std::io::Error| StageError::msg(format!("writing {}: {e}", path.display()));
        if let Some(mut m) = self.markers.take() {
            m.flush().map_err(err)?;
            m.get_ref().sync_all().map_err(err)?;
        }
        placed.map_err(err)?;
        if let Some(mut w) = self.out.take() {
            w.flush().map_err(err)?;
            w.get_ref().sync_all().map_err(err)?;
            self.report.closed.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl StageType for CsvSink {
    type Params = CsvSinkParams;
    const NAME: &'static str = "csv_sink";
    const ROLE: Role = Role::Sink;
    const ACCEPTS: &'static [Kind] = Kind::ANY;
    const BLOCKING_IO: bool = true;
    const RECORDS: bool = true;
    const DOC: &'static str = "Writes CSV. Time series: header `timestamp,<label>…`, one row per sample, \
        `timestamp` in seconds since the UNIX epoch with 6 decimals, values in µV (or raw counts); \
        markers go to `<name>.markers.csv` (`timestamp,text`, at the sample they fall on). \
        Spectra and band powers: header `timestamp,channel,<freq or band>…`, one row per channel.\n\n\
        Inputs: any kind. Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - csv_sink: { path: /tmp/eegd-example.csv }\n";

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let s = &inputs[0];
        let mut header = String::new();
        match s.kind {
            Kind::Raw | Kind::Voltage => {
                header.push_str("timestamp");
                for c in 0..s.channels {
                    header.push(',');
                    header.push_str(&crate::recorder::label(&s.meta, c));
                }
            }
            Kind::Spectrum => {
                header.push_str("timestamp,channel");
                for f in &s.meta.axis {
                    header.push_str(&format!(",{f}"));
                }
            }
            Kind::BandPower => {
                header.push_str("timestamp,channel");
                for b in &s.meta.bands {
                    header.push(',');
                    header.push_str(b);
                }
            }
        }
        header.push('\n');
        Ok((
            CsvSink {
                path: p.path.clone(),
                flush_ns: p.flush_ms * 1_000_000,
                header,
                out: None,
                last_flush: 0,
                markers_path: matches!(s.kind, Kind::Raw | Kind::Voltage).then(|| markers_path(&p.path)),
                markers: None,
                placer: MarkerPlacer::default(),
                start_ns: None,
                seg_ns: 0,
                seg_samples: 0,
                samples: 0,
                rate: s.rate,
                report: new_report(&p.path),
            },
            None,
        ))
    }
}

pipeline::register_stage!(CsvSink);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::{Header, StreamMeta};
    use std::sync::Arc;

    #[test]
    fn writes_header_and_one_row_per_sample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let meta = Arc::new(StreamMeta { labels: vec!["Fp1".into(), "Fp2".into()], ..Default::default() });
        let input =
            StreamInfo { kind: Kind::Voltage, rate: 1000.0, channels: 2, max_samples: 2, meta: meta.clone() };
        let mut h = Harness::new("csv_sink", serde_json::json!({"path": path}), &[input], 4).unwrap();
        h.start().unwrap();
        let hdr = Header {
            kind: Kind::Voltage,
            channels: 2,
            samples: 2,
            rate: 1000.0,
            timestamp_ns: 2_000_000_000,
            meta,
            ..Header::default()
        };
        h.push(0, h.packet_f32(hdr, &[1.5, 2.0, -3.0, 4.25])).unwrap();
        h.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "timestamp,Fp1,Fp2\n2.000000,1.5,-3\n2.001000,2,4.25\n");
    }
}
