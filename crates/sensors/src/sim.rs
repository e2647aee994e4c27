//! A simulated ADS1299 (or daisy chain of them) that speaks the chip's SPI protocol, holds a
//! driver to the datasheet, and its DRDY line.
//!
//! [`SimChain`] is an [`SpiDevice`]: per chip a register file with the datasheet's reset values
//! and reserved bits fixed as the chip fixes them ([`fixed_bits`]), the command state machine
//! (SDATAC/RDATAC modes, multi-byte `RREG`/`WREG`, `START`/`STOP`, `RDATA`), and RDATAC frames
//! of the length each variant gives (ADS1299-4: 15 bytes, -6: 21, -8: 27). Its analog front end
//! digitises what a [`SignalModel`] puts on the electrodes the way the chip does: the channel's
//! input mux, its PGA gain, the 4.5 V reference, 24-bit quantisation and clipping at full
//! scale, the internal test signal (`CONFIG2`), the shorted-input noise of the datasheet, and
//! each electrode's impedance: the lead-off current (DC, or AC square wave at 7.8 / 31.2 Hz or
//! fDR / 4) through the electrode and the board's series resistor shows in the signal, and a
//! disconnected electrode rails and raises its `LOFF_STATP` bit.
//!
//! **Timing is checked**, on a virtual bus clock that every clocked byte (at [`set_sclk_hz`]),
//! every `Operation::DelayNs` and every [`SimDelay`] wait advances (see [`crate::timing`]):
//! tSDECODE between the bytes of a multi-byte command, tSCCS before chip select rises, the
//! `RESET` wait, decode time after every command (`SDATAC` included), reference settling before
//! `START`. A transaction that breaks one fails with [`SimError::Timing`], as the real chip
//! would misbehave. A frame still being read when the next conversion updates the output
//! register (tUPDATE before DRDY) is corrupted as on the chip: its later bytes come from the
//! next conversion; these are counted ([`SimChain::overlapped`]).
//!
//! **Clocks are wired** ([`ChainClock`]): chip 1 runs from its own oscillator; chained chips
//! either have an external clock, or take chip 1's CLK output, which runs only while chip 1's
//! `CONFIG1.CLK_EN` is set, and a chip takes commands only after tPOR of running clock. A chip
//! without a clock ignores every command and clocks out zeros.
//!
//! [`SimDrdy`] is its DRDY: sample `n` is ready at `START + n / rate`, waited for by sleeping to
//! that absolute deadline, at once (unpaced), or on the virtual clock ([`Pacing::Virtual`]: no
//! real time passes, for tests).
//!
//! Modelled simplifications: register reads return the first chip's registers (its DOUT is the
//! host's); without the internal reference buffer every channel reads 0; the negative inputs'
//! lead-off current flows through the reference electrode, which is not modelled; chip noise is
//! added to shorted inputs only (other inputs carry the signal model's own noise).
use crate::drdy::{elapsed_ns, Drdy, DrdyEvent};
use crate::frame::{encode24, Status};
use crate::registers::{
    chset, cmd, config1, config2, config3, config4, fixed_bits, frame_bytes, id, loff, read_only_mask, reg,
    DataRate, Gain, Mux, CHANNELS, FRAME_BYTES, F_CLK_HZ, MAX_CHIPS, RESET_VALUES, VREF,
};
use crate::signal::SignalModel;
use crate::timing::{
    byte_ns, T_POR_NS, T_REFERENCE_SETTLE_NS, T_RESET_NS, T_SCCS_NS, T_SDECODE_NS, T_UPDATE_NS,
};
use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use nix::time::{clock_gettime, clock_nanosleep, ClockId, ClockNanosleepFlags};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `CLOCK_MONOTONIC`, ns.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns` (`clock_nanosleep` with
/// `TIMER_ABSTIME`: lateness never accumulates). Returns at once if it has passed.
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = nix::sys::time::TimeSpec::from(Duration::from_nanos(deadline_ns));
    while let Err(nix::Error::EINTR) =
        clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &ts)
    {}
}

/// A delay that does not wait, and tells no simulated chip about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

/// A delay on a [`SimChain`]'s virtual bus clock: it passes at once in real time, and the chip
/// sees the time go by (so its timing checks count it).
#[derive(Debug, Clone)]
pub struct SimDelay(Arc<AtomicU64>);

impl embedded_hal::delay::DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.0.fetch_add(ns as u64, Ordering::Relaxed);
    }
}

/// How the chips after the first are clocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainClock {
    /// Every chip has a running clock (an external oscillator, or its own): the datasheet's
    /// requirement for a daisy chain on a shared DIN.
    #[default]
    External,
    /// Chips 2…N take chip 1's CLK output, which runs only while chip 1's `CONFIG1.CLK_EN` is
    /// set (it is clear after power-up and `RESET`).
    FromFirst,
}

/// A timing rule the host broke (see [`crate::timing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two bytes of a multi-byte command (or a command and the one before it) ended closer than
    /// tSDECODE.
    ByteGap { command: &'static str, gap_ns: u64, needed_ns: u64 },
    /// Chip select rose sooner than tSCCS after the last SCLK.
    CsHold { held_ns: u64, needed_ns: u64 },
    /// A command came too soon after `after` (`RESET`: 18 tCLK).
    TooSoon { after: &'static str, waited_ns: u64, needed_ns: u64 },
    /// `START` before the internal reference had settled.
    ReferenceNotSettled { chip: usize, waited_ns: u64, needed_ns: u64 },
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Violation::ByteGap { command, gap_ns, needed_ns } => write!(
                f,
                "bytes of `{command}` ended {gap_ns} ns apart; the chip needs tSDECODE = {needed_ns} ns \
                 (4 tCLK) to decode each"
            ),
            Violation::CsHold { held_ns, needed_ns } => write!(
                f,
                "chip select rose {held_ns} ns after the last SCLK; tSCCS is {needed_ns} ns (4 tCLK)"
            ),
            Violation::TooSoon { after, waited_ns, needed_ns } => {
                write!(f, "a command {waited_ns} ns after `{after}`, which needs {needed_ns} ns")
            }
            Violation::ReferenceNotSettled { chip, waited_ns, needed_ns } => write!(
                f,
                "START on chip {} {waited_ns} ns after the reference buffer was switched on; it \
                 needs {needed_ns} ns to settle",
                chip + 1
            ),
        }
    }
}

