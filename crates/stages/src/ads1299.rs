//! `ads1299`: the ADS1299 on a Raspberry Pi 5 (`/dev/spidev*`, DRDY on a GPIO character
//! device), and [`Acquisition`], the read loop it shares with `emulator`.
use pipeline::rt::{monotonic_ns, realtime_ns};
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Header, Kind, Produce, Role, Stage, StageError, StageType, StreamInfo, StreamMeta};
use schemars::JsonSchema;
use sensors::drdy::{elapsed_ns, Tick};
use sensors::registers::{Gain, Mux, CHANNELS, MAX_CHIPS};
use sensors::{Ads1299, ChannelConfig, ClockTracker, Config, DataRate, Drdy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Sample rates the ADS1299 offers.
pub const RATES: [u32; 7] = [250, 500, 1000, 2000, 4000, 8000, 16000];
/// PGA gains the ADS1299 offers.
pub const GAINS: [u32; 7] = [1, 2, 4, 6, 8, 12, 24];
/// The ADS1299's internal reference, volts.
pub const VREF: f64 = sensors::registers::VREF;

/// How long one DRDY wait lasts before the source looks at the stop flag again, ns.
const WAIT_SLICE_NS: u64 = 100_000_000;
/// With no DRDY for this long, a running chip is taken to have stopped: an error.
const NO_DRDY_NS: u64 = 2_000_000_000;
/// Overruns are logged at most this often, ns.
const LOG_EVERY_NS: u64 = 1_000_000_000;

/// The read loop of an ADS1299 source, real or simulated: waits for DRDY, reads a frame per
/// sample through the driver, and emits packets of raw counts stamped with the first DRDY's
/// time + n / rate. Drift and overruns go to the stage's statistics; overruns are also logged,
/// at most once a second.
///
/// After `start`, allocation-free: frames land in a fixed array, packets come from the pool.
pub(crate) struct Acquisition<SPI: embedded_hal::spi::SpiDevice, D: Drdy> {
    pub dev: Ads1299<SPI>,
    pub drdy: D,
    spec: AcquisitionSpec,
    configured: bool,
    started: bool,
    clock: ClockTracker,
    frame: [i32; MAX_CHIPS * CHANNELS],
    /// A sample read but not yet emitted: it followed an overrun, so it opens the next packet.
    pending: Option<(Tick, u64)>,
    produced: u64,
    seq: u64,
    /// `CLOCK_REALTIME − CLOCK_MONOTONIC` at start, ns: DRDY times are monotonic, sample
    /// timestamps are UNIX time.
    real_offset: i64,
    lead_off: (u32, u32),
    last_log_ns: u64,
    missed_since_log: u64,
    /// Railed, flat, lead-off, rms and impedance per channel (see [`crate::quality`]).
    quality: crate::quality::Quality,
    /// A configuration to apply between packets (a live parameter change).
    new_cfg: Option<Config>,
}

/// What an [`Acquisition`] needs to be made.
pub(crate) struct AcquisitionSpec {
    pub cfg: Config,
    /// Name of the stage, for logs.
    pub name: String,
    pub rate: u32,
    pub batch: usize,
    /// Channels emitted: the first `channels` of each frame.
    pub channels: usize,
    pub meta: Arc<StreamMeta>,
    pub stream_id: u16,
    /// End after this many samples per channel.
    pub limit: Option<u64>,
    /// Record DRDY → awake in `wake_late_ns` (off for an unpaced simulation, whose DRDY times
    /// are virtual).
    pub record_wake: bool,
    /// Check each read against the next DRDY's update (DRDY events stamped on the clock the
    /// reads are timed with: hardware, or a simulation paced per sample).
    pub check_overlap: bool,
}

impl<SPI: embedded_hal::spi::SpiDevice, D: Drdy> Acquisition<SPI, D> {
    pub fn new(dev: Ads1299<SPI>, drdy: D, s: AcquisitionSpec) -> Self {
        let quality = crate::quality::Quality::new(&s.name, s.meta.labels.clone(), s.rate, &s.cfg);
        Acquisition {
            quality,
            new_cfg: None,
            dev,
            drdy,
            clock: ClockTracker::new(s.rate),
            spec: s,
            configured: false,
            started: false,
            frame: [0; MAX_CHIPS * CHANNELS],
            pending: None,
            produced: 0,
            seq: 0,
            real_offset: 0,
            lead_off: (0, 0),
            last_log_ns: 0,
            missed_since_log: 0,
        }
    }

    /// The power-up sequence up to `RDATAC` (not `START`: the first `produce` starts the
    /// conversions, so no DRDY goes unread before the pipeline runs).
    pub fn configure(&mut self, delay: &mut impl embedded_hal::delay::DelayNs) -> Result<(), StageError> {
        let id = self.dev.configure(&self.spec.cfg, delay).map_err(|e| StageError::msg(e.to_string()))?;
        if (id.channels as usize) < CHANNELS && self.dev.chips() > 1 {
            return Err(StageError::msg("daisy chains of ADS1299-4/-6 are not supported"));
        }
        if self.spec.channels > self.dev.channels() {
            return Err(StageError::msg(format!(
                "`channels` is {} but the chip (ID {:#04x}) has {}",
                self.spec.channels,
                id.raw,
                self.dev.channels()
            )));
        }
        tracing::info!(stage = %self.spec.name, id = id.raw, channels = self.dev.channels(), "ADS1299 configured");
        self.quality.set_layout(self.dev.channels() / self.dev.chips());
        self.quality.register();
        self.configured = true;
        Ok(())
    }

    /// The next sample into `self.frame`, with its tick and DRDY time; `None` if the pipeline
    /// is stopping.
    fn next_sample(&mut self, cx: &Context<'_>) -> Result<Option<(Tick, u64)>, StageError> {
        let mut waited = 0;
        let ev = loop {
            match self.drdy.wait(WAIT_SLICE_NS) {
                Ok(Some(ev)) => break ev,
                Ok(None) if cx.stopping() => return Ok(None),
                Ok(None) => {
                    waited += WAIT_SLICE_NS;
                    if waited >= NO_DRDY_NS {
                        return Err(StageError::msg(
                            "no DRDY for 2 s: is the chip powered, its clock running, START low?",
                        ));
                    }
                }
                Err(e) => return Err(StageError::msg(format!("waiting for DRDY: {e:?}"))),
            }
        };
        let tick = self.clock.on_drdy(ev);
        let status = self.dev.read_frame(&mut self.frame).map_err(|e| StageError::msg(e.to_string()))?;
        if self.spec.check_overlap && self.clock.read_done(monotonic_ns()) {
            // The chip reloaded its output register while this frame was shifting out.
            self.quality.board().overlapped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let lead_off = (status.lead_off_p(), status.lead_off_n());
        self.quality.push(&self.frame[..self.spec.channels], lead_off.0, lead_off.1, realtime_ns);
        if lead_off != self.lead_off {
            // Electrodes come and go rarely; this logs a change, not a sample.
            tracing::warn!(stage = %self.spec.name, lead_off_p = format_args!("{:#x}", lead_off.0),
                lead_off_n = format_args!("{:#x}", lead_off.1), "Lead-off status changed");
            self.lead_off = lead_off;
        }
        Ok(Some((tick, ev.timestamp_ns)))
    }

    fn note_overrun(&mut self, missed: u64, cx: &Context<'_>) {
        cx.stats().overruns.fetch_add(missed, std::sync::atomic::Ordering::Relaxed);
        self.missed_since_log += missed;
        let now = monotonic_ns();
        if now.saturating_sub(self.last_log_ns) >= LOG_EVERY_NS {
            tracing::warn!(stage = %self.spec.name, missed = self.missed_since_log, total = self.clock.missed(),
                "DRDY overrun: samples were overwritten before they were read");
            self.last_log_ns = now;
            self.missed_since_log = 0;
        }
    }

    pub fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        if !self.configured {
            // The owner configures in `Stage::start`, with the delay its chip needs.
            return Err(StageError::msg("the ADS1299 was not configured before its first read"));
        }
        if !self.started {
            // DRDY edges queued before START (a chip an earlier run left converting) would
            // stamp the first sample with a stale time.
            let stale = self.drdy.flush().map_err(|e| StageError::msg(format!("flushing DRDY: {e:?}")))?;
            if stale > 0 {
                tracing::info!(stage = %self.spec.name, stale, "Discarded DRDY edges from before START");
            }
            self.real_offset = realtime_ns() - monotonic_ns() as i64;
            self.dev.start().map_err(|e| StageError::msg(e.to_string()))?;
            self.started = true;
        }
        if let Some(cfg) = self.new_cfg.take() {
            self.dev.apply(&cfg).map_err(|e| StageError::msg(e.to_string()))?;
            self.quality.set_config(&cfg);
            self.spec.cfg = cfg;
        }
        self.quality.begin_packet();
        let want = match self.spec.limit {
            Some(l) if self.produced >= l => return Ok(Produce::End),
            Some(l) => self.spec.batch.min((l - self.produced) as usize),
            None => self.spec.batch,
        };
        let header = Header {
            stream_id: self.spec.stream_id,
            kind: Kind::Raw,
            seq: self.seq,
            timestamp_ns: 0,
            rate: self.spec.rate as f64,
            channels: self.spec.channels as u32,
            samples: want as u32,
            ready_ns: 0,
            meta: self.spec.meta.clone(),
        };
        // The chip does not wait for a full pool: the samples are read regardless, then lost,
        // counted, and the gap shows in `seq`.
        let mut pkt = cx.alloc(header).map_err(|_| cx.count_drop(1)).ok();
        let mut block = pkt.as_mut().map(|p| p.make_mut()).transpose()?;
        let (mut filled, mut first, mut last_drdy) = (0usize, 0u64, 0u64);
        while filled < want {
            let (tick, drdy_ns) = match self.pending.take() {
                Some(p) => p,
                None => match self.next_sample(cx)? {
                    Some(s) => s,
                    None => break,
                },
            };
            if tick.missed > 0 {
                self.note_overrun(tick.missed, cx);
                if filled > 0 {
                    // Samples of one packet are contiguous: this one opens the next.
                    self.pending = Some((Tick { missed: 0, ..tick }, drdy_ns));
                    break;
                }
            }
            if filled == 0 {
                first = tick.index;
            }
            if let Some(m) = block.as_mut() {
                let out = m.i32s_mut();
                for (c, v) in self.frame[..self.spec.channels].iter().enumerate() {
                    out[c * want + filled] = *v;
                }
            }
            filled += 1;
            last_drdy = drdy_ns;
        }
        cx.stats().set_drift_ppm(self.clock.drift_ppm());
        if filled == 0 {
            return Ok(Produce::Ready);
        }
        self.produced += filled as u64;
        self.seq += 1;
        if let Some(mut p) = pkt {
            let t0 = self.clock.nominal_ns(0).unwrap_or(0) as i64 + self.real_offset;
            let mut m = p.make_mut()?;
            if filled < want {
                let out = m.i32s_mut();
                for c in 1..self.spec.channels {
                    out.copy_within(c * want..c * want + filled, c * filled);
                }
                m.set_shape(self.spec.channels, filled)?;
            }
            let h = m.header_mut();
            h.timestamp_ns = t0 + elapsed_ns(first, self.spec.rate) as i64;
            let now = monotonic_ns();
            h.ready_ns = now;
            cx.emit(p);
            if self.spec.record_wake {
                cx.stats().wake_late_ns.record(now.saturating_sub(last_drdy));
            }
        }
        Ok(Produce::Ready)
    }

    /// True once [`configure`](Self::configure) has succeeded.
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// Applies `cfg` between packets: register changes that keep the rate, the chain and its
    /// clocking (lead-off, inputs, test signal, gains). Anything else needs a restart.
    pub fn reconfigure(&mut self, cfg: Config) -> Result<(), ParamError> {
        let now = &self.spec.cfg;
        if (cfg.rate, cfg.chips, cfg.clock_out) != (now.rate, now.chips, now.clock_out) {
            return Err(ParamError::new(
                "",
                "the rate, the chain and its clock change only with a restart of the pipeline",
            ));
        }
        if self.configured {
            self.new_cfg = Some(cfg);
        } else {
            self.quality.set_config(&cfg);
            self.spec.cfg = cfg;
        }
        Ok(())
    }

    /// Railed/flat/lead-off/impedance per channel.
    pub fn quality(&self) -> &crate::quality::Quality {
        &self.quality
    }

    /// Stops conversions (best effort: the bus may be gone).
    pub fn stop(&mut self) {
        if self.started {
            if let Err(e) = self.dev.stop() {
                tracing::warn!(stage = %self.spec.name, error = %e, "could not stop the ADS1299");
            }
            self.started = false;
        }
    }
}

/// Checks a rate and returns the chip's setting.
pub(crate) fn data_rate(rate: u32) -> Option<DataRate> {
    DataRate::from_hz(rate)
}

/// The error of a rate the chip lacks.
pub(crate) fn rate_error(rate: u32) -> ParamError {
    ParamError::new("rate", format!("{rate} is not an ADS1299 rate (one of {RATES:?})"))
}

/// The error of a gain the chip lacks.
pub(crate) fn gain_error(gain: u32) -> ParamError {
    ParamError::new("gain", format!("{gain} is not an ADS1299 gain (one of {GAINS:?})"))
}

/// The default labels of `n` channels ([`crate::labels::default_labels`]).
pub fn channel_labels(n: usize) -> Vec<String> {
    crate::labels::default_labels(n)
}

/// A gain for every channel, or a list of one per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GainSetting {
    All(u32),
    PerChannel(Vec<u32>),
}

