//! A whole-chip configuration and the register values it stands for.
//!
//! In a daisy chain every chip listens on the same DIN and chip select, so every chip gets the
//! same registers: channel `k` of each chip shares `channels[k]`.
use crate::registers::{
    chset, config1, config2, config3, config4, gpio, loff, misc1, reg, DataRate, Gain, Mux, CHANNELS,
    RESET_VALUES,
};

/// Settings of one channel (`CHnSET` plus its bits in the bias and lead-off registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Powered down (`PDn`); a powered-down channel's mux should be `Shorted`.
    pub power_down: bool,
    pub gain: Gain,
    pub mux: Mux,
    /// Negative input to SRB2 (a common reference on SRB2).
    pub srb2: bool,
    /// Positive / negative input into the bias derivation (`BIAS_SENSP` / `BIAS_SENSN`).
    pub bias_p: bool,
    pub bias_n: bool,
    /// Lead-off detection on the positive / negative input (`LOFF_SENSP` / `LOFF_SENSN`).
    pub loff_p: bool,
    pub loff_n: bool,
    /// Flip the lead-off current's direction (`LOFF_FLIP`).
    pub loff_flip: bool,
}

impl Default for ChannelConfig {
    /// The datasheet default: powered, gain 24, inputs shorted, nothing routed.
    fn default() -> Self {
        ChannelConfig {
            power_down: false,
            gain: Gain::X24,
            mux: Mux::Shorted,
            srb2: false,
            bias_p: false,
            bias_n: false,
            loff_p: false,
            loff_n: false,
            loff_flip: false,
        }
    }
}

impl ChannelConfig {
    /// A channel measuring its electrode at `gain`.
    pub fn normal(gain: Gain) -> Self {
        ChannelConfig { mux: Mux::Normal, gain, ..Default::default() }
    }

    /// A powered-down channel (inputs shorted, as the datasheet recommends).
    pub fn off() -> Self {
        ChannelConfig { power_down: true, mux: Mux::Shorted, ..Default::default() }
    }

    /// The `CHnSET` value.
    pub fn chset(&self) -> u8 {
        let pd = if self.power_down { chset::PD } else { 0 };
        let srb2 = if self.srb2 { chset::SRB2 } else { 0 };
        pd | ((self.gain as u8) << chset::GAIN_SHIFT) | srb2 | self.mux as u8
    }
}

/// The internal test signal (`CONFIG2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestFrequency {
    /// fCLK / 2^21 ≈ 0.98 Hz (default).
    #[default]
    Slow,
    /// fCLK / 2^20 ≈ 1.95 Hz.
    Fast,
    /// DC.
    Dc,
}

/// Test signal settings (`CONFIG2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestSignal {
    /// Generated internally (`INT_CAL`); otherwise driven from outside (default).
    pub internal: bool,
    /// Twice the amplitude: ±3.75 mV instead of ±1.875 mV (`CAL_AMP0`).
    pub double_amplitude: bool,
    pub frequency: TestFrequency,
}

/// Lead-off excitation current (`LOFF.ILEAD_OFF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadOffCurrent {
    /// 6 nA (default).
    #[default]
    Na6 = 0,
    Na24 = 1,
    Ua6 = 2,
    Ua24 = 3,
}

/// Lead-off detection frequency (`LOFF.FLEAD_OFF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadOffFrequency {
    /// DC lead-off detection (default).
    #[default]
    Dc = 0,
    Ac7_8Hz = 1,
    Ac31_2Hz = 2,
    /// fDR / 4.
    AcQuarterRate = 3,
}

/// Lead-off comparator threshold (`LOFF.COMP_TH`), positive side (the negative side is the
/// complement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadOffThreshold {
    /// 95 % (default).
    #[default]
    Pct95 = 0,
    Pct92_5 = 1,
    Pct90 = 2,
    Pct87_5 = 3,
    Pct85 = 4,
    Pct80 = 5,
    Pct75 = 6,
    Pct70 = 7,
}

/// Lead-off detection (`LOFF`, `CONFIG4.PD_LOFF_COMP`); which inputs are watched is per
/// channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeadOff {
    /// Power the comparators on (`PD_LOFF_COMP'`), so `LOFF_STATP/N` report.
    pub comparators: bool,
    pub threshold: LeadOffThreshold,
    pub current: LeadOffCurrent,
    pub frequency: LeadOffFrequency,
}

/// Bias (right-leg drive) amplifier (`CONFIG3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BiasConfig {
    /// Bias buffer on (`PD_BIAS'`).
    pub enabled: bool,
    /// Bias reference generated internally (`BIASREF_INT`).
    pub internal_reference: bool,
    /// Route BIASIN to channels whose mux is `BiasMeas` (`BIAS_MEAS`).
    pub measure: bool,
    /// Bias lead-off sensing (`BIAS_LOFF_SENS`).
    pub lead_off_sense: bool,
}

/// Everything the driver writes at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub rate: DataRate,
    /// Chips in the daisy chain (1–4). More than one sets daisy-chain mode; a single chip is
    /// run in multiple-readback mode, as the datasheet recommends.
    pub chips: u8,
    /// Output the oscillator clock on CLK (`CLK_EN`), for chained chips that share it.
    pub clock_out: bool,
    /// Internal reference buffer on (`PD_REFBUF'`); needed unless VREFP is driven outside.
    pub reference_buffer: bool,
    pub test_signal: TestSignal,
    pub bias: BiasConfig,
    pub lead_off: LeadOff,
    /// SRB1 to every channel's negative input (`MISC1.SRB1`): a common reference.
    pub srb1: bool,
    pub channels: [ChannelConfig; CHANNELS],
}