/// The simulated chip's bus error: a timing rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("ADS1299 timing violated: {0}")]
    Timing(Violation),
}

impl embedded_hal::spi::Error for SimError {
    fn kind(&self) -> embedded_hal::spi::ErrorKind {
        embedded_hal::spi::ErrorKind::Other
    }
}

/// The chip's conversion clock, shared by the SPI side and the DRDY side.
#[derive(Debug, Default)]
struct Clock {
    running: AtomicBool,
    /// Time of `START`: `CLOCK_MONOTONIC`, or the virtual bus clock with [`Pacing::Virtual`].
    start_ns: AtomicU64,
    rate: AtomicU32,
    /// Samples announced by DRDY so far: sample `ready - 1` is the latest.
    ready: AtomicU64,
    /// DRDY runs on the virtual bus clock.
    virtual_time: AtomicBool,
    /// Check reads against the next DRDY on `CLOCK_MONOTONIC` (a DRDY-paced real-time run).
    real_overlap: AtomicBool,
    /// DRDY edges from before the host's `START` still queued (stale), and their time.
    stale: AtomicU32,
}

/// Where one chip's command parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Opcode,
    RregCount(u8),
    WregCount(u8),
    WregData { addr: u8, left: u8 },
}

/// One simulated chip.
#[derive(Debug, Clone)]
struct Chip {
    regs: [u8; reg::COUNT],
    /// The `ID` this chip reports (kept through `RESET`).
    id: u8,
    /// Inputs whose lead-off status is forced on: (positive, negative), bit `k` = channel `k + 1`.
    off: (u8, u8),
    /// Replaces the first status byte (to simulate a misaligned bus).
    status_byte: Option<u8>,
    rdatac: bool,
    parse: Parse,
    converting: bool,
    /// Bus time the reference buffer was switched on.
    reference_on_ns: Option<u64>,
}

impl Chip {
    fn new() -> Chip {
        Chip {
            regs: RESET_VALUES,
            id: RESET_VALUES[0],
            off: (0, 0),
            status_byte: None,
            rdatac: true,
            parse: Parse::Opcode,
            converting: false,
            reference_on_ns: None,
        }
    }

    fn channels(&self) -> usize {
        match self.id & id::NU_CH_MASK {
            id::NU_CH_4 => 4,
            id::NU_CH_6 => 6,
            _ => CHANNELS,
        }
    }

    fn reset(&mut self) {
        self.regs = RESET_VALUES;
        self.regs[reg::ID as usize] = self.id;
        self.rdatac = true;
        self.converting = false;
        self.reference_on_ns = None;
    }

    /// A register write as the chip takes it: read-only and reserved bits keep their values.
    fn write(&mut self, addr: u8, v: u8, now: u64) {
        let Some(r) = self.regs.get_mut(addr as usize) else { return };
        let ro = read_only_mask(addr);
        let (fixed, value) = fixed_bits(addr);
        let before = *r;
        *r = (((*r & ro) | (v & !ro)) & !fixed) | value;
        if addr == reg::CONFIG3 && before & config3::PD_REFBUF == 0 && *r & config3::PD_REFBUF != 0 {
            self.reference_on_ns = Some(now);
        }
        if addr == reg::CONFIG3 && *r & config3::PD_REFBUF == 0 {
            self.reference_on_ns = None;
        }
    }
}

/// An electrode on a simulated channel's positive input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Electrode {
    /// Electrode–skin impedance, Ω (default 5 kΩ).
    pub impedance_ohm: f64,
    /// Not touching the skin: the input floats to a rail.
    pub disconnected: bool,
}

impl Default for Electrode {
    fn default() -> Self {
        Electrode { impedance_ohm: 5_000.0, disconnected: false }
    }
}

/// The series resistor on each input of OpenBCI-style boards (2.2 kΩ), which the lead-off
/// current also flows through.
pub const SERIES_OHM: f64 = 2_200.0;

/// How [`SimDrdy`] paces the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Every wait returns at once; timestamps are still `START + n / rate`.
    Unpaced,
    /// One sleep per sample, to its absolute deadline, like the chip's DRDY. Waking after the
    /// next sample's deadline loses the sample in between (an overrun, as on the chip).
    PerSample,
    /// One sleep per `n` samples, to the deadline of the last: the samples of a batch are
    /// handed out together (as if the chip had a FIFO), so a host that wakes once per packet
    /// loses nothing.
    Batch(u32),
    /// DRDY on the virtual bus clock: a wait moves the clock to the next deadline (no real
    /// sleep), and a host that spent longer than a period on the bus misses samples and
    /// overlaps reads exactly as it would on the chip. For tests.
    Virtual,
}

/// The most violations kept for [`SimChain::violations`].
const MAX_VIOLATIONS: usize = 64;
/// Bytes of the longest chain's frame.
const OUT_BYTES: usize = MAX_CHIPS * FRAME_BYTES;