impl GainSetting {
    /// The gain of channel `c`.
    pub fn of(&self, c: usize) -> u32 {
        match self {
            GainSetting::All(g) => *g,
            GainSetting::PerChannel(v) => v.get(c).or(v.last()).copied().unwrap_or(24),
        }
    }
}

/// The DRDY line: a GPIO chip and a line offset on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrdyLine {
    /// `gpiochip0` (`/dev/gpiochip0`): the Pi 5's RP1 header GPIOs on kernels from 6.6.45;
    /// `gpiochip4` on older ones. `gpioinfo` lists them.
    pub chip: String,
    /// The line offset, which on the Pi 5 header is the BCM GPIO number (default 25, pin 22).
    pub line: u32,
    /// The name the kernel must report for that line (default `GPIO<line>`, as the Pi 5's RP1
    /// names its header pins); a line of another name is refused when the stage starts, with
    /// the chip that has the right one. `""` skips the check (boards whose lines are unnamed).
    #[serde(default)]
    pub label: Option<String>,
}

impl Default for DrdyLine {
    fn default() -> Self {
        DrdyLine { chip: "gpiochip0".into(), line: 25, label: None }
    }
}

impl DrdyLine {
    /// The name the line must have.
    pub fn expected_label(&self) -> String {
        self.label.clone().unwrap_or_else(|| format!("GPIO{}", self.line))
    }
}

