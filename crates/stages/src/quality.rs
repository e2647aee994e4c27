//! Signal quality of an ADS1299 source (hardware or emulator), computed on the data path from
//! the raw counts and status words, always on:
//!
//! - per channel, every quarter second: **railed** (a sample at 90 % of full scale or beyond,
//!   ±0.9 × VREF / gain), **flat** (peak-to-peak of at most [`FLAT_COUNTS`]), **lead-off** (the
//!   channel's `LOFF_STATP`/`LOFF_STATN` bit in any status word), **rms** (µV, about the mean);
//! - with AC lead-off at 31.2 Hz on, every 1.024 s (32 periods): the **impedance**, OpenBCI's
//!   method: the 31.25 Hz amplitude of the response (a lock-in over whole periods, equal to
//!   √2·σ of the 31.2 Hz band) over the lead-off current, less the board's 2.2 kΩ series
//!   resistor. The chip's excitation is a square wave, so the amplitude is first divided by the
//!   fundamental's share of a sampled square wave (4/π for many samples per period);
//! - on request (the self-test), per channel min, max, mean, rms and zero crossings over a
//!   given number of samples.
//!
//! Results go to a [`QualityBoard`] of atomics that the control plane reads; [`boards`] finds
//! them by stage name. Real-time contract: after [`Quality::new`], [`Quality::push`] and
//! [`Quality::end_packet`] never allocate, lock or block (per sample a few multiply-adds per
//! channel; the lock-in table is built once).
use schemars::JsonSchema;
use sensors::registers::{loff, CHANNELS, MAX_CHIPS, VREF};
/// The datasheet's shorted-input noise (µV rms, µVpp) at a rate and gain.
pub use sensors::sim::shorted_noise_uv;
use sensors::sim::SERIES_OHM;
use sensors::{ChannelConfig, Config};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Channels a source can have.
const MAX: usize = MAX_CHIPS * CHANNELS;
/// Railed: |counts| at or above 90 % of the 24-bit full scale (OpenBCI's "railed" threshold).
pub const RAIL_COUNTS: i32 = (0.9 * (1 << 23) as f64) as i32;
/// Flat: peak-to-peak of at most this many counts over a window (a dead or clipped input; a
/// live one shows at least the chip's own noise, 0.14 µV rms = 6 counts at gain 24, 250 SPS).
pub const FLAT_COUNTS: i32 = 2;
/// Periods of 31.25 Hz in one impedance measurement (1.024 s).
const LOCK_IN_PERIODS: usize = 32;
/// Impedance thresholds of the status, kΩ: good below the first, fair below the second.
pub const GOOD_KOHM: f64 = 10.0;
pub const FAIR_KOHM: f64 = 50.0;
/// Above this rms (µV) a channel without a measured impedance is at best fair (movement,
/// mains, a poor contact).
pub const NOISY_UV: f64 = 100.0;

/// Lead-off detection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeadOffMode {
    /// No lead-off current (default).
    #[default]
    Off,
    /// A DC current; the comparators flag electrodes that are off.
    Dc,
    /// An AC current at 31.2 Hz: the comparators, and impedance per channel.
    Ac,
}

fn d_current() -> u32 {
    6
}

/// `lead_off` of `ads1299` and `emulator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadOffParams {
    /// `off` (default), `dc` or `ac` (31.2 Hz, the impedance mode).
    #[serde(default)]
    pub mode: LeadOffMode,
    /// Excitation current, nA: 6 (default), 24, 6000 or 24000.
    #[serde(default = "d_current")]
    pub current_na: u32,
}

impl Default for LeadOffParams {
    fn default() -> Self {
        LeadOffParams { mode: LeadOffMode::Off, current_na: 6 }
    }
}

impl LeadOffParams {
    /// The error of a current the chip does not have.
    pub fn check(&self) -> Option<pipeline::stage::ParamError> {
        (!loff::CURRENTS_NA.contains(&(self.current_na as f64))).then(|| {
            pipeline::stage::ParamError::new(
                "lead_off",
                format!(
                    "`current_na` {} is not an ADS1299 lead-off current (6, 24, 6000 or 24000)",
                    self.current_na
                ),
            )
        })
    }