/// A chain of 1–4 simulated ADS1299s on one chip select: an [`SpiDevice`].
pub struct SimChain {
    chips: Vec<Chip>,
    clock: Arc<Clock>,
    /// The virtual bus clock, ns.
    now: Arc<AtomicU64>,
    sclk_hz: u32,
    wiring: ChainClock,
    /// Bus time chip 1's CLK output started (`CLK_EN` set), if it runs.
    clk_out_since: Option<u64>,
    standby: bool,
    /// The output shift register: bytes clocked out on MISO from `pos`.
    out: [u8; OUT_BYTES],
    out_len: usize,
    pos: usize,
    /// Sample index + 1 of the frame last loaded (0: none yet).
    loaded: u64,
    /// A frame converted early because a late read overlapped its update: (index, bytes).
    early: Option<(u64, [u8; OUT_BYTES])>,
    model: SignalModel,
    uv: [f64; MAX_CHIPS * CHANNELS],
    /// A register whose bits do not take writes: (address, mask).
    stuck: Option<(u8, u8)>,
    /// Per channel of the chain, a DC electrode offset added to the model's signal, µV.
    offsets_uv: [f64; MAX_CHIPS * CHANNELS],
    electrodes: [Electrode; MAX_CHIPS * CHANNELS],
    series_ohm: f64,
    /// Channels whose input stage is broken (they read 0 whatever the mux): bit `c`.
    broken: u32,
    noise_rng: u64,
    /// Bus time of the end of the last command byte (opcode or argument).
    last_command_end: Option<u64>,
    /// The last command's opcode name and the bus time before which nothing may follow it.
    busy: Option<(&'static str, u64, u64)>,
    /// An `RREG` whose data have not been clocked out yet: the end of its count byte.
    rreg_since: Option<u64>,
    violations: Vec<Violation>,
    overlapped: u64,
}

/// One side of the pair that [`SimChain::drdy`] makes: the DRDY line of the chain.
pub struct SimDrdy {
    clock: Arc<Clock>,
    now: Arc<AtomicU64>,
    pacing: Pacing,
    /// For batch pacing: samples below this index are released.
    released: u64,
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        cmd::WAKEUP => "WAKEUP",
        cmd::STANDBY => "STANDBY",
        cmd::RESET => "RESET",
        cmd::START => "START",
        cmd::STOP => "STOP",
        cmd::RDATAC => "RDATAC",
        cmd::SDATAC => "SDATAC",
        cmd::RDATA => "RDATA",
        _ if op & 0xE0 == cmd::RREG => "RREG",
        _ if op & 0xE0 == cmd::WREG => "WREG",
        _ => "(no command)",
    }
}

/// Input-referred noise with shorted inputs, µV rms and µVpp, at gain 24 per data rate (250 …
/// 16000 SPS): SBAS499 Table 1 "Input-Referred Noise (µVRMS/µVPP) in Normal Mode", the gain-24
/// column (peak-to-peak over its 10 s window; typical values).
pub const SHORTED_NOISE_GAIN24: [(u32, f64, f64); 7] = [
    (250, 0.14, 0.98),
    (500, 0.20, 1.38),
    (1000, 0.28, 2.00),
    (2000, 0.40, 2.80),
    (4000, 0.56, 4.50),
    (8000, 0.97, 7.90),
    (16000, 3.00, 22.0),
];

/// Shorted-input noise at `rate` and `gain`, (µV rms, µVpp). Gains other than 24 follow a PGA +
/// ADC noise model, √(a² + (b / gain)²) with a = 0.127, b = 1.39 µV at 250 SPS (the table's
/// 0.14 µV at gain 24 and about 1.4 µV at gain 1), scaled with the rate like the gain-24 column:
/// an approximation of the table's other columns.
pub fn shorted_noise_uv(rate: u32, gain: u32) -> (f64, f64) {
    let (_, rms24, pp24) =
        SHORTED_NOISE_GAIN24.iter().copied().find(|r| r.0 == rate).unwrap_or(SHORTED_NOISE_GAIN24[0]);
    let model = |g: f64| (0.127f64.powi(2) + (1.39 / g).powi(2)).sqrt();
    let k = model(gain.max(1) as f64) / model(24.0);
    (rms24 * k, pp24 * k)
}

impl SimChain {
    /// `chips` chained chips (clamped to 1–4) whose electrodes carry `model`'s signal
    /// (channel `c` of the model is channel `c % 8` of chip `c / 8`). The SPI clock is 4 MHz
    /// until [`set_sclk_hz`](Self::set_sclk_hz); every chip has a clock ([`ChainClock::External`]).
    pub fn new(chips: usize, model: SignalModel) -> SimChain {
        SimChain {
            chips: vec![Chip::new(); chips.clamp(1, MAX_CHIPS)],
            clock: Arc::new(Clock::default()),
            now: Arc::new(AtomicU64::new(0)),
            sclk_hz: 4_000_000,
            wiring: ChainClock::External,
            clk_out_since: None,
            standby: false,
            out: [0; OUT_BYTES],
            out_len: 0,
            pos: 0,
            loaded: 0,
            early: None,
            model,
            uv: [0.0; MAX_CHIPS * CHANNELS],
            stuck: None,
            offsets_uv: [0.0; MAX_CHIPS * CHANNELS],
            electrodes: [Electrode::default(); MAX_CHIPS * CHANNELS],
            series_ohm: SERIES_OHM,
            broken: 0,
            noise_rng: 0x2545_F491_4F6C_DD1D,
            last_command_end: None,
            busy: None,
            rreg_since: None,
            violations: Vec::new(),
            overlapped: 0,
        }
    }