/// Time from DRDY to the reading thread running, allowed for in the rate check: a budget for a
/// Pi 5 with the acquisition thread at `SCHED_FIFO` (interrupt, GPIO event, wake-up).
pub const WAKE_BUDGET_NS: u64 = 30_000;

/// The frame-time check: a frame of `chips` chips at `spi_hz` must be read between DRDY and the
/// next update (tUPDATE before the next DRDY), after the thread has woken, with chip select held
/// tSCCS after it. `None` if it fits, else the time it needs and the time there is, ns.
pub fn frame_budget(chips: usize, spi_hz: u32, rate: u32) -> Option<(u64, u64)> {
    use sensors::timing::{byte_ns, T_SCCS_NS, T_UPDATE_NS};
    let need =
        (chips * sensors::registers::FRAME_BYTES) as u64 * byte_ns(spi_hz) + WAKE_BUDGET_NS + T_SCCS_NS;
    let have = (1_000_000_000 / rate.max(1) as u64).saturating_sub(T_UPDATE_NS);
    (need > have).then_some((need, have))
}

/// What every channel's input is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// The electrodes (default).
    #[default]
    Normal,
    /// Inputs shorted: offset and noise floor.
    Shorted,
    /// The internal test signal (also set by `test_signal: true`).
    TestSignal,
    /// The bias measurement.
    BiasMeas,
    /// Supply measurement, (AVDD − AVSS) / 2.
    Mvdd,
    /// The temperature sensor.
    Temperature,
}

