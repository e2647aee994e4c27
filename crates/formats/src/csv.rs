//! The CSV layout of `csv_sink` (time series): a header `timestamp,<label>…`, then one row per
//! sample, `timestamp` in seconds since the UNIX epoch with 6 decimals, then one value per
//! channel. Markers go to a side file `<name>.markers.csv` with the header `timestamp,text`.
//!
//! Written by hand: the rows are numbers and labels, and the writer must format them into a
//! buffered writer without allocating (the `csv` crate's writer allocates per record).
use std::io::{self, BufRead, Write};

/// Why a CSV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
}

/// Writes `ns` (since the UNIX epoch) as seconds with 6 decimals, without floating point.
pub fn write_timestamp(w: &mut impl Write, ns: i64) -> io::Result<()> {
    let us = ns.div_euclid(1000);
    write!(w, "{}.{:06}", us.div_euclid(1_000_000), us.rem_euclid(1_000_000))
}

/// Parses seconds with up to 9 decimals into ns, exactly.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_with_resolution(s).map(|(ns, _)| ns)
}

/// Parses seconds with up to 9 decimals into ns, exactly, with the resolution the text was
/// printed to, in ns (1000 for six decimals).
pub fn parse_timestamp_with_resolution(s: &str) -> Option<(i64, i64)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let res = 10i64.pow(9 - frac.len() as u32);
    let f: i64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(f * res)?;
    Some((if neg { -ns } else { ns }, res))
}

/// The time of sample `i` after a first sample at `first_ns`, at `rate` samples per second.
pub fn sample_time_ns(first_ns: i64, i: usize, rate: f64) -> i64 {
    first_ns + (i as f64 * 1e9 / rate).round() as i64
}

/// The header row: `timestamp,<label>…` and a newline.
pub fn write_header(w: &mut impl Write, labels: &[String]) -> io::Result<()> {
    w.write_all(b"timestamp")?;
    for l in labels {
        write!(w, ",{l}")?;
    }
    w.write_all(b"\n")
}

/// A value of a time-series row.
pub trait CsvValue: Copy + std::fmt::Display {}
impl CsvValue for f32 {}
impl CsvValue for i32 {}