    /// The chain's DRDY line.
    pub fn drdy(&self, pacing: Pacing) -> SimDrdy {
        self.clock.virtual_time.store(pacing == Pacing::Virtual, Ordering::Relaxed);
        self.clock.real_overlap.store(pacing == Pacing::PerSample, Ordering::Relaxed);
        SimDrdy { clock: self.clock.clone(), now: self.now.clone(), pacing, released: 0 }
    }

    /// A delay that advances this chain's bus clock (for the driver's waits).
    pub fn delay(&self) -> SimDelay {
        SimDelay(self.now.clone())
    }

    /// The virtual bus clock, ns since the chain was made.
    pub fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// The SPI clock the host drives, Hz (it times every byte).
    pub fn set_sclk_hz(&mut self, hz: u32) {
        self.sclk_hz = hz.max(1);
    }

    /// How chips 2…N are clocked.
    pub fn set_chain_clock(&mut self, wiring: ChainClock) {
        self.wiring = wiring;
    }

    /// Timing rules broken so far (the first 64).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Frames whose read overlapped the next conversion's update (tUPDATE) and were corrupted.
    pub fn overlapped(&self) -> u64 {
        self.overlapped
    }

    /// A chip's registers as they are now.
    pub fn registers(&self, chip: usize) -> [u8; reg::COUNT] {
        self.chips[chip].regs
    }

    /// True while converting (`START` sent, no `STOP` since).
    pub fn running(&self) -> bool {
        self.clock.running.load(Ordering::Relaxed)
    }

    /// True when every clocked chip is in read-data-continuous mode.
    pub fn rdatac(&self) -> bool {
        self.chips[0].rdatac
    }

    /// True if chip `chip` has a running clock and has passed tPOR on it.
    pub fn clocked(&self, chip: usize) -> bool {
        self.chip_clocked(chip, self.now_ns())
    }

    /// Makes a chip report `id` in its `ID` register (e.g. an ADS1299-4, or another family).
    pub fn set_id(&mut self, chip: usize, id: u8) {
        self.chips[chip].id = id;
        self.chips[chip].regs[reg::ID as usize] = id;
    }

    /// Forces lead-off status: bit `k` of `p`/`n` = channel `k + 1`'s positive/negative input.
    /// Shows in the status word where lead-off detection is on for that input.
    pub fn set_leads_off(&mut self, chip: usize, p: u8, n: u8) {
        self.chips[chip].off = (p, n);
    }

    /// The electrode on channel `channel` of the chain (0-based, chip 1's first).
    pub fn set_electrode(&mut self, channel: usize, e: Electrode) {
        if let Some(x) = self.electrodes.get_mut(channel) {
            *x = e;
        }
    }

    /// The resistor in series with every input on the board, Ω (default 2.2 kΩ).
    pub fn set_series_ohm(&mut self, ohm: f64) {
        self.series_ohm = ohm.max(0.0);
    }

    /// Breaks (or mends) channel `channel`'s input stage: it reads 0 whatever its mux, as a
    /// damaged channel would (a self-test must fail it).
    pub fn set_broken(&mut self, channel: usize, broken: bool) {
        if channel < 32 {
            self.broken = (self.broken & !(1 << channel)) | ((broken as u32) << channel);
        }
    }

    /// Adds a DC offset of `uv` µV to channel `channel` of the chain (0-based, chip 0's first),
    /// as a half-cell potential would.
    pub fn set_offset_uv(&mut self, channel: usize, uv: f64) {
        if let Some(o) = self.offsets_uv.get_mut(channel) {
            *o = uv;
        }
    }

    /// Replaces the first status byte of a chip's frames (`None`: the real one).
    pub fn corrupt_status(&mut self, chip: usize, byte: Option<u8>) {
        self.chips[chip].status_byte = byte;
    }

    /// Makes a register write fail to take, as a chip with a bad SPI contact would: the bits of
    /// `mask` of register `addr` stay as they are.
    pub fn stick_bits(&mut self, addr: u8, mask: u8) {
        self.stuck = Some((addr, mask));
    }

    /// Queues `n` DRDY edges from before the host started the chip (a previous run that was not
    /// stopped): a [`Drdy::flush`] discards them.
    pub fn queue_stale_drdy(&mut self, n: u32) {
        self.clock.stale.store(n, Ordering::Relaxed);
    }

    fn chip_clocked(&self, chip: usize, now: u64) -> bool {
        chip == 0
            || self.wiring == ChainClock::External
            || self.clk_out_since.is_some_and(|s| now >= s.saturating_add(T_POR_NS))
    }