fn d_spi() -> String {
    "/dev/spidev0.0".into()
}
fn d_spi_hz() -> u32 {
    4_000_000
}
fn d_rate() -> u32 {
    250
}
fn d_gain() -> GainSetting {
    GainSetting::All(24)
}
fn d_daisy() -> usize {
    1
}

/// Parameters of `ads1299`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ads1299Params {
    /// SPI device (default `/dev/spidev0.0`: SPI0, chip select CE0).
    #[serde(default = "d_spi")]
    pub spi: String,
    /// SPI clock, Hz (default 4 MHz; the chip takes up to 20 MHz, but multi-byte commands need
    /// 2 µs between bytes, which 4 MHz gives).
    #[serde(default = "d_spi_hz")]
    #[schemars(range(min = 100_000, max = 20_000_000))]
    pub spi_hz: u32,
    /// The DRDY line (default `{ chip: gpiochip0, line: 25 }`).
    #[serde(default)]
    pub drdy: DrdyLine,
    /// Samples per second per channel: 250 (default), 500, 1000, 2000, 4000, 8000 or 16000.
    #[serde(default = "d_rate")]
    pub rate: u32,
    /// PGA gain, 1, 2, 4, 6, 8, 12 or 24 (default): one for all, or a list, one per channel.
    /// In a daisy chain every chip shares one configuration, so channel k and k + 8 must agree.
    #[serde(default = "d_gain")]
    pub gain: GainSetting,
    /// Chips in the daisy chain, 1 (default) to 4.
    #[serde(default = "d_daisy")]
    #[schemars(range(min = 1, max = 4))]
    pub daisy: usize,
    /// Channels to emit (default all: 8 per chip); the others are powered down (one chip) or
    /// skipped.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32))]
    pub channels: Option<usize>,
    /// Samples per packet; default rate / 250 (a packet every 4 ms).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    pub batch: Option<usize>,
    /// Every channel's input (default `normal`: the electrodes).
    #[serde(default)]
    pub input: Input,
    /// Every channel on the internal test signal, a ±1.875 mV square wave at ≈ 0.98 Hz
    /// (default false).
    #[serde(default)]
    pub test_signal: bool,
    /// SRB1 to every channel's negative input: a common reference electrode (default false).
    #[serde(default)]
    pub srb1: bool,
    /// Each channel's negative input to SRB2 (default false).
    #[serde(default)]
    pub srb2: bool,
    /// The bias (right-leg drive) on, from every emitted channel's inputs, with the internal
    /// bias reference (default false).
    #[serde(default)]
    pub bias: bool,
    /// Lead-off detection: `{ mode: off | dc | ac, current_na: 6 | 24 | 6000 | 24000 }`
    /// (default off, 6 nA). The current flows into every channel's positive input; `ac` (31.2
    /// Hz) also measures each electrode's impedance. Changes of status are logged; live
    /// changes apply between packets.
    #[serde(default)]
    pub lead_off: crate::quality::LeadOffParams,
    /// Chips 2…N of a chain take their clock from chip 1's CLK output (default false: every
    /// chip has its own or an external clock). The driver then switches that clock on and
    /// waits tPOR before configuring the chain.
    #[serde(default)]
    pub clock_out: bool,
    /// Channel labels, one per channel (default Fp1 Fp2 C3 C4 P7 P8 O1 O2, then Ch9, Ch10, …):
    /// the names in the stream metadata, the API and the files.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Checks the parameters common to the chip and the emulator.
