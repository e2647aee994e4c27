//! A simulated ADS1299 (or daisy chain of them) that speaks the chip's SPI protocol, and its
//! DRDY line.
//!
//! [`SimChain`] is an [`SpiDevice`]: a register file with the datasheet's reset values, the
//! command state machine (SDATAC/RDATAC modes, multi-byte `RREG`/`WREG`, `START`/`STOP`,
//! `RDATA`), and RDATAC output frames. Its analog front end digitises what a [`SignalModel`]
//! puts on the electrodes the way the chip does: the channel's input mux, its PGA gain, the
//! 4.5 V reference, 24-bit quantisation and clipping at full scale, the internal test signal
//! (`CONFIG2`), lead-off status bits. [`SimDrdy`] is its DRDY: sample `n` is ready at
//! `START + n / rate`, waited for by sleeping to that absolute deadline, or at once (unpaced).
//!
//! Modelled simplifications: in a daisy chain every chip takes every write (shared DIN and chip
//! select) and register reads return the first chip's registers; without the internal
//! reference buffer (`CONFIG3.PD_REFBUF' = 0`) every channel reads 0.
use crate::drdy::{elapsed_ns, Drdy, DrdyEvent};
use crate::frame::{encode24, Status};
use crate::gpio::{pin_levels, TriggerSignal};
use crate::registers::{
    chset, cmd, config2, config3, config4, read_only_mask, reg, DataRate, Gain, Mux, CHANNELS, FRAME_BYTES,
    F_CLK_HZ, MAX_CHIPS, RESET_VALUES, VREF,
};
use crate::signal::SignalModel;
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

/// A delay that does not wait: the simulated chip needs no settling time.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

/// The chip's conversion clock, shared by the SPI side and the DRDY side.
#[derive(Debug, Default)]
struct Clock {
    running: AtomicBool,
    /// `CLOCK_MONOTONIC` of `START`.
    start_ns: AtomicU64,
    rate: AtomicU32,
    /// Samples announced by DRDY so far: sample `ready - 1` is the latest.
    ready: AtomicU64,
}

/// One simulated chip's registers and injected faults.
#[derive(Debug, Clone)]
struct Chip {
    regs: [u8; reg::COUNT],
    /// The `ID` this chip reports (kept through `RESET`).
    id: u8,
    /// Electrodes that are off: (positive inputs, negative inputs), bit `k` = channel `k + 1`.
    off: (u8, u8),
    /// Replaces the first status byte (to simulate a misaligned bus).
    status_byte: Option<u8>,
}

impl Chip {
    fn new() -> Chip {
        Chip { regs: RESET_VALUES, id: RESET_VALUES[0], off: (0, 0), status_byte: None }
    }

    fn reset(&mut self) {
        self.regs = RESET_VALUES;
        self.regs[reg::ID as usize] = self.id;
    }

    fn write(&mut self, addr: u8, v: u8) {
        if let Some(r) = self.regs.get_mut(addr as usize) {
            let ro = read_only_mask(addr);
            *r = (*r & ro) | (v & !ro);
        }
    }
}

/// Where the command parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Opcode,
    RregCount(u8),
    WregCount(u8),
    WregData { addr: u8, left: u8 },
}

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
}

/// A chain of 1–4 simulated ADS1299s on one chip select: an [`SpiDevice`].
pub struct SimChain {
    chips: Vec<Chip>,
    clock: Arc<Clock>,
    rdatac: bool,
    standby: bool,
    parse: Parse,
    /// The output shift register: bytes clocked out on MISO from `pos`.
    out: [u8; MAX_CHIPS * FRAME_BYTES],
    out_len: usize,
    pos: usize,
    /// Sample index + 1 of the frame last loaded (0: none yet).
    loaded: u64,
    model: SignalModel,
    uv: [f64; MAX_CHIPS * CHANNELS],
    /// A register whose bits do not take writes: (address, mask).
    stuck: Option<(u8, u8)>,
    /// Per channel of the chain, a DC electrode offset added to the model's signal, µV.
    offsets_uv: [f64; MAX_CHIPS * CHANNELS],
    /// A TTL pulse train driven on a pin of the first chip.
    trigger: Option<TriggerSignal>,
}

/// One side of the pair that [`SimChain::drdy`] makes: the DRDY line of the chain.
pub struct SimDrdy {
    clock: Arc<Clock>,
    pacing: Pacing,
    /// For batch pacing: samples below this index are released.
    released: u64,
}

impl SimChain {
    /// `chips` chained chips (clamped to 1–4) whose electrodes carry `model`'s signal
    /// (channel `c` of the model is channel `c % 8` of chip `c / 8`).
    pub fn new(chips: usize, model: SignalModel) -> SimChain {
        SimChain {
            chips: vec![Chip::new(); chips.clamp(1, MAX_CHIPS)],
            clock: Arc::new(Clock::default()),
            rdatac: true,
            standby: false,
            parse: Parse::Opcode,
            out: [0; MAX_CHIPS * FRAME_BYTES],
            out_len: 0,
            pos: 0,
            loaded: 0,
            model,
            uv: [0.0; MAX_CHIPS * CHANNELS],
            stuck: None,
            offsets_uv: [0.0; MAX_CHIPS * CHANNELS],
            trigger: None,
        }
    }