    fn violate(&mut self, v: Violation) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(v);
        }
    }

    /// Timing of a command byte (an opcode, or an argument of `RREG`/`WREG`) clocked in during
    /// `[start, end]`.
    fn check_command_byte(&mut self, name: &'static str, start: u64, end: u64) {
        if let Some((after, since, until)) = self.busy {
            if start < until {
                self.violate(Violation::TooSoon {
                    after,
                    waited_ns: start - since,
                    needed_ns: until - since,
                });
            }
        }
        if let Some(prev) = self.last_command_end {
            let gap = end - prev;
            if gap < T_SDECODE_NS {
                self.violate(Violation::ByteGap { command: name, gap_ns: gap, needed_ns: T_SDECODE_NS });
            }
        }
        self.last_command_end = Some(end);
        self.busy = None;
    }

    /// One byte each way, clocked in during `[start, end]`: returns MISO for `mosi`.
    fn exchange(&mut self, mosi: u8, start: u64, end: u64) -> u8 {
        let miso = if self.pos < self.out_len {
            self.pos += 1;
            self.out[self.pos - 1]
        } else {
            0
        };
        if let Some(since) = self.rreg_since.take() {
            // The first byte of register data.
            if end - since < T_SDECODE_NS {
                self.violate(Violation::ByteGap {
                    command: "RREG",
                    gap_ns: end - since,
                    needed_ns: T_SDECODE_NS,
                });
            }
        }
        let command = self.chips[0].parse != Parse::Opcode || opcode_name(mosi) != "(no command)";
        if command {
            let name = match self.chips[0].parse {
                Parse::RregCount(_) => "RREG",
                Parse::WregCount(_) | Parse::WregData { .. } => "WREG",
                Parse::Opcode => opcode_name(mosi),
            };
            self.check_command_byte(name, start, end);
        }
        for c in 0..self.chips.len() {
            if self.chip_clocked(c, start) {
                self.chip_byte(c, mosi, end);
            }
        }
        miso
    }

    /// Chip `c` takes byte `mosi`, whose last clock ends at `end`.
    fn chip_byte(&mut self, c: usize, mosi: u8, end: u64) {
        match self.chips[c].parse {
            Parse::Opcode => self.chip_command(c, mosi, end),
            Parse::RregCount(addr) => {
                if c == 0 {
                    let regs = &self.chips[0].regs;
                    let n = (mosi as usize + 1).min(reg::COUNT.saturating_sub(addr as usize));
                    self.out[..n].copy_from_slice(&regs[addr as usize..addr as usize + n]);
                    self.out_len = n;
                    self.pos = 0;
                    self.rreg_since = Some(end);
                }
                self.chips[c].parse = Parse::Opcode;
            }
            Parse::WregCount(addr) => self.chips[c].parse = Parse::WregData { addr, left: mosi + 1 },
            Parse::WregData { addr, left } => {
                let stuck = self.stuck.filter(|s| s.0 == addr).map(|s| s.1).unwrap_or(0);
                let old = self.chips[c].regs.get(addr as usize).copied().unwrap_or(0);
                self.chips[c].write(addr, (mosi & !stuck) | (old & stuck), end);
                if c == 0 && addr == reg::CONFIG1 {
                    let on = self.chips[0].regs[reg::CONFIG1 as usize] & config1::CLK_EN != 0;
                    self.clk_out_since = match (on, self.clk_out_since) {
                        (true, None) => Some(end),
                        (true, s) => s,
                        (false, _) => None,
                    };
                }
                self.chips[c].parse =
                    if left > 1 { Parse::WregData { addr: addr + 1, left: left - 1 } } else { Parse::Opcode };
            }
        }
    }

    fn chip_command(&mut self, c: usize, op: u8, end: u64) {
        let chip = &mut self.chips[c];
        match op {
            cmd::WAKEUP => self.standby = false,
            cmd::STANDBY => self.standby = true,
            cmd::RESET => {
                chip.reset();
                chip.parse = Parse::Opcode;
                if c == 0 {
                    self.clock.running.store(false, Ordering::Relaxed);
                    self.clk_out_since = None;
                    self.busy = Some(("RESET", end, end + T_RESET_NS));
                }
            }
            cmd::START => {
                chip.converting = true;
                if chip.regs[reg::CONFIG3 as usize] & config3::PD_REFBUF != 0 {
                    let since = chip.reference_on_ns.unwrap_or(0);
                    if end < since + T_REFERENCE_SETTLE_NS {
                        let v = Violation::ReferenceNotSettled {
                            chip: c,
                            waited_ns: end - since,
                            needed_ns: T_REFERENCE_SETTLE_NS,
                        };
                        self.violate(v);
                    }
                }
                if c == 0 {
                    self.start_clock(end);
                }
            }
            cmd::STOP => {
                chip.converting = false;
                if c == 0 {
                    self.clock.running.store(false, Ordering::Relaxed);
                }
            }
            cmd::RDATAC => chip.rdatac = true,
            cmd::SDATAC => chip.rdatac = false,
            cmd::RDATA if !chip.rdatac && c == 0 => self.load_frame(None),
            cmd::RDATA if !chip.rdatac => {}
            _ if chip.rdatac => {} // register commands are ignored in RDATAC mode
            _ if op & 0xE0 == cmd::RREG => chip.parse = Parse::RregCount(op & cmd::ADDRESS_MASK),
            _ if op & 0xE0 == cmd::WREG => chip.parse = Parse::WregCount(op & cmd::ADDRESS_MASK),
            _ => {}
        }
    }

    fn start_clock(&mut self, bus_now: u64) {
        let bits = self.chips[0].regs[reg::CONFIG1 as usize];
        let rate = DataRate::from_bits(bits).map(DataRate::hz).unwrap_or(250);
        let start = if self.clock.virtual_time.load(Ordering::Relaxed) { bus_now } else { monotonic_ns() };
        self.clock.rate.store(rate, Ordering::Relaxed);
        self.clock.ready.store(0, Ordering::Relaxed);
        self.clock.start_ns.store(start, Ordering::Relaxed);
        self.clock.running.store(true, Ordering::Release);
        self.loaded = 0;
        self.early = None;
    }

    fn frame_len(&self) -> usize {
        self.chips.iter().map(|c| frame_bytes(c.channels())).sum()
    }

    /// Chip select falls at bus time `t`: in RDATAC mode a frame announced by DRDY is in the
    /// output register.
    fn begin(&mut self, t: u64) {
        if self.chips[0].rdatac && self.running() {
            self.load_frame(Some(t));
        }
    }

    /// Loads the latest announced sample's frame into the output register. `read_at`: when the
    /// host starts clocking it out (bus time), to check it against the next update.
    fn load_frame(&mut self, read_at: Option<u64>) {
        let ready = self.clock.ready.load(Ordering::Acquire);
        if ready == 0 {
            self.out_len = 0;
            return;
        }
        let n = ready - 1;
        if ready != self.loaded {
            self.loaded = ready;
            match self.early.take() {
                Some((k, bytes)) if k == n => self.out = bytes,
                _ => self.convert(n),
            }
        }
        self.out_len = self.frame_len();
        self.pos = 0;
        // Reads that run into the next conversion's update (tUPDATE before its DRDY).
        let start = self.clock.start_ns.load(Ordering::Relaxed);
        let rate = self.clock.rate.load(Ordering::Relaxed);
        let t0 = if self.clock.virtual_time.load(Ordering::Relaxed) {
            read_at
        } else if self.clock.real_overlap.load(Ordering::Relaxed) {
            read_at.map(|_| monotonic_ns())
        } else {
            None
        };
        if let Some(t0) = t0 {
            let update = (start + elapsed_ns(n + 1, rate)).saturating_sub(T_UPDATE_NS);
            let bn = byte_ns(self.sclk_hz);
            if t0 + bn * self.out_len as u64 > update && self.early.is_none() {
                let clean = (update.saturating_sub(t0) / bn) as usize;
                let old = self.out;
                self.convert(n + 1);
                self.early = Some((n + 1, self.out));
                self.out[..clean.min(OUT_BYTES)].copy_from_slice(&old[..clean.min(OUT_BYTES)]);
                self.overlapped += 1;
            }
        }
    }

    fn gaussian(&mut self) -> f64 {
        let mut u = || {
            let s = &mut self.noise_rng;
            *s ^= *s >> 12;
            *s ^= *s << 25;
            *s ^= *s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        // Irwin–Hall, 12 terms: unit variance, bounded at ±6σ.
        (0..12).map(|_| u()).sum::<f64>() - 6.0
    }

    /// Digitises sample `n` of every chip into the output register, chip 1 first.
    fn convert(&mut self, n: u64) {
        let rate = self.clock.rate.load(Ordering::Relaxed);
        let total = self.chips.len() * CHANNELS;
        self.model.sample(n, rate, &mut self.uv[..total]);
        let t = n as f64 / rate.max(1) as f64;
        let mut at = 0;
        for c in 0..self.chips.len() {
            let chip = &self.chips[c];
            let (channels, off, converting) = (chip.channels(), chip.off, chip.converting);
            let len = frame_bytes(channels);
            if !converting {
                // No clock, or never started: DOUT stays low.
                self.out[at..at + len].fill(0);
                at += len;
                continue;
            }
            let r = chip.regs;
            let lo = r[reg::LOFF as usize];
            let (sensp, sensn) = (r[reg::LOFF_SENSP as usize], r[reg::LOFF_SENSN as usize]);
            let current_a =
                loff::CURRENTS_NA[((lo & loff::ILEAD_OFF_MASK) >> loff::ILEAD_OFF_SHIFT) as usize] * 1e-9;
            let excitation = match lo & loff::FLEAD_OFF_MASK {
                loff::FLEAD_OFF_DC => 1.0,
                f => {
                    let hz = match f {
                        loff::FLEAD_OFF_AC_7_8 => loff::AC_7_8_HZ,
                        loff::FLEAD_OFF_AC_31_2 => loff::AC_31_2_HZ,
                        _ => rate as f64 / 4.0,
                    };
                    if (t * hz).fract() < 0.5 {
                        1.0
                    } else {
                        -1.0
                    }
                }
            };
            // LOFF comparator threshold, positive side: 95 % … 70 % of the 5 V supply, the input
            // sitting mid-supply (LOFF register, COMP_TH).
            const COMP_TH: [f64; 8] = [0.95, 0.925, 0.90, 0.875, 0.85, 0.80, 0.75, 0.70];
            let threshold_v = (COMP_TH[(lo >> loff::COMP_TH_SHIFT) as usize] - 0.5) * 5.0;
            let comparators = r[reg::CONFIG4 as usize] & config4::PD_LOFF_COMP != 0;
            let (mut statp, mut statn) = (0u8, 0u8);
            let reference = r[reg::CONFIG3 as usize] & config3::PD_REFBUF != 0;
            let mut ch = [0i32; CHANNELS];
            for (k, out) in ch.iter_mut().enumerate().take(channels) {
                let idx = c * CHANNELS + k;
                let set = r[reg::CH1SET as usize + k];
                let gain = Gain::from_bits(set).map(Gain::factor).unwrap_or(1);
                let sensed = sensp & (1 << k) != 0;
                let e = &self.electrodes[idx];
                if comparators {
                    let z = e.impedance_ohm + self.series_ohm;
                    if sensed && (e.disconnected || off.0 & (1 << k) != 0 || current_a * z > threshold_v) {
                        statp |= 1 << k;
                    }
                    if sensn & (1 << k) != 0 && off.1 & (1 << k) != 0 {
                        statn |= 1 << k;
                    }
                }
                let dead =
                    set & chset::PD != 0 || !reference || self.standby || self.broken & (1 << idx) != 0;
                let uv = if dead {
                    0.0
                } else {
                    match Mux::from_bits(set) {
                        // Beyond full scale (VREF / gain).
                        Mux::Normal if e.disconnected => 1.1 * VREF / gain as f64 * 1e6,
                        Mux::Normal if sensed => {
                            let lead_off = current_a * (e.impedance_ohm + self.series_ohm) * 1e6 * excitation;
                            self.uv[idx] + self.offsets_uv[idx] + lead_off
                        }
                        Mux::Normal => self.uv[idx] + self.offsets_uv[idx],
                        Mux::TestSignal => test_signal_uv(r[reg::CONFIG2 as usize], n, rate),
                        // (AVDD − AVSS) / 2 of a 5 V analog supply.
                        Mux::Mvdd => 2.5e6,
                        // 145.3 mV at 25 °C.
                        Mux::Temperature => 145_300.0,
                        Mux::Shorted => {
                            let (rms, _) = shorted_noise_uv(rate, gain);
                            rms * self.gaussian()
                        }
                        Mux::BiasMeas | Mux::BiasDrp | Mux::BiasDrn => 0.0,
                    }
                };
                *out = quantise(uv, gain);
            }
            let chip = &mut self.chips[c];
            chip.regs[reg::LOFF_STATP as usize] = statp;
            chip.regs[reg::LOFF_STATN as usize] = statn;
            let f = &mut self.out[at..at + len];
            let gpio = chip.regs[reg::GPIO as usize] >> 4;
            f[..3].copy_from_slice(&Status { loff_statp: statp, loff_statn: statn, gpio }.to_bytes());
            if let Some(b) = chip.status_byte {
                f[0] = b;
            }
            for (k, v) in ch.iter().enumerate().take(channels) {
                f[3 + 3 * k..6 + 3 * k].copy_from_slice(&encode24(*v));
            }
            at += len;
        }
    }
}