pub(crate) fn check_chip(rate: u32, gain: &GainSetting, channels: usize, chips: usize) -> Vec<ParamError> {
    let mut e = Vec::new();
    if data_rate(rate).is_none() {
        e.push(rate_error(rate));
    }
    match gain {
        GainSetting::All(g) if Gain::from_factor(*g).is_none() => e.push(gain_error(*g)),
        GainSetting::PerChannel(v) => {
            if let Some(g) = v.iter().find(|g| Gain::from_factor(**g).is_none()) {
                e.push(gain_error(*g));
            } else if v.len() != channels {
                e.push(ParamError::new(
                    "gain",
                    format!("{} gains for {channels} channels: give one per channel", v.len()),
                ));
            } else if let Some(c) = (CHANNELS..channels).find(|&c| v[c] != v[c % CHANNELS]) {
                e.push(ParamError::new(
                    "gain",
                    format!(
                        "channel {} has gain {} but channel {} has {}: chained chips share one \
                         configuration",
                        c + 1,
                        v[c],
                        c % CHANNELS + 1,
                        v[c % CHANNELS]
                    ),
                ));
            }
        }
        _ => {}
    }
    if channels > chips * CHANNELS {
        e.push(ParamError::new("channels", format!("{channels} channels need more than {chips} chip(s)")));
    }
    e
}

