//! Times eegd's Butterworth band-pass on a file of samples, packet by packet as the pipeline
//! runs it; `scripts/bench/brainflow_bandpass.py` runs it beside BrainFlow on the same data.
//!
//! ```text
//! cargo run --release -p dsp --example bandpass_timing -- \
//!     DATA CHANNELS RATE LOW_HZ HIGH_HZ ORDER BATCH REPEATS OUT
//! ```
//! DATA: little-endian `f32`, planar (`channels × n`). Prints one JSON line: the best of
//! REPEATS runs in ns of thread CPU time, per channel-sample-section too; writes the filtered data to OUT (same
//! layout) so the caller can compare outputs.
use dsp::{butter, BandKind, SosBank};
use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// This thread's CPU time: on a shared machine, time spent descheduled does not count.
fn cpu_now() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, channels, rate, low, high, order, batch, repeats, out] = &args[..] else {
        return Err("usage: DATA CHANNELS RATE LOW_HZ HIGH_HZ ORDER BATCH REPEATS OUT".into());
    };
    let bytes = std::fs::read(data)?;
    let input: Vec<f32> =
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (channels, batch, repeats): (usize, usize, usize) =
        (channels.parse()?, batch.parse()?, repeats.parse()?);
    let n = input.len() / channels;
    let sos = butter(order.parse()?, BandKind::Bandpass(low.parse()?, high.parse()?), rate.parse()?)?;
    let mut packet = vec![0.0f32; channels * batch];
    let mut output = vec![0.0f32; input.len()];
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let mut bank = SosBank::new(&sos, channels);
        let t = cpu_now();
        let mut at = 0;
        while at < n {
            let m = batch.min(n - at);
            // Gather one packet (planar, stride m), filter it, scatter it back.
            for c in 0..channels {
                packet[c * m..(c + 1) * m].copy_from_slice(&input[c * n + at..c * n + at + m]);
            }
            bank.process(&mut packet, channels, m);
            for c in 0..channels {
                output[c * n + at..c * n + at + m].copy_from_slice(&packet[c * m..(c + 1) * m]);
            }
            at += m;
        }
        best = best.min((cpu_now() - t).as_nanos() as f64);
    }
    let bytes: Vec<u8> = output.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, bytes)?;
    let per = best / (channels * n * sos.len()) as f64;
    println!(
        "{{\"ns\":{best},\"channels\":{channels},\"samples\":{n},\"sections\":{},\"batch\":{batch},\"ns_per_channel_sample_section\":{per}}}",
        sos.len()
    );
    Ok(())
}