/// What the chip's ADC makes of `uv` microvolts at `gain`: `round(V × gain / (2 × VREF) ×
/// 2^24)`, clipped to the 24-bit range.
pub fn quantise(uv: f64, gain: u32) -> i32 {
    const COUNTS_PER_UV: f64 = 1e-6 / (2.0 * VREF) * (1u64 << 24) as f64;
    let x = (uv * gain as f64 * COUNTS_PER_UV).clamp(-(1i64 << 23) as f64, ((1i64 << 23) - 1) as f64);
    // Round half away from zero, as `f64::round`, without its libm call on x86-64 (that call
    // was a sixth of the simulator's time).
    (x + 0.5f64.copysign(x)) as i32
}

/// The internal test signal per `CONFIG2` at sample `n`, µV: a square wave of
/// ±(VREF / 2400) (twice that with `CAL_AMP0`) at fCLK / 2^21 or / 2^20, or DC; 0 when the
/// test source is external (`INT_CAL = 0`): nothing drives it here.
pub fn test_signal_uv(config2: u8, n: u64, rate: u32) -> f64 {
    if config2 & config2::INT_CAL == 0 {
        return 0.0;
    }
    let amp = VREF / 2400.0 * 1e6 * if config2 & config2::CAL_AMP0 != 0 { 2.0 } else { 1.0 };
    let f = match config2 & config2::CAL_FREQ_MASK {
        config2::CAL_FREQ_SLOW => F_CLK_HZ / (1u64 << 21) as f64,
        config2::CAL_FREQ_FAST => F_CLK_HZ / (1u64 << 20) as f64,
        _ => return amp,
    };
    let t = n as f64 / rate.max(1) as f64;
    if (t * f).fract() < 0.5 {
        amp
    } else {
        -amp
    }
}