/// The chip configuration for `channels` channels on `chips` chips, each channel `template`
/// with its gain; with one chip, the channels not emitted are powered down.
pub(crate) fn chip_config(
    rate: u32,
    chips: usize,
    channels: usize,
    gain: &GainSetting,
    template: ChannelConfig,
) -> Config {
    let mut cfg =
        Config { rate: data_rate(rate).unwrap_or(DataRate::Sps250), chips: chips as u8, ..Config::default() };
    for (k, c) in cfg.channels.iter_mut().enumerate() {
        let used = k < channels || chips > 1;
        *c = if used {
            ChannelConfig { gain: Gain::from_factor(gain.of(k)).unwrap_or(Gain::X24), ..template }
        } else {
            ChannelConfig::off()
        };
    }
    cfg
}

/// The ADS1299 source.
pub struct Ads1299Source {
    p: Ads1299Params,
    spec: Option<AcquisitionSpec>,
    #[cfg(target_os = "linux")]
    acq: Option<Acquisition<sensors::linux::Spi, sensors::linux::GpioDrdy>>,
}

impl Stage for Ads1299Source {
    #[cfg(target_os = "linux")]
    fn start(&mut self) -> Result<(), StageError> {
        let Some(spec) = self.spec.take() else { return Ok(()) };
        let p = &self.p;
        let spi = sensors::linux::Spi::open(&p.spi, p.spi_hz)
            .map_err(|e| StageError::msg(format!("opening `{}`: {e}", p.spi)))?;
        let drdy = sensors::linux::GpioDrdy::open(&p.drdy.chip, p.drdy.line, &p.drdy.expected_label())
            .map_err(|e| {
                StageError::msg(format!("requesting DRDY line {} of `{}`: {e}", p.drdy.line, p.drdy.chip))
            })?;
        let dev =
            Ads1299::new(spi, p.daisy).map_err(|e| StageError::msg(e.to_string()))?.with_sclk_hz(p.spi_hz);
        let mut acq = Acquisition::new(dev, drdy, spec);
        acq.configure(&mut sensors::linux::StdDelay)?;
        self.acq = Some(acq);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn start(&mut self) -> Result<(), StageError> {
        Err(StageError::msg("`ads1299` needs Linux (spidev and the GPIO character device)"))
    }

    fn produce(&mut self, cx: &mut Context<'_>) -> Result<Produce, StageError> {
        #[cfg(target_os = "linux")]
        if let Some(acq) = self.acq.as_mut() {
            return acq.produce(cx);
        }
        let _ = cx;
        Err(StageError::msg("the ADS1299 was not opened"))
    }

    fn finish(&mut self, _: &mut Context<'_>) -> Result<(), StageError> {
        #[cfg(target_os = "linux")]
        if let Some(acq) = self.acq.as_mut() {
            acq.stop();
        }
        Ok(())
    }
}

impl StageType for Ads1299Source {
    type Params = Ads1299Params;
    const NAME: &'static str = "ads1299";
    const ROLE: Role = Role::Source;
    const ACCEPTS: &'static [Kind] = &[];
    const DOC: &'static str = "An ADS1299 (or a daisy chain of up to 4) on SPI, DRDY as a GPIO \
        falling-edge event: raw 24-bit counts, stamped with the first DRDY's kernel timestamp + \
        n / rate. Configured and verified register by register when the pipeline starts. Drift \
        (ppm) and overruns (missed DRDYs) are stage statistics; overruns are logged. See \
        docs/hardware.md for the wiring.\n\nInputs: none. Outputs: raw counts.";
    const EXAMPLE: &'static str =
        "stages:\n  - ads1299: { spi: /dev/spidev0.0, drdy: { chip: gpiochip0, line: 25 }, \
        rate: 250, gain: 24, daisy: 1 }\n  - to_voltage: {}\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if !(1..=MAX_CHIPS).contains(&p.daisy) {
            e.push(ParamError::new("daisy", format!("{} chips: a chain has 1 to 4", p.daisy)));
            return e;
        }
        e.extend(check_chip(p.rate, &p.gain, p.channels.unwrap_or(p.daisy * CHANNELS), p.daisy));
        e.extend(p.lead_off.check());
        // A frame must be read after DRDY and the thread's wake-up, and before the next update.
        if let Some((need, have)) = frame_budget(p.daisy, p.spi_hz, p.rate) {
            e.push(ParamError::new(
                "spi_hz",
                format!(
                    "at {} Hz a frame of {} chip(s) needs {} µs with the wake-up after DRDY and the \
                     chip-select hold, more than the {} µs before the next sample's update (tUPDATE) \
                     at {} SPS: raise `spi_hz` or lower `rate`",
                    p.spi_hz,
                    p.daisy,
                    need / 1000,
                    have / 1000,
                    p.rate
                ),
            ));
        }
        if p.bias && p.daisy > 1 {
            e.push(ParamError::new(
                "bias",
                "the bias drive cannot be enabled on a daisy chain sharing DIN: every chip takes the \
                 same registers, so every chip's bias amplifier would drive BIASOUT against the \
                 others (the datasheet powers down all but one); wire the bias from one chip by hand",
            ));
        }
        e
    }

    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        let live = Ads1299Params {
            input: self.p.input,
            test_signal: self.p.test_signal,
            lead_off: self.p.lead_off,
            ..p.clone()
        };
        if live != self.p {
            return Err(ParamError::new(
                "",
                "only `input`, `test_signal` and `lead_off` change live; the others need a restart",
            ));
        }
        let cfg = Self::chip(p);
        #[cfg(target_os = "linux")]
        if let Some(acq) = self.acq.as_mut() {
            acq.reconfigure(cfg)?;
            self.p = p.clone();
            return Ok(());
        }
        if let Some(spec) = self.spec.as_mut() {
            spec.cfg = cfg;
        }
        self.p = p.clone();
        Ok(())
    }

    fn build(
        p: &Self::Params,
        _: &[StreamInfo],
        cx: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let channels = p.channels.unwrap_or(p.daisy * CHANNELS);
        let batch = p.batch.unwrap_or((p.rate / 250) as usize).max(1);
        let cfg = Self::chip(p);
        let meta = Arc::new(StreamMeta {
            stream_id: cx.stream_id,
            labels: crate::labels::labels(&p.labels, channels)?,
            units: "counts".into(),
            gains: (0..channels).map(|c| p.gain.of(c) as f64).collect(),
            vref: VREF,
            sensor_id: format!("ads1299:{}", p.spi),
            ..Default::default()
        });
        let out = StreamInfo {
            kind: Kind::Raw,
            rate: p.rate as f64,
            channels,
            max_samples: batch,
            meta: meta.clone(),
        };
        let spec = AcquisitionSpec {
            cfg,
            name: cx.name.to_string(),
            rate: p.rate,
            batch,
            channels,
            meta,
            stream_id: cx.stream_id,
            limit: None,
            record_wake: true,
            check_overlap: true,
        };
        Ok((
            Ads1299Source {
                p: p.clone(),
                spec: Some(spec),
                #[cfg(target_os = "linux")]
                acq: None,
            },
            Some(out),
        ))
    }
}