    /// Sets the chip's lead-off registers: the current into every channel's positive input (its
    /// electrode), the comparators on, DC or AC at 31.2 Hz.
    pub fn apply(&self, cfg: &mut Config) {
        use sensors::config::{LeadOffCurrent as C, LeadOffFrequency as F};
        let on = self.mode != LeadOffMode::Off;
        cfg.lead_off.comparators = on;
        cfg.lead_off.frequency = if self.mode == LeadOffMode::Ac { F::Ac31_2Hz } else { F::Dc };
        cfg.lead_off.current = match self.current_na {
            24 => C::Na24,
            6000 => C::Ua6,
            24000 => C::Ua24,
            _ => C::Na6,
        };
        for c in cfg.channels.iter_mut().filter(|c| !c.power_down) {
            c.loff_p = on;
        }
    }
}

/// An `f64` in an `AtomicU64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn nan() -> Self {
        AtomicF64(AtomicU64::new(f64::NAN.to_bits()))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
struct Cells {
    impedance_kohm: AtomicF64,
    rms_uv: AtomicF64,
    railed: AtomicBool,
    flat: AtomicBool,
    lead_off: AtomicBool,
    railed_samples: AtomicU64,
}

#[derive(Debug, Default)]
struct MeasureCells {
    min_uv: AtomicF64,
    max_uv: AtomicF64,
    mean_uv: AtomicF64,
    rms_uv: AtomicF64,
    crossings: AtomicU64,
    first_cross: AtomicU64,
    last_cross: AtomicU64,
}

/// One channel's quality as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelQuality {
    pub label: String,
    /// `None` until AC lead-off has measured it (and for a railed or lead-off channel).
    pub impedance_kohm: Option<f64>,
    pub lead_off: bool,
    pub railed: bool,
    pub flat: bool,
    pub rms_uv: Option<f64>,
    pub status: &'static str,
    /// Samples at or beyond the railed threshold since the source started.
    pub railed_samples: u64,
}

/// One channel's figures over a requested measurement (µV).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measurement {
    pub min_uv: f64,
    pub max_uv: f64,
    pub mean_uv: f64,
    /// About the mean.
    pub rms_uv: f64,
    /// Frequency from the crossings of the hysteresis band around zero, Hz (`None` with fewer
    /// than two crossings).
    pub frequency_hz: Option<f64>,
}

/// What a source publishes; read by the daemon without locks.
#[derive(Debug)]
pub struct QualityBoard {
    pub stage: String,
    pub labels: Vec<String>,
    pub rate: u32,
    /// Per channel gain (for the self-test's datasheet figures).
    pub gains: Vec<u32>,
    cells: Vec<Cells>,
    /// `CLOCK_REALTIME` ns of the latest window and impedance measurement (0: none yet).
    measured_ns: AtomicI64,
    impedance_ns: AtomicI64,
    lead_off_mode: AtomicU8,
    current_na: AtomicU32,
    /// Frames whose read overlapped the next DRDY's update (corrupt), and were dropped.
    pub overlapped: AtomicU64,
    /// A measurement request: generation (high 32 bits) and samples (low 32 bits).
    measure_req: AtomicU64,
    measure_hyst: AtomicF64,
    measure_done: AtomicU32,
    results: Vec<MeasureCells>,
}

/// The status of a channel from its flags and impedance (documented in docs/hardware.md):
/// `bad` if lead-off, railed or flat, or impedance ≥ 50 kΩ; `fair` if impedance ≥ 10 kΩ, or,
/// unmeasured, rms above 100 µV; `good` otherwise.
pub fn status(
    lead_off: bool,
    railed: bool,
    flat: bool,
    impedance_kohm: Option<f64>,
    rms_uv: Option<f64>,
) -> &'static str {
    if lead_off || railed || flat || impedance_kohm.is_some_and(|z| z >= FAIR_KOHM) {
        "bad"
    } else if impedance_kohm.is_some_and(|z| z >= GOOD_KOHM)
        || (impedance_kohm.is_none() && rms_uv.is_some_and(|r| r > NOISY_UV))
    {
        "fair"
    } else {
        "good"
    }
}