impl ErrorType for SimChain {
    type Error = SimError;
}

impl SpiDevice for SimChain {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let first_violation = self.violations.len();
        let bn = byte_ns(self.sclk_hz);
        let mut t = self.now.load(Ordering::Relaxed);
        self.begin(t);
        let mut last_sclk = None;
        for op in operations {
            match op {
                Operation::Read(buf)
                    if self.chips.iter().all(|c| c.parse == Parse::Opcode) && self.rreg_since.is_none() =>
                {
                    // MOSI is all zeros, which are no commands: clock out the output register
                    // in one copy (the per-byte path below gives the same bytes, slower).
                    let n = buf.len().min(self.out_len - self.pos);
                    buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
                    buf[n..].fill(0);
                    self.pos += n;
                    t += bn * buf.len() as u64;
                    last_sclk = Some(t);
                }
                Operation::Read(buf) => buf.iter_mut().for_each(|b| {
                    t += bn;
                    *b = self.exchange(0, t - bn, t);
                    last_sclk = Some(t);
                }),
                Operation::Write(buf) => buf.iter().for_each(|&b| {
                    t += bn;
                    self.exchange(b, t - bn, t);
                    last_sclk = Some(t);
                }),
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        t += bn;
                        let miso = self.exchange(write.get(i).copied().unwrap_or(0), t - bn, t);
                        if let Some(r) = read.get_mut(i) {
                            *r = miso;
                        }
                        last_sclk = Some(t);
                    }
                }
                Operation::TransferInPlace(buf) => buf.iter_mut().for_each(|b| {
                    t += bn;
                    *b = self.exchange(*b, t - bn, t);
                    last_sclk = Some(t);
                }),
                Operation::DelayNs(ns) => t += *ns as u64,
            }
        }
        if let Some(l) = last_sclk {
            if t - l < T_SCCS_NS {
                self.violate(Violation::CsHold { held_ns: t - l, needed_ns: T_SCCS_NS });
            }
        }
        // Chip select rises: a command cut short is abandoned.
        self.chips.iter_mut().for_each(|c| c.parse = Parse::Opcode);
        self.rreg_since = None;
        self.now.store(t, Ordering::Relaxed);
        match self.violations.get(first_violation) {
            Some(v) => Err(SimError::Timing(v.clone())),
            None => Ok(()),
        }
    }
}