    /// Drives `signal` on a GPIO pin of the first chip (`None`: every pin undriven, low). The
    /// pin reports it in the status word (and `GPIOD`) only while it is an input.
    pub fn set_trigger_signal(&mut self, signal: Option<TriggerSignal>) {
        self.trigger = signal;
    }

    /// The chain's DRDY line.
    pub fn drdy(&self, pacing: Pacing) -> SimDrdy {
        SimDrdy { clock: self.clock.clone(), pacing, released: 0 }
    }

    /// A chip's registers as they are now.
    pub fn registers(&self, chip: usize) -> [u8; reg::COUNT] {
        self.chips[chip].regs
    }

    /// True while converting (`START` sent, no `STOP` since).
    pub fn running(&self) -> bool {
        self.clock.running.load(Ordering::Relaxed)
    }

    /// True in read-data-continuous mode.
    pub fn rdatac(&self) -> bool {
        self.rdatac
    }

    /// Makes a chip report `id` in its `ID` register (e.g. a chip of another family).
    pub fn set_id(&mut self, chip: usize, id: u8) {
        self.chips[chip].id = id;
        self.chips[chip].regs[reg::ID as usize] = id;
    }

    /// Detaches electrodes: bit `k` of `p`/`n` = channel `k + 1`'s positive/negative input.
    /// Shows in the status word where lead-off detection is on for that input.
    pub fn set_leads_off(&mut self, chip: usize, p: u8, n: u8) {
        self.chips[chip].off = (p, n);
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

    fn command(&mut self, op: u8) {
        match op {
            cmd::WAKEUP => self.standby = false,
            cmd::STANDBY => self.standby = true,
            cmd::RESET => {
                self.chips.iter_mut().for_each(Chip::reset);
                self.rdatac = true;
                self.clock.running.store(false, Ordering::Relaxed);
            }
            cmd::START => {
                let bits = self.chips[0].regs[reg::CONFIG1 as usize];
                let rate = DataRate::from_bits(bits).map(DataRate::hz).unwrap_or(250);
                self.clock.rate.store(rate, Ordering::Relaxed);
                self.clock.ready.store(0, Ordering::Relaxed);
                self.clock.start_ns.store(monotonic_ns(), Ordering::Relaxed);
                self.clock.running.store(true, Ordering::Release);
                self.loaded = 0;
            }
            cmd::STOP => self.clock.running.store(false, Ordering::Relaxed),
            cmd::RDATAC => self.rdatac = true,
            cmd::SDATAC => self.rdatac = false,
            cmd::RDATA if !self.rdatac => self.load_frame(),
            _ if self.rdatac => {} // register commands are ignored in RDATAC mode
            _ if op & 0xE0 == cmd::RREG => self.parse = Parse::RregCount(op & cmd::ADDRESS_MASK),
            _ if op & 0xE0 == cmd::WREG => self.parse = Parse::WregCount(op & cmd::ADDRESS_MASK),
            _ => {}
        }
    }

    /// One byte each way: returns MISO for `mosi`.
    fn exchange(&mut self, mosi: u8) -> u8 {
        let miso = if self.pos < self.out_len {
            self.pos += 1;
            self.out[self.pos - 1]
        } else {
            0
        };
        match self.parse {
            Parse::Opcode => self.command(mosi),
            Parse::RregCount(addr) => {
                let regs = &self.chips[0].regs;
                let n = (mosi as usize + 1).min(reg::COUNT.saturating_sub(addr as usize));
                self.out[..n].copy_from_slice(&regs[addr as usize..addr as usize + n]);
                self.out_len = n;
                self.pos = 0;
                self.parse = Parse::Opcode;
            }
            Parse::WregCount(addr) => self.parse = Parse::WregData { addr, left: mosi + 1 },
            Parse::WregData { addr, left } => {
                let stuck = self.stuck.filter(|s| s.0 == addr).map(|s| s.1).unwrap_or(0);
                for c in &mut self.chips {
                    let old = c.regs.get(addr as usize).copied().unwrap_or(0);
                    c.write(addr, (mosi & !stuck) | (old & stuck));
                }
                self.parse =
                    if left > 1 { Parse::WregData { addr: addr + 1, left: left - 1 } } else { Parse::Opcode };
            }
        }
        miso
    }

    /// Chip select falls: in RDATAC mode a frame announced by DRDY is in the output register.
    fn begin(&mut self) {
        if self.rdatac && self.running() {
            self.load_frame();
        }
    }

    /// Loads the latest announced sample's frame into the output register.
    fn load_frame(&mut self) {
        let ready = self.clock.ready.load(Ordering::Acquire);
        if ready == 0 {
            self.out_len = 0;
            return;
        }
        if ready != self.loaded {
            self.loaded = ready;
            self.convert(ready - 1);
        }
        self.out_len = self.chips.len() * FRAME_BYTES;
        self.pos = 0;
    }

    /// Digitises sample `n` of every chip into the output register, chip 0 first.
    fn convert(&mut self, n: u64) {
        let rate = self.clock.rate.load(Ordering::Relaxed);
        let total = self.chips.len() * CHANNELS;
        self.model.sample(n, rate, &mut self.uv[..total]);
        for (c, chip) in self.chips.iter_mut().enumerate() {
            let r = &chip.regs;
            let comparators = r[reg::CONFIG4 as usize] & config4::PD_LOFF_COMP != 0;
            let (statp, statn) = if comparators {
                (chip.off.0 & r[reg::LOFF_SENSP as usize], chip.off.1 & r[reg::LOFF_SENSN as usize])
            } else {
                (0, 0)
            };
            chip.regs[reg::LOFF_STATP as usize] = statp;
            chip.regs[reg::LOFF_STATN as usize] = statn;
            let driven = match (c, self.trigger) {
                (0, Some(t)) => t.driven(n, rate),
                _ => 0,
            };
            let gpio = pin_levels(chip.regs[reg::GPIO as usize], driven);
            chip.regs[reg::GPIO as usize] = (chip.regs[reg::GPIO as usize] & 0x0F) | gpio << 4;
            let r = &chip.regs;
            let f = &mut self.out[c * FRAME_BYTES..(c + 1) * FRAME_BYTES];
            f[..3].copy_from_slice(&Status { loff_statp: statp, loff_statn: statn, gpio }.to_bytes());
            if let Some(b) = chip.status_byte {
                f[0] = b;
            }
            let reference = r[reg::CONFIG3 as usize] & config3::PD_REFBUF != 0;
            for k in 0..CHANNELS {
                let set = r[reg::CH1SET as usize + k];
                let uv = if set & chset::PD != 0 || !reference || self.standby {
                    0.0
                } else {
                    match Mux::from_bits(set) {
                        Mux::Normal => self.uv[c * CHANNELS + k] + self.offsets_uv[c * CHANNELS + k],
                        Mux::TestSignal => test_signal_uv(r[reg::CONFIG2 as usize], n, rate),
                        // (AVDD − AVSS) / 2 of a 5 V analog supply.
                        Mux::Mvdd => 2.5e6,
                        // 145.3 mV at 25 °C.
                        Mux::Temperature => 145_300.0,
                        Mux::Shorted | Mux::BiasMeas | Mux::BiasDrp | Mux::BiasDrn => 0.0,
                    }
                };
                let gain = Gain::from_bits(set).map(Gain::factor).unwrap_or(1);
                f[3 + 3 * k..6 + 3 * k].copy_from_slice(&encode24(quantise(uv, gain)));
            }
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
    type Error = core::convert::Infallible;
}

impl SpiDevice for SimChain {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        self.begin();
        for op in operations {
            match op {
                Operation::Read(buf) if self.parse == Parse::Opcode => {
                    // MOSI is all zeros, which are no commands: clock out the output register
                    // in one copy (the per-byte path below gives the same bytes, slower).
                    let n = buf.len().min(self.out_len - self.pos);
                    buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
                    buf[n..].fill(0);
                    self.pos += n;
                }
                Operation::Read(buf) => buf.iter_mut().for_each(|b| *b = self.exchange(0)),
                Operation::Write(buf) => buf.iter().for_each(|&b| {
                    self.exchange(b);
                }),
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        let miso = self.exchange(write.get(i).copied().unwrap_or(0));
                        if let Some(r) = read.get_mut(i) {
                            *r = miso;
                        }
                    }
                }
                Operation::TransferInPlace(buf) => buf.iter_mut().for_each(|b| *b = self.exchange(*b)),
                Operation::DelayNs(_) => {}
            }
        }
        // Chip select rises: a command cut short is abandoned.
        self.parse = Parse::Opcode;
        Ok(())
    }
}

impl SimDrdy {
    /// Announces sample `k`: the SPI side will clock out its frame.
    fn announce(&mut self, k: u64, missed: u64, start: u64, rate: u32) -> DrdyEvent {
        self.clock.ready.store(k + 1, Ordering::Release);
        DrdyEvent { timestamp_ns: start + elapsed_ns(k, rate), missed: missed.min(u32::MAX as u64) as u32 }
    }
}

impl Drdy for SimDrdy {
    type Error = core::convert::Infallible;

    fn wait(&mut self, timeout_ns: u64) -> Result<Option<DrdyEvent>, Self::Error> {
        if !self.clock.running.load(Ordering::Acquire) {
            // A stopped chip gives no DRDY.
            sleep_until_ns(monotonic_ns().saturating_add(timeout_ns));
            return Ok(None);
        }
        let start = self.clock.start_ns.load(Ordering::Relaxed);
        let rate = self.clock.rate.load(Ordering::Relaxed);
        let k = self.clock.ready.load(Ordering::Relaxed);
        match self.pacing {
            Pacing::Unpaced => Ok(Some(self.announce(k, 0, start, rate))),
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