fn opt(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl QualityBoard {
    fn new(stage: &str, labels: Vec<String>, rate: u32, gains: Vec<u32>) -> Self {
        let n = labels.len();
        QualityBoard {
            stage: stage.to_string(),
            labels,
            rate,
            gains,
            cells: (0..n)
                .map(|_| Cells {
                    impedance_kohm: AtomicF64::nan(),
                    rms_uv: AtomicF64::nan(),
                    ..Default::default()
                })
                .collect(),
            measured_ns: AtomicI64::new(0),
            impedance_ns: AtomicI64::new(0),
            lead_off_mode: AtomicU8::new(0),
            current_na: AtomicU32::new(6),
            overlapped: AtomicU64::new(0),
            measure_req: AtomicU64::new(0),
            measure_hyst: AtomicF64::default(),
            measure_done: AtomicU32::new(0),
            results: (0..n).map(|_| MeasureCells::default()).collect(),
        }
    }

    /// Every channel's quality now.
    pub fn channels(&self) -> Vec<ChannelQuality> {
        self.labels
            .iter()
            .zip(&self.cells)
            .map(|(label, c)| {
                let (lead_off, railed, flat) = (
                    c.lead_off.load(Ordering::Relaxed),
                    c.railed.load(Ordering::Relaxed),
                    c.flat.load(Ordering::Relaxed),
                );
                let z = opt(c.impedance_kohm.get()).filter(|_| !lead_off && !railed);
                let rms = opt(c.rms_uv.get());
                ChannelQuality {
                    label: label.clone(),
                    impedance_kohm: z,
                    lead_off,
                    railed,
                    flat,
                    rms_uv: rms,
                    status: status(lead_off, railed, flat, z, rms),
                    railed_samples: c.railed_samples.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// `CLOCK_REALTIME` ns of the latest quality window (0: none yet).
    pub fn measured_ns(&self) -> i64 {
        self.measured_ns.load(Ordering::Relaxed)
    }

    /// `CLOCK_REALTIME` ns of the latest impedance measurement (0: none yet).
    pub fn impedance_ns(&self) -> i64 {
        self.impedance_ns.load(Ordering::Relaxed)
    }

    /// The lead-off mode the source runs now, and its current (nA).
    pub fn lead_off(&self) -> (LeadOffMode, u32) {
        let m = match self.lead_off_mode.load(Ordering::Relaxed) {
            1 => LeadOffMode::Dc,
            2 => LeadOffMode::Ac,
            _ => LeadOffMode::Off,
        };
        (m, self.current_na.load(Ordering::Relaxed))
    }

    /// Asks the source to measure every channel over the next `samples` samples, counting
    /// crossings of ±`hysteresis_uv`. Returns the request's generation for [`measurement`].
    ///
    /// [`measurement`]: Self::measurement
    pub fn request_measurement(&self, samples: u32, hysteresis_uv: f64) -> u32 {
        let gen = ((self.measure_req.load(Ordering::Relaxed) >> 32) as u32).wrapping_add(1).max(1);
        self.measure_hyst.set(hysteresis_uv);
        self.measure_req.store(((gen as u64) << 32) | samples as u64, Ordering::Release);
        gen
    }

    /// The figures of measurement `gen` once the source has finished it.
    pub fn measurement(&self, gen: u32) -> Option<Vec<Measurement>> {
        if self.measure_done.load(Ordering::Acquire) != gen {
            return None;
        }
        let rate = self.rate as f64;
        Some(
            self.results
                .iter()
                .map(|r| {
                    let n = r.crossings.load(Ordering::Relaxed);
                    let span = r.last_cross.load(Ordering::Relaxed) - r.first_cross.load(Ordering::Relaxed);
                    Measurement {
                        min_uv: r.min_uv.get(),
                        max_uv: r.max_uv.get(),
                        mean_uv: r.mean_uv.get(),
                        rms_uv: r.rms_uv.get(),
                        frequency_hz: (n >= 2 && span > 0)
                            .then(|| (n - 1) as f64 / (2.0 * span as f64 / rate)),
                    }
                })
                .collect(),
        )
    }
}

/// Sources' boards by stage name (registered when a source starts, removed when it is dropped).
static BOARDS: Mutex<Vec<Arc<QualityBoard>>> = Mutex::new(Vec::new());

/// The boards of every running source.
pub fn boards() -> Vec<Arc<QualityBoard>> {
    BOARDS.lock().map(|b| b.clone()).unwrap_or_default()
}

/// The board of source `stage` (the latest registered, should a pipeline that is stopping still
/// hold an older one).
pub fn board(stage: &str) -> Option<Arc<QualityBoard>> {
    boards().into_iter().rev().find(|b| b.stage == stage)
}

/// Running sums of every channel over a window, one array per figure so the per-sample loops
/// vectorise (a struct per channel did not, and cost three times as much).
#[derive(Debug, Clone, Copy)]
struct Acc {
    min: [i32; MAX],
    max: [i32; MAX],
    sum: [f64; MAX],
    sq: [f64; MAX],
    railed: [u32; MAX],
    /// The chain's lead-off masks (P | N) seen in the window.
    lead_off: u32,
}

const EMPTY: Acc = Acc {
    min: [i32::MAX; MAX],
    max: [i32::MIN; MAX],
    sum: [0.0; MAX],
    sq: [0.0; MAX],
    railed: [0; MAX],
    lead_off: 0,
};

/// The self-test's running sums of one channel.
#[derive(Debug, Clone, Copy)]
struct MeasureAcc {
    min: f64,
    max: f64,
    sum: f64,
    sq: f64,
    /// -1, 0 (not yet outside the band), +1.
    side: i8,
    crossings: u64,
    first: u64,
    last: u64,
}

const MEASURE_EMPTY: MeasureAcc =
    MeasureAcc { min: f64::MAX, max: f64::MIN, sum: 0.0, sq: 0.0, side: 0, crossings: 0, first: 0, last: 0 };

/// The data-path side: sums per window, the lock-in, the self-test's sums.
pub struct Quality {
    board: Arc<QualityBoard>,
    registered: bool,
    channels: usize,
    /// Emitted channel → bit of the chain's lead-off masks (chip × 8 + input).
    lead_off_bit: [u8; MAX],
    uv_per_count: [f64; MAX],
    window: usize,
    n: usize,
    acc: Acc,
    /// Lock-in at 31.25 Hz: cos/sin of one period, and its length.
    table: Vec<(f64, f64)>,
    period: usize,
    ac_current_na: Option<f64>,
    /// Fundamental amplitude of the sampled unit square wave (≈ 4/π).
    square_fundamental: f64,
    lock_n: usize,
    lock_re: [f64; MAX],
    lock_im: [f64; MAX],
    measure_gen: u32,
    measure_left: u32,
    measure_hyst: f64,
    measure_n: u64,
    measure: [MeasureAcc; MAX],
}

impl Quality {
    /// For `labels.len()` channels at `rate`, read through chips of `per_chip` channels,
    /// configured as `cfg`. Allocates the board and the lock-in table.
    pub fn new(stage: &str, labels: Vec<String>, rate: u32, cfg: &Config) -> Quality {
        let channels = labels.len().min(MAX);
        let period = (rate as f64 / loff::AC_31_2_HZ).round().max(2.0) as usize;
        let table = (0..period)
            .map(|n| {
                let ph = std::f64::consts::TAU * n as f64 / period as f64;
                (ph.cos(), ph.sin())
            })
            .collect::<Vec<_>>();
        let (re, im) = table.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, (c, s))| {
            let sq = if 2 * n < period { 1.0 } else { -1.0 };
            (re + sq * c, im - sq * s)
        });
        let square_fundamental = 2.0 / period as f64 * (re * re + im * im).sqrt();
        let gains: Vec<u32> = (0..channels).map(|c| cfg.channels[c % CHANNELS].gain.factor()).collect();
        let board = Arc::new(QualityBoard::new(stage, labels, rate, gains));
        let mut q = Quality {
            board,
            registered: false,
            channels,
            lead_off_bit: [0; MAX],
            uv_per_count: [0.0; MAX],
            window: (rate as usize / 4).max(1),
            n: 0,
            acc: EMPTY,
            table,
            period,
            ac_current_na: None,
            square_fundamental,
            lock_n: 0,
            lock_re: [0.0; MAX],
            lock_im: [0.0; MAX],
            measure_gen: 0,
            measure_left: 0,
            measure_hyst: 0.0,
            measure_n: 0,
            measure: [MEASURE_EMPTY; MAX],
        };
        q.set_layout(CHANNELS);
        q.set_config(cfg);
        q
    }

    /// The chips have `per_chip` channels (from their `ID`): maps channels to lead-off bits.
    pub fn set_layout(&mut self, per_chip: usize) {
        let per_chip = per_chip.max(1);
        for (c, b) in self.lead_off_bit.iter_mut().enumerate() {
            *b = ((c / per_chip) * CHANNELS + c % per_chip).min(31) as u8;
        }
    }

    /// A new chip configuration (gains, lead-off): between packets.
    pub fn set_config(&mut self, cfg: &Config) {
        for c in 0..self.channels {
            let ch: &ChannelConfig = &cfg.channels[c % CHANNELS];
            self.uv_per_count[c] = 2.0 * VREF / ch.gain.factor() as f64 / (1u64 << 24) as f64 * 1e6;
        }
        let l = &cfg.lead_off;
        let on = l.comparators;
        let ac = on && l.frequency == sensors::config::LeadOffFrequency::Ac31_2Hz;
        let current = loff::CURRENTS_NA[l.current as usize];
        self.ac_current_na = ac.then_some(current);
        self.lock_n = 0;
        self.lock_re = [0.0; MAX];
        self.lock_im = [0.0; MAX];
        let mode = if ac { 2 } else { on as u8 };
        self.board.lead_off_mode.store(mode, Ordering::Relaxed);
        self.board.current_na.store(current as u32, Ordering::Relaxed);
        if !ac {
            for c in &self.board.cells {
                c.impedance_kohm.set(f64::NAN);
            }
        }
    }

    /// The board, for the control plane.
    pub fn board(&self) -> &Arc<QualityBoard> {
        &self.board
    }

    /// Makes the board findable by [`board`] until this is dropped.
    pub fn register(&mut self) {
        if self.registered {
            return;
        }
        if let Ok(mut b) = BOARDS.lock() {
            b.push(self.board.clone());
            self.registered = true;
        }
    }

    /// Once per packet, before its samples: takes a new measurement request.
    pub fn begin_packet(&mut self) {
        let req = self.board.measure_req.load(Ordering::Acquire);
        let gen = (req >> 32) as u32;
        if gen != self.measure_gen {
            self.measure_gen = gen;
            self.measure_left = req as u32;
            self.measure_hyst = self.board.measure_hyst.get();
            self.measure_n = 0;
            self.measure = [MEASURE_EMPTY; MAX];
        }
    }

    /// One sample of every channel (`counts`, at least `channels` long) and the chain's
    /// lead-off masks.
    #[inline]
    pub fn push(&mut self, counts: &[i32], lead_off_p: u32, lead_off_n: u32, now_ns: impl Fn() -> i64) {
        let n = self.channels.min(counts.len());
        let counts = &counts[..n];
        let a = &mut self.acc;
        a.lead_off |= lead_off_p | lead_off_n;
        for (((v, lo), hi), (s, q)) in counts
            .iter()
            .zip(&mut a.min[..n])
            .zip(&mut a.max[..n])
            .zip(a.sum[..n].iter_mut().zip(&mut a.sq[..n]))
        {
            *lo = (*lo).min(*v);
            *hi = (*hi).max(*v);
            let x = *v as f64;
            *s += x;
            *q += x * x;
        }
        for (v, r) in counts.iter().zip(&mut a.railed[..n]) {
            *r += (v.unsigned_abs() >= RAIL_COUNTS as u32) as u32;
        }
        if let Some(i_na) = self.ac_current_na {
            let (cos, sin) = self.table[self.lock_n % self.period];
            for ((v, re), im) in counts.iter().zip(&mut self.lock_re[..n]).zip(&mut self.lock_im[..n]) {
                let x = *v as f64;
                *re += x * cos;
                *im += x * sin;
            }
            self.lock_n += 1;
            if self.lock_n >= LOCK_IN_PERIODS * self.period {
                self.publish_impedance(i_na, now_ns());
            }
        }
        if self.measure_left > 0 {
            self.measure_sample(counts);
        }
        self.n += 1;
        if self.n >= self.window {
            self.publish_window(now_ns());
        }
    }

    /// The self-test's sums (only while a measurement runs).
    fn measure_sample(&mut self, counts: &[i32]) {
        for (c, &v) in counts.iter().enumerate() {
            let uv = v as f64 * self.uv_per_count[c];
            let m = &mut self.measure[c];
            m.min = m.min.min(uv);
            m.max = m.max.max(uv);
            m.sum += uv;
            m.sq += uv * uv;
            let side = if uv > self.measure_hyst {
                1
            } else if uv < -self.measure_hyst {
                -1
            } else {
                m.side
            };
            if side != m.side && m.side != 0 {
                if m.crossings == 0 {
                    m.first = self.measure_n;
                }
                m.crossings += 1;
                m.last = self.measure_n;
            }
            m.side = side;
        }
        self.measure_n += 1;
        self.measure_left -= 1;
        if self.measure_left == 0 {
            self.publish_measurement();
        }
    }

    fn publish_window(&mut self, now_ns: i64) {
        let n = self.n as f64;
        let a = &self.acc;
        for (c, cell) in self.board.cells.iter().enumerate().take(self.channels) {
            let var = (a.sq[c] / n - (a.sum[c] / n).powi(2)).max(0.0);
            cell.rms_uv.set(var.sqrt() * self.uv_per_count[c]);
            cell.railed.store(a.railed[c] > 0, Ordering::Relaxed);
            cell.flat.store(a.max[c].saturating_sub(a.min[c]) <= FLAT_COUNTS, Ordering::Relaxed);
            cell.lead_off.store(a.lead_off >> self.lead_off_bit[c] & 1 != 0, Ordering::Relaxed);
            cell.railed_samples.fetch_add(a.railed[c] as u64, Ordering::Relaxed);
        }
        self.board.measured_ns.store(now_ns, Ordering::Relaxed);
        self.acc = EMPTY;
        self.n = 0;
    }

    fn publish_impedance(&mut self, i_na: f64, now_ns: i64) {
        let n = self.lock_n as f64;
        for (c, cell) in self.board.cells.iter().enumerate().take(self.channels) {
            let (re, im) = (self.lock_re[c], self.lock_im[c]);
            // Amplitude of the 31.25 Hz component, µV; over the square wave's share, the
            // excitation's amplitude I·(Z + series); µV / nA = kΩ.
            let amp_uv = 2.0 / n * (re * re + im * im).sqrt() * self.uv_per_count[c];
            let z = amp_uv / self.square_fundamental / i_na - SERIES_OHM / 1e3;
            cell.impedance_kohm.set(z.max(0.0));
        }
        self.board.impedance_ns.store(now_ns, Ordering::Relaxed);
        self.lock_re = [0.0; MAX];
        self.lock_im = [0.0; MAX];
        self.lock_n = 0;
    }

    fn publish_measurement(&mut self) {
        let n = self.measure_n.max(1) as f64;
        for (c, r) in self.board.results.iter().enumerate().take(self.channels) {
            let m = self.measure[c];
            let mean = m.sum / n;
            r.min_uv.set(m.min);
            r.max_uv.set(m.max);
            r.mean_uv.set(mean);
            r.rms_uv.set((m.sq / n - mean * mean).max(0.0).sqrt());
            r.crossings.store(m.crossings, Ordering::Relaxed);
            r.first_cross.store(m.first, Ordering::Relaxed);
            r.last_cross.store(m.last, Ordering::Relaxed);
        }
        self.board.measure_done.store(self.measure_gen, Ordering::Release);
    }
}

impl Drop for Quality {
    fn drop(&mut self) {
        if self.registered {
            if let Ok(mut b) = BOARDS.lock() {
                b.retain(|x| !Arc::ptr_eq(x, &self.board));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensors::registers::Gain;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("Ch{}", c + 1)).collect()
    }

    #[test]
    fn flags_railed_flat_and_lead_off_per_channel() {
        let cfg = Config { channels: [ChannelConfig::normal(Gain::X24); 8], ..Config::default() };
        let mut q = Quality::new("s", labels(3), 250, &cfg);
        // Four windows of a quarter second (62 samples at 250 SPS).
        for n in 0..248 {
            let live = (n * 37) % 101 - 50;
            // Ch1 live, Ch2 pinned at full scale, Ch3 live with its P input off.
            q.push(&[live, 8_388_607, live], 0b100, 0, || 7);
        }
        let ch = q.board().channels();
        assert_eq!(q.board().measured_ns(), 7);
        assert_eq!((ch[0].railed, ch[0].flat, ch[0].lead_off, ch[0].status), (false, false, false, "good"));
        assert_eq!((ch[1].railed, ch[1].flat, ch[1].status), (true, true, "bad"));
        assert_eq!(ch[1].railed_samples, 248);
        assert_eq!((ch[2].lead_off, ch[2].status), (true, "bad"));
        let rms = ch[0].rms_uv.unwrap() / q.uv_per_count[0];
        assert!((rms - 29.0).abs() < 1.0, "{rms} counts rms");
    }

    #[test]
    fn impedance_from_the_31_hz_response_of_a_square_wave_current() {
        for (rate, kohm) in [(250u32, 5.0), (1000, 20.0), (4000, 200.0)] {
            let mut cfg = Config::default();
            LeadOffParams { mode: LeadOffMode::Ac, current_na: 6 }.apply(&mut cfg);
            let mut q = Quality::new("s", labels(1), rate, &cfg);
            let v_uv = 6e-9 * (kohm * 1e3 + SERIES_OHM) * 1e6;
            let period = rate as f64 / 31.25;
            for n in 0..(2 * 32 * period as usize) {
                let sq = if (n as f64 / period).fract() < 0.5 { 1.0 } else { -1.0 };
                // Plus a 10 Hz rhythm of 20 µV and an offset, which the lock-in ignores.
                let uv =
                    sq * v_uv + 20.0 * (std::f64::consts::TAU * 10.0 * n as f64 / rate as f64).sin() + 300.0;
                q.push(&[sensors::sim::quantise(uv, 24)], 0, 0, || 1);
            }
            let z = q.board().channels()[0].impedance_kohm.unwrap();
            assert!((z - kohm).abs() < 0.02 * kohm + 0.3, "{rate} SPS: {z} kΩ for {kohm} kΩ");
        }
        assert_eq!(status(false, false, false, Some(20.0), None), "fair");
        assert_eq!(status(false, false, false, Some(5.0), Some(500.0)), "good");
        assert_eq!(status(false, false, false, None, Some(500.0)), "fair");
    }

    #[test]
    fn a_measurement_gives_amplitude_frequency_and_noise() {
        let cfg = Config { channels: [ChannelConfig::normal(Gain::X1); 8], ..Config::default() };
        let mut q = Quality::new("s", labels(1), 250, &cfg);
        let gen = q.board().request_measurement(750, 500.0);
        q.begin_packet();
        for n in 0..1000u64 {
            let uv = if (n as f64 / 250.0 * 0.9765625).fract() < 0.5 { 1875.0 } else { -1875.0 };
            q.push(&[sensors::sim::quantise(uv, 1)], 0, 0, || 1);
        }
        let m = q.board().measurement(gen).unwrap()[0];
        assert!((m.max_uv - 1875.0).abs() < 1.0 && (m.min_uv + 1875.0).abs() < 1.0, "{m:?}");
        let f = m.frequency_hz.unwrap();
        assert!((f - 0.9765625).abs() < 0.01, "{f} Hz");
        assert_eq!(q.board().measurement(gen + 1), None);
    }
}