impl SimDrdy {
    /// Announces sample `k`: the SPI side will clock out its frame.
    fn announce(&mut self, k: u64, missed: u64, start: u64, rate: u32) -> DrdyEvent {
        self.clock.ready.store(k + 1, Ordering::Release);
        DrdyEvent { timestamp_ns: start + elapsed_ns(k, rate), missed: missed.min(u32::MAX as u64) as u32 }
    }

    /// Pops a stale edge (from before `START`), if one is queued.
    fn stale(&mut self) -> Option<DrdyEvent> {
        let n = self.clock.stale.load(Ordering::Relaxed);
        (n > 0).then(|| {
            self.clock.stale.store(n - 1, Ordering::Relaxed);
            // Edges of an earlier run: long before this run's START.
            DrdyEvent { timestamp_ns: n as u64, missed: 0 }
        })
    }
}

impl Drdy for SimDrdy {
    type Error = core::convert::Infallible;

    fn wait(&mut self, timeout_ns: u64) -> Result<Option<DrdyEvent>, Self::Error> {
        if let Some(ev) = self.stale() {
            return Ok(Some(ev));
        }
        let virtual_time = self.pacing == Pacing::Virtual;
        if !self.clock.running.load(Ordering::Acquire) {
            // A stopped chip gives no DRDY.
            if virtual_time {
                self.now.fetch_add(timeout_ns, Ordering::Relaxed);
            } else {
                sleep_until_ns(monotonic_ns().saturating_add(timeout_ns));
            }
            return Ok(None);
        }
        let start = self.clock.start_ns.load(Ordering::Relaxed);
        let rate = self.clock.rate.load(Ordering::Relaxed);
        let k = self.clock.ready.load(Ordering::Relaxed);
        match self.pacing {
            Pacing::Unpaced => Ok(Some(self.announce(k, 0, start, rate))),
            Pacing::Virtual => {
                let deadline = start + elapsed_ns(k, rate);
                let now = self.now.load(Ordering::Relaxed);
                if deadline > now.saturating_add(timeout_ns) {
                    self.now.store(now + timeout_ns, Ordering::Relaxed);
                    return Ok(None);
                }
                if deadline >= now {
                    self.now.store(deadline, Ordering::Relaxed);
                    return Ok(Some(self.announce(k, 0, start, rate)));
                }
                // The host came late: the chip kept only the latest conversion.
                let latest = ((now - start) as u128 * rate as u128 / 1_000_000_000) as u64;
                let k2 = latest.max(k);
                Ok(Some(self.announce(k2, k2 - k, start, rate)))
            }
            Pacing::Batch(n) => {
                if k < self.released {
                    return Ok(Some(self.announce(k, 0, start, rate)));
                }
                let last = k + n.max(1) as u64 - 1;
                let deadline = start + elapsed_ns(last, rate);
                let now = monotonic_ns();
                if deadline > now.saturating_add(timeout_ns) {
                    sleep_until_ns(now + timeout_ns);
                    return Ok(None);
                }
                sleep_until_ns(deadline);
                self.released = last + 1;
                Ok(Some(self.announce(k, 0, start, rate)))
            }
            Pacing::PerSample => {
                let deadline = start + elapsed_ns(k, rate);
                let now = monotonic_ns();
                if deadline > now.saturating_add(timeout_ns) {
                    sleep_until_ns(now + timeout_ns);
                    return Ok(None);
                }
                sleep_until_ns(deadline);
                // Woken after later samples were ready: the chip kept only the latest.
                let now = monotonic_ns();
                let latest = ((now - start) as u128 * rate as u128 / 1_000_000_000) as u64;
                let k2 = latest.max(k);
                Ok(Some(self.announce(k2, k2 - k, start, rate)))
            }
        }
    }

    fn flush(&mut self) -> Result<u32, Self::Error> {
        Ok(self.clock.stale.swap(0, Ordering::Relaxed))
    }
}

impl SimDrdy {
    /// The deadline (`CLOCK_MONOTONIC` ns) of the next sample this waiter will announce, if
    /// the chip is running.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if !self.clock.running.load(Ordering::Acquire) {
            return None;
        }
        let start = self.clock.start_ns.load(Ordering::Relaxed);
        let rate = self.clock.rate.load(Ordering::Relaxed);
        Some(start + elapsed_ns(self.clock.ready.load(Ordering::Relaxed), rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantises_like_the_chip_and_clips_at_full_scale() {
        // 1 LSB at gain 24 is 2 × 4.5 / 24 / 2^24 V ≈ 0.02235 µV.
        assert_eq!(quantise(0.02235, 24), 1);
        assert_eq!(quantise(-0.02235, 24), -1);
        assert_eq!(quantise(187_500.0, 24), 8_388_607);
        assert_eq!(quantise(-187_500.0, 24), -8_388_608);
        assert_eq!(quantise(1e6, 24), 8_388_607);
        assert_eq!(quantise(1875.0, 1), 3495);
    }

    #[test]
    fn test_signal_follows_config2() {
        let slow = config2::RESERVED_SET | config2::INT_CAL;
        assert_eq!(test_signal_uv(slow, 0, 250), 1875.0);
        assert_eq!(test_signal_uv(slow, 200, 250), -1875.0, "0.8 s into a 1.024 s period");
        assert_eq!(test_signal_uv(slow | config2::CAL_AMP0 | config2::CAL_FREQ_DC, 200, 250), 3750.0);
        assert_eq!(test_signal_uv(config2::RESERVED_SET, 0, 250), 0.0, "external source: undriven");
    }
}
