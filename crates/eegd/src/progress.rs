//! What `eegd run` tells its user while it runs headless: on a terminal, one progress line
//! redrawn in place (elapsed time, samples acquired, drops, the recording's size); and always,
//! at the end, a summary (duration, samples per stream, drops, overruns, latency, files
//! written). Both go to standard error; standard output stays for what scripts read (the
//! session folder). Nothing here runs on the data path: it reads the pipeline's counters.
use pipeline::exec::Shared;
use pipeline::stage::{lookup, Role};
use pipeline::topology::graph::Plan;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the progress line is redrawn.
pub const TICK: Duration = Duration::from_millis(500);

/// The files a plan's recording sinks write (their `path` parameter), in stage order.
pub fn recorded_files(plan: &Plan) -> Vec<PathBuf> {
    plan.stages
        .iter()
        .filter(|s| lookup(s.type_name).is_some_and(|r| r.records))
        .filter_map(|s| s.stage.params_json().get("path").and_then(|p| p.as_str()).map(PathBuf::from))
        .collect()
}

pub struct Progress {
    shared: Arc<Shared>,
    start: Instant,
    files: Vec<PathBuf>,
    /// Draw the progress line (standard error is a terminal).
    live: bool,
    drawn: bool,
}

impl Progress {
    pub fn new(shared: Arc<Shared>, files: Vec<PathBuf>, live: bool) -> Progress {
        Progress { shared, start: Instant::now(), files, live, drawn: false }
    }

    /// Whether the caller should wake every [`TICK`] to redraw.
    pub fn live(&self) -> bool {
        self.live
    }

    /// Redraws the progress line (on a terminal only).
    pub fn tick(&mut self) {
        if !self.live {
            return;
        }
        let (samples, drops) = self.counts();
        let mut line = format!("\r\x1b[2K{:>7.1} s  {} samples", self.start.elapsed().as_secs_f64(), samples);
        line.push_str(&format!("  {drops} drops"));
        let bytes = self.bytes();
        if !self.files.is_empty() {
            line.push_str(&format!("  recording {}", size(bytes)));
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the progress line, so that what follows starts on a clean line.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = std::io::stderr().write_all(b"\r\x1b[2K");
            self.drawn = false;
        }
    }

    /// Samples acquired by the sources (the sum over sources), and packets dropped anywhere.
    fn counts(&self) -> (u64, u64) {
        let topo = self.shared.stages();
        let snaps = topo.snapshots();
        let samples =
            topo.iter().zip(&snaps).filter(|(i, _)| i.role == Role::Source).map(|(_, s)| s.samples_out).sum();
        let drops = snaps.iter().map(|s| s.drops).sum::<u64>()
            + self.shared.edge_snapshots().iter().map(|e| e.dropped).sum::<u64>();
        (samples, drops)
    }

    fn bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
    }

    /// The summary, printed whatever the terminal: several lines, ending in a newline.
    pub fn summary(&self, session: Option<&Path>) -> String {
        let mut out = String::new();
        let topo = self.shared.stages();
        let snaps = topo.snapshots();
        out.push_str(&format!("Summary: ran {:.1} s\n", self.start.elapsed().as_secs_f64()));
        for (info, s) in topo.iter().zip(&snaps) {
            if info.role != Role::Source {
                continue;
            }
            let stream = info
                .output
                .as_ref()
                .map(|o| {
                    let secs = if o.rate > 0.0 { s.samples_out as f64 / o.rate } else { 0.0 };
                    format!(" × {} channels at {} Hz ({secs:.1} s of data)", o.channels, o.rate)
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  stream {}: {} samples{stream}, overruns {}\n",
                s.name, s.samples_out, s.overruns
            ));
        }
        let stage_drops: u64 = snaps.iter().map(|s| s.drops).sum();
        let queue_drops: u64 = self.shared.edge_snapshots().iter().map(|e| e.dropped).sum();
        let overruns: u64 = snaps.iter().map(|s| s.overruns).sum();
        let errors: u64 = snaps.iter().map(|s| s.errors).sum();
        out.push_str(&format!(
            "  drops: {} (stages {stage_drops}, queues {queue_drops}); overruns: {overruns}; errors: {errors}\n",
            stage_drops + queue_drops
        ));
        let lat = self.shared.latency_ns.percentiles();
        if lat.count > 0 {
            out.push_str(&format!(
                "  latency (source → sinks): p50 {:.1} µs, p99 {:.1} µs over {} packets\n",
                lat.p50 as f64 / 1e3,
                lat.p99 as f64 / 1e3,
                lat.count
            ));
        } else {
            out.push_str("  latency: no packets reached a sink\n");
        }
        if let Some(dir) = session {
            out.push_str(&format!("  session: {}\n", dir.display()));
        }
        if self.files.is_empty() {
            out.push_str("  files written: none\n");
        } else {
            out.push_str("  files written:\n");
            for f in &self.files {
                let len = std::fs::metadata(f).map(|m| size(m.len())).unwrap_or_else(|_| "missing".into());
                out.push_str(&format!("    {} ({len})\n", f.display()));
            }
        }
        out
    }
}

/// A byte count for people: `812 B`, `3.4 kB`, `1.2 MB`, `2.0 GB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1e3 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(3_400), "3.4 kB");
        assert_eq!(size(1_250_000), "1.2 MB");
        assert_eq!(size(2_000_000_000), "2.0 GB");
    }
}