impl Ads1299Source {
    /// The chip configuration `p` stands for.
    pub fn chip(p: &Ads1299Params) -> Config {
        let channels = p.channels.unwrap_or(p.daisy * CHANNELS);
        let mux = input_mux(p.input, p.test_signal);
        let template =
            ChannelConfig { mux, srb2: p.srb2, bias_p: p.bias, bias_n: p.bias, ..ChannelConfig::default() };
        let mut cfg = chip_config(p.rate, p.daisy, channels, &p.gain, template);
        cfg.clock_out = p.clock_out;
        cfg.srb1 = p.srb1;
        cfg.test_signal.internal = mux == Mux::TestSignal;
        cfg.bias.enabled = p.bias;
        cfg.bias.internal_reference = p.bias;
        // BIASIN reaches a channel muxed to `BIAS_MEAS` only with CONFIG3.BIAS_MEAS.
        cfg.bias.measure = mux == Mux::BiasMeas;
        p.lead_off.apply(&mut cfg);
        cfg
    }
}

/// The channel mux of `input` (`test_signal: true` wins).
pub(crate) fn input_mux(input: Input, test_signal: bool) -> Mux {
    match (test_signal, input) {
        (true, _) | (_, Input::TestSignal) => Mux::TestSignal,
        (_, Input::Normal) => Mux::Normal,
        (_, Input::Shorted) => Mux::Shorted,
        (_, Input::BiasMeas) => Mux::BiasMeas,
        (_, Input::Mvdd) => Mux::Mvdd,
        (_, Input::Temperature) => Mux::Temperature,
    }
}