impl Default for Config {
    /// One chip at 250 SPS, reference buffer on, every channel normal at gain 24.
    fn default() -> Self {
        Config {
            rate: DataRate::Sps250,
            chips: 1,
            clock_out: false,
            reference_buffer: true,
            test_signal: TestSignal::default(),
            bias: BiasConfig::default(),
            lead_off: LeadOff::default(),
            srb1: false,
            channels: [ChannelConfig::normal(Gain::X24); CHANNELS],
        }
    }
}

fn bit(on: bool, b: u8) -> u8 {
    if on {
        b
    } else {
        0
    }
}

impl Config {
    /// Refuses what the datasheet rules out for this chain.
    pub fn check(&self) -> Result<(), &'static str> {
        if !(1..=crate::registers::MAX_CHIPS as u8).contains(&self.chips) {
            return Err("a daisy chain has 1 to 4 chips");
        }
        if self.chips > 1 && self.bias.enabled {
            // Every chip of a chain on one DIN takes the same writes, so every chip's bias
            // amplifier would drive BIASOUT at once, against each other ("Multiple Device
            // Configuration": one device's bias amplifier drives, the others' are powered down).
            return Err(
                "the bias drive cannot be enabled on a daisy chain that shares DIN: every chip would \
                 drive BIASOUT (the datasheet powers down all but one chip's bias amplifier)",
            );
        }
        Ok(())
    }

    /// The value of every register for this configuration (`ID` and the status registers
    /// keep their reset values; the driver never writes them).
    pub fn registers(&self) -> [u8; reg::COUNT] {
        let mut r = RESET_VALUES;
        r[reg::CONFIG1 as usize] = config1::RESERVED_SET
            | config1::RESERVED_10
            | bit(self.chips <= 1, config1::MULTI_READBACK)
            | bit(self.clock_out, config1::CLK_EN)
            | self.rate as u8;
        let t = &self.test_signal;
        r[reg::CONFIG2 as usize] = config2::RESERVED_SET
            | bit(t.internal, config2::INT_CAL)
            | bit(t.double_amplitude, config2::CAL_AMP0)
            | match t.frequency {
                TestFrequency::Slow => config2::CAL_FREQ_SLOW,
                TestFrequency::Fast => config2::CAL_FREQ_FAST,
                TestFrequency::Dc => config2::CAL_FREQ_DC,
            };
        r[reg::CONFIG3 as usize] = config3::RESERVED_SET
            | bit(self.reference_buffer, config3::PD_REFBUF)
            | bit(self.bias.measure, config3::BIAS_MEAS)
            | bit(self.bias.internal_reference, config3::BIASREF_INT)
            | bit(self.bias.enabled, config3::PD_BIAS)
            | bit(self.bias.lead_off_sense, config3::BIAS_LOFF_SENS);
        let l = &self.lead_off;
        r[reg::LOFF as usize] = ((l.threshold as u8) << loff::COMP_TH_SHIFT)
            | ((l.current as u8) << loff::ILEAD_OFF_SHIFT)
            | l.frequency as u8;
        let mut masks = [0u8; 5];
        for (k, c) in self.channels.iter().enumerate() {
            r[(reg::CH1SET as usize) + k] = c.chset();
            for (m, on) in masks.iter_mut().zip([c.bias_p, c.bias_n, c.loff_p, c.loff_n, c.loff_flip]) {
                *m |= bit(on, 1 << k);
            }
        }
        r[reg::BIAS_SENSP as usize] = masks[0];
        r[reg::BIAS_SENSN as usize] = masks[1];
        r[reg::LOFF_SENSP as usize] = masks[2];
        r[reg::LOFF_SENSN as usize] = masks[3];
        r[reg::LOFF_FLIP as usize] = masks[4];
        r[reg::GPIO as usize] = gpio::GPIOC_MASK;
        r[reg::MISC1 as usize] = bit(self.srb1, misc1::SRB1);
        r[reg::MISC2 as usize] = 0;
        r[reg::CONFIG4 as usize] = bit(l.comparators, config4::PD_LOFF_COMP);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_channel_is_the_reset_value() {
        assert_eq!(ChannelConfig::default().chset(), RESET_VALUES[reg::CH1SET as usize]);
        assert_eq!(ChannelConfig::off().chset(), 0xE1);
        assert_eq!(ChannelConfig::normal(Gain::X1).chset(), 0x00);
    }

    #[test]
    fn registers_follow_the_settings() {
        let mut c = Config { rate: DataRate::Sps4000, chips: 2, ..Config::default() };
        c.channels[2].loff_p = true;
        c.channels[3].bias_n = true;
        c.channels[7].mux = Mux::TestSignal;
        c.test_signal = TestSignal { internal: true, double_amplitude: true, frequency: TestFrequency::Fast };
        c.lead_off.comparators = true;
        c.srb1 = true;
        let r = c.registers();
        assert_eq!(r[reg::CONFIG1 as usize], 0x92, "daisy-chain mode, 4 kSPS");
        assert_eq!(r[reg::CONFIG2 as usize], 0xD5);
        assert_eq!(r[reg::CONFIG3 as usize], 0xE0);
        assert_eq!(r[reg::LOFF_SENSP as usize], 0b0000_0100);
        assert_eq!(r[reg::BIAS_SENSN as usize], 0b0000_1000);
        assert_eq!(r[reg::CH8SET as usize], 0x65);
        assert_eq!(r[reg::MISC1 as usize], 0x20);
        assert_eq!(r[reg::CONFIG4 as usize], 0x02);
        let single = Config { chips: 1, ..c }.registers();
        assert_eq!(single[reg::CONFIG1 as usize], 0xD2, "one chip: multiple readback mode");
    }
}