/// Writes `samples` rows of channel-major `data` (`data[c * samples + i]`), the first at
/// `first_ns`. Allocates nothing.
pub fn write_rows<T: CsvValue>(
    w: &mut impl Write,
    first_ns: i64,
    rate: f64,
    channels: usize,
    samples: usize,
    data: &[T],
) -> io::Result<()> {
    for i in 0..samples {
        write_timestamp(w, sample_time_ns(first_ns, i, rate))?;
        for c in 0..channels {
            write!(w, ",{}", data[c * samples + i])?;
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// The header row of a markers side file.
pub const MARKERS_HEADER: &str = "timestamp,text\n";

/// One marker row: `timestamp,"text"` (quotes doubled inside, line breaks as spaces). Allocates
/// nothing.
pub fn write_marker(w: &mut impl Write, ns: i64, text: &str) -> io::Result<()> {
    write_timestamp(w, ns)?;
    w.write_all(b",\"")?;
    for b in text.bytes() {
        match b {
            b'"' => w.write_all(b"\"\"")?,
            b'\n' | b'\r' => w.write_all(b" ")?,
            _ => w.write_all(&[b])?,
        }
    }
    w.write_all(b"\"\n")
}

/// A time-series CSV file read back: its labels, then rows on demand.
pub struct CsvReader<R: BufRead> {
    input: R,
    labels: Vec<String>,
    line: String,
    at: usize,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads the header row.
    pub fn new(mut input: R) -> Result<Self, CsvError> {
        let mut line = String::new();
        input.read_line(&mut line)?;
        let mut cols = line.trim_end_matches(['\n', '\r']).split(',');
        if cols.next() != Some("timestamp") {
            return Err(CsvError::Parse { line: 1, message: "the first column must be `timestamp`".into() });
        }
        let labels = cols.map(str::to_string).collect();
        Ok(CsvReader { input, labels, line, at: 1 })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Reads the next row into `values` (one per label); returns its timestamp in ns, or `None`
    /// at the end of the file.
    pub fn next_row(&mut self, values: &mut [f64]) -> Result<Option<i64>, CsvError> {
        loop {
            self.line.clear();
            if self.input.read_line(&mut self.line)? == 0 {
                return Ok(None);
            }
            self.at += 1;
            if !self.line.trim().is_empty() {
                break;
            }
        }
        let line = self.at;
        let err = |message: String| CsvError::Parse { line, message };
        let mut cols = self.line.trim_end_matches(['\n', '\r']).split(',');
        let ts = cols.next().unwrap_or("");
        let ts = parse_timestamp(ts).ok_or_else(|| err(format!("timestamp `{ts}` is not seconds")))?;
        let mut n = 0;
        for (k, c) in cols.enumerate() {
            let slot = values.get_mut(k).ok_or_else(|| err("more values than labels".into()))?;
            *slot = c.trim().parse().map_err(|_| err(format!("`{c}` is not a number")))?;
            n += 1;
        }
        if n != values.len() {
            return Err(err(format!("{n} values for {} labels", values.len())));
        }
        Ok(Some(ts))
    }
}

/// Reads a markers side file: `(timestamp ns, text)` rows.
pub fn read_markers(input: impl BufRead) -> Result<Vec<(i64, String)>, CsvError> {
    let mut out = Vec::new();
    for (k, line) in input.lines().enumerate().skip(1) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: &str| CsvError::Parse { line: k + 1, message: message.into() };
        let (ts, text) = line.split_once(',').ok_or_else(|| err("expected `timestamp,text`"))?;
        let ts = parse_timestamp(ts).ok_or_else(|| err("bad timestamp"))?;
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        out.push((ts, text.replace("\"\"", "\"")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_microsecond() {
        let mut v = Vec::new();
        write_timestamp(&mut v, 1_700_000_000_123_456_789).unwrap();
        assert_eq!(String::from_utf8(v).unwrap(), "1700000000.123456");
        assert_eq!(parse_timestamp("1700000000.123456"), Some(1_700_000_000_123_456_000));
        assert_eq!(parse_timestamp("2"), Some(2_000_000_000));
        assert_eq!(parse_timestamp("x.1"), None);
        assert_eq!(sample_time_ns(0, 3, 4000.0), 750_000);
    }

    #[test]
    fn rows_round_trip() {
        let mut v = Vec::new();
        write_header(&mut v, &["Fp1".into(), "Fp2".into()]).unwrap();
        write_rows(&mut v, 2_000_000_000, 1000.0, 2, 2, &[1.5f32, 2.0, -3.0, 4.25]).unwrap();
        assert_eq!(
            String::from_utf8(v.clone()).unwrap(),
            "timestamp,Fp1,Fp2\n2.000000,1.5,-3\n2.001000,2,4.25\n"
        );
        let mut r = CsvReader::new(&v[..]).unwrap();
        assert_eq!(r.labels(), ["Fp1", "Fp2"]);
        let mut row = [0.0; 2];
        assert_eq!(r.next_row(&mut row).unwrap(), Some(2_000_000_000));
        assert_eq!(row, [1.5, -3.0]);
        assert_eq!(r.next_row(&mut row).unwrap(), Some(2_001_000_000));
        assert_eq!(row, [2.0, 4.25]);
        assert_eq!(r.next_row(&mut row).unwrap(), None);
    }

    #[test]
    fn markers_quote_their_text() {
        let mut v = MARKERS_HEADER.as_bytes().to_vec();
        write_marker(&mut v, 1_500_000_000, "say \"go\", now").unwrap();
        assert_eq!(
            String::from_utf8(v.clone()).unwrap(),
            "timestamp,text\n1.500000,\"say \"\"go\"\", now\"\n"
        );
        assert_eq!(read_markers(&v[..]).unwrap(), vec![(1_500_000_000, "say \"go\", now".to_string())]);
    }
}