pipeline::register_stage!(Ads1299Source);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;

    fn params(v: serde_json::Value) -> Ads1299Params {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_one_chip_on_spi0_ce0() {
        let p = params(serde_json::json!({}));
        assert_eq!((p.spi.as_str(), p.rate, p.daisy), ("/dev/spidev0.0", 250, 1));
        assert_eq!(p.drdy, DrdyLine { chip: "gpiochip0".into(), line: 25, label: None });
        assert_eq!(p.drdy.expected_label(), "GPIO25");
        let h = Harness::new("ads1299", serde_json::json!({"gain": [1, 2, 4, 6, 8, 12, 24, 24]}), &[], 2)
            .unwrap();
        let out = h.output.unwrap();
        assert_eq!(out.meta.gains, [1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0, 24.0]);
        assert_eq!(out.meta.sensor_id, "ads1299:/dev/spidev0.0");
    }

    #[test]
    fn chained_chips_must_share_a_gain_per_position() {
        let mut gains = vec![24; 16];
        gains[9] = 12;
        let e = Ads1299Source::check(&params(serde_json::json!({"daisy": 2, "gain": gains})));
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("channel 10 has gain 12 but channel 2 has 24"), "{}", e[0].message);
        let e = Ads1299Source::check(&params(serde_json::json!({"daisy": 1, "channels": 9, "rate": 300})));
        assert_eq!(e.iter().map(|e| e.param).collect::<Vec<_>>(), ["rate", "channels"]);
        let e = Ads1299Source::check(&params(serde_json::json!({"daisy": 4, "rate": 16000})));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].message.contains("needs 247 µs") && e[0].message.contains("than the 60 µs"),
            "{}",
            e[0].message
        );
        // 4 chips at 4 kSPS and 4 MHz: 216 µs of frame, 30 µs of wake-up and 2 µs of chip-select
        // hold just fit the 248 µs before the next update; 2 chips at 8 kSPS do not (108 + 32 µs
        // against 123 µs), unless the bus runs at 8 MHz.
        assert_eq!(frame_budget(4, 4_000_000, 4000), None);
        assert_eq!(frame_budget(2, 4_000_000, 8000), Some((139_954, 123_046)));
        assert!(Ads1299Source::check(&params(serde_json::json!({"daisy": 4, "rate": 4000}))).is_empty());
        let ok = params(serde_json::json!({"daisy": 2, "rate": 8000, "spi_hz": 8_000_000}));
        assert!(Ads1299Source::check(&ok).is_empty());
    }

    #[test]
    fn bias_is_refused_on_a_chain_and_bias_meas_sets_config3() {
        let e = Ads1299Source::check(&params(serde_json::json!({"daisy": 2, "bias": true})));
        assert_eq!(e.iter().map(|e| e.param).collect::<Vec<_>>(), ["bias"]);
        assert!(e[0].message.contains("BIASOUT"), "{}", e[0].message);
        let cfg = Ads1299Source::chip(&params(serde_json::json!({"input": "bias_meas"})));
        let regs = cfg.registers();
        assert_eq!(
            regs[sensors::registers::reg::CONFIG3 as usize] & sensors::registers::config3::BIAS_MEAS,
            0x10
        );
        assert_eq!(regs[sensors::registers::reg::CH1SET as usize] & 0x07, 2, "MUX = BIAS_MEAS");
        let normal = Ads1299Source::chip(&params(serde_json::json!({}))).registers();
        assert_eq!(normal[sensors::registers::reg::CONFIG3 as usize] & 0x10, 0);
    }

    #[test]
    fn lead_off_ac_sets_31_hz_the_current_and_every_positive_input() {
        let cfg =
            Ads1299Source::chip(&params(serde_json::json!({"lead_off": {"mode": "ac", "current_na": 24}})));
        let r = cfg.registers();
        use sensors::registers::reg;
        assert_eq!(
            (r[reg::LOFF as usize], r[reg::LOFF_SENSP as usize], r[reg::CONFIG4 as usize]),
            (0x06, 0xFF, 0x02)
        );
        let e =
            Ads1299Source::check(&params(serde_json::json!({"lead_off": {"mode": "dc", "current_na": 7}})));
        assert!(e[0].message.contains("6, 24, 6000 or 24000"), "{}", e[0].message);
    }

    #[test]
    fn opening_a_missing_device_is_a_start_error_not_a_build_error() {
        let mut h =
            Harness::new("ads1299", serde_json::json!({"spi": "/nonexistent/spidev9.9"}), &[], 2).unwrap();
        let e = h.start().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/spidev9.9") || e.contains("needs Linux"), "{e}");
    }
}
