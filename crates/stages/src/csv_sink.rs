//! `csv_sink`: one row per sample (time series) or per channel spectrum, DESIGN §5.
use pipeline::rt::monotonic_ns;
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

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
}

/// Writes `ns` (since the UNIX epoch) as seconds with 6 decimals, without floating point.
fn write_ts(w: &mut impl Write, ns: i64) -> std::io::Result<()> {
    let us = ns.div_euclid(1000);
    write!(w, "{}.{:06}", us.div_euclid(1_000_000), us.rem_euclid(1_000_000))
}

/// The time of sample `i` of a packet: first sample + i/rate.
fn sample_ts(first_ns: i64, i: usize, rate: f64) -> i64 {
    first_ns + (i as f64 * 1e9 / rate).round() as i64
}

impl CsvSink {
    fn write(&mut self, pkt: &Packet) -> std::io::Result<()> {
        let Some(w) = self.out.as_mut() else { return Ok(()) };
        let h = pkt.header();
        let (ch, n) = (h.channels as usize, h.samples as usize);
        match h.kind {
            Kind::Raw | Kind::Voltage => {
                for i in 0..n {
                    write_ts(w, sample_ts(h.timestamp_ns, i, h.rate))?;
                    for c in 0..ch {
                        match h.kind {
                            Kind::Raw => write!(w, ",{}", pkt.i32s()[c * n + i])?,
                            _ => write!(w, ",{}", pkt.f32s()[c * n + i])?,
                        }
                    }
                    w.write_all(b"\n")?;
                }
            }
            Kind::Spectrum | Kind::BandPower => {
                for c in 0..ch {
                    write_ts(w, h.timestamp_ns)?;
                    let label = h.meta.labels.get(c).map(String::as_str).unwrap_or("");
                    write!(w, ",{label}")?;
                    for v in &pkt.f32s()[c * n..(c + 1) * n] {
                        write!(w, ",{v}")?;
                    }
                    w.write_all(b"\n")?;
                }
            }
        }
        let now = monotonic_ns();
        if now.saturating_sub(self.last_flush) >= self.flush_ns {
            w.flush()?;
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
        self.last_flush = monotonic_ns();
        Ok(())
    }

    fn process(&mut self, _: usize, pkt: Packet, _: &mut Context<'_>) -> Result<(), StageError> {
        self.write(&pkt).map_err(|e| StageError::msg(format!("writing {}: {e}", self.path.display())))
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        if let Some(mut w) = self.out.take() {
            w.flush()?;
            w.get_ref().sync_all()?;
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
    const DOC: &'static str = "Writes CSV. Time series: header `timestamp,<label>…`, one row per sample, \
        `timestamp` in seconds since the UNIX epoch with 6 decimals, values in µV (or raw counts). \
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
                    let label = s.meta.labels.get(c).cloned().unwrap_or_else(|| format!("Ch{}", c + 1));
                    header.push(',');
                    header.push_str(&label);
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
    fn timestamps_have_six_decimals_without_rounding_drift() {
        let mut v = Vec::new();
        write_ts(&mut v, 1_700_000_000_123_456_789).unwrap();
        assert_eq!(String::from_utf8(v).unwrap(), "1700000000.123456");
        assert_eq!(sample_ts(0, 3, 4000.0), 750_000);
    }

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
