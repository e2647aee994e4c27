//! The ADS1299's register map, bit fields and SPI commands, named as in the datasheet
//! (TI SBAS499, "9.5 Programming" and "9.6 Register Maps"). Reset values are the datasheet's
//! defaults; every field's default is marked `(default)`.

/// SPI opcodes (datasheet table "Command Definitions").
pub mod cmd {
    /// Wake up from standby mode.
    pub const WAKEUP: u8 = 0x02;
    /// Enter standby mode.
    pub const STANDBY: u8 = 0x04;
    /// Reset the device: registers to their defaults, RDATAC mode.
    pub const RESET: u8 = 0x06;
    /// Start or restart (synchronise) conversions.
    pub const START: u8 = 0x08;
    /// Stop conversions.
    pub const STOP: u8 = 0x0A;
    /// Read data continuous mode: a frame is clocked out after every DRDY (the default mode
    /// after power-up and RESET). Register commands are ignored in this mode.
    pub const RDATAC: u8 = 0x10;
    /// Stop read data continuous mode, so registers can be read and written.
    pub const SDATAC: u8 = 0x11;
    /// Read one frame by command (in SDATAC mode).
    pub const RDATA: u8 = 0x12;
    /// Read registers: `RREG | address`, then `count - 1`, then `count` bytes are clocked out.
    pub const RREG: u8 = 0x20;
    /// Write registers: `WREG | address`, then `count - 1`, then `count` bytes.
    pub const WREG: u8 = 0x40;
    /// The address bits of the first byte of `RREG`/`WREG`.
    pub const ADDRESS_MASK: u8 = 0x1F;
}

/// Register addresses.
pub mod reg {
    /// Device identification (read-only).
    pub const ID: u8 = 0x00;
    /// Daisy-chain/multiple readback, clock output, data rate.
    pub const CONFIG1: u8 = 0x01;
    /// Test signal source, amplitude and frequency.
    pub const CONFIG2: u8 = 0x02;
    /// Reference buffer and bias (right-leg drive) amplifier.
    pub const CONFIG3: u8 = 0x03;
    /// Lead-off comparator threshold, current and frequency.
    pub const LOFF: u8 = 0x04;
    /// Channel 1 settings; channel `n` (1-based) is at `CH1SET + n - 1`.
    pub const CH1SET: u8 = 0x05;
    pub const CH2SET: u8 = 0x06;
    pub const CH3SET: u8 = 0x07;
    pub const CH4SET: u8 = 0x08;
    pub const CH5SET: u8 = 0x09;
    pub const CH6SET: u8 = 0x0A;
    pub const CH7SET: u8 = 0x0B;
    pub const CH8SET: u8 = 0x0C;
    /// Positive inputs routed to the bias derivation, one bit per channel.
    pub const BIAS_SENSP: u8 = 0x0D;
    /// Negative inputs routed to the bias derivation, one bit per channel.
    pub const BIAS_SENSN: u8 = 0x0E;
    /// Lead-off detection on the positive inputs, one bit per channel.
    pub const LOFF_SENSP: u8 = 0x0F;
    /// Lead-off detection on the negative inputs, one bit per channel.
    pub const LOFF_SENSN: u8 = 0x10;
    /// Lead-off current direction flip, one bit per channel.
    pub const LOFF_FLIP: u8 = 0x11;
    /// Lead-off status of the positive inputs (read-only).
    pub const LOFF_STATP: u8 = 0x12;
    /// Lead-off status of the negative inputs (read-only).
    pub const LOFF_STATN: u8 = 0x13;
    /// General-purpose I/O: direction (low nibble) and data (high nibble).
    pub const GPIO: u8 = 0x14;
    /// SRB1 switch.
    pub const MISC1: u8 = 0x15;
    /// Reserved, write 0.
    pub const MISC2: u8 = 0x16;
    /// Single-shot mode and the lead-off comparators' power.
    pub const CONFIG4: u8 = 0x17;
    /// Number of registers.
    pub const COUNT: usize = 0x18;
}

/// Register values after power-up or RESET (the datasheet's "Reset" column). `ID` is the
/// value of an 8-channel ADS1299, revision 1; its revision bits vary between chips.
pub const RESET_VALUES: [u8; reg::COUNT] = [
    0x3E, // ID
    0x96, // CONFIG1: daisy-chain mode, no clock out, 250 SPS
    0xC0, // CONFIG2: external test source, 1x amplitude, fCLK/2^21
    0x60, // CONFIG3: reference buffer off, bias off
    0x00, // LOFF
    0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, // CHnSET: on, gain 24, inputs shorted
    0x00, 0x00, // BIAS_SENSP, BIAS_SENSN
    0x00, 0x00, 0x00, // LOFF_SENSP, LOFF_SENSN, LOFF_FLIP
    0x00, 0x00, // LOFF_STATP, LOFF_STATN
    0x0F, // GPIO: all inputs
    0x00, 0x00, 0x00, // MISC1, MISC2, CONFIG4
];

/// Bits of a register that the host cannot set (status, pin levels): read-back verification
/// ignores them. Registers not listed here are fully writable.
pub const fn read_only_mask(addr: u8) -> u8 {
    match addr {
        reg::ID | reg::LOFF_STATP | reg::LOFF_STATN => 0xFF,
        reg::CONFIG3 => config3::BIAS_STAT,
        // GPIOD reflects the pins' levels when they are inputs.
        reg::GPIO => gpio::GPIOD_MASK,
        _ => 0x00,
    }
}

/// Reserved bits the chip fixes, as `(mask, value)`: whatever is written, these bits read back
/// as `value` (the register map, section 9.6, marks them "must be written as …"; the chip
/// ignores what is written there). `CONFIG1` bit 7 = 1, bits [4:3] = `0b10`; `CONFIG2` bits
/// [7:5] = `0b110`, bit 3 = 0; `CONFIG3` bits [6:5] = `0b11`; `LOFF` bit 4 = 0; `MISC1` every
/// bit but `SRB1`; `MISC2` every bit; `CONFIG4` bits [7:4], 2 and 0.
pub const fn fixed_bits(addr: u8) -> (u8, u8) {
    match addr {
        reg::CONFIG1 => (0x98, 0x90),
        reg::CONFIG2 => (0xE8, 0xC0),
        reg::CONFIG3 => (0x60, 0x60),
        reg::LOFF => (0x10, 0x00),
        reg::MISC1 => (!misc1::SRB1, 0x00),
        reg::MISC2 => (0xFF, 0x00),
        reg::CONFIG4 => (!(config4::SINGLE_SHOT | config4::PD_LOFF_COMP), 0x00),
        _ => (0x00, 0x00),
    }
}

/// Bytes of one chip's RDATAC frame: the 24-bit status word and 24 bits per channel
/// (ADS1299-4: 15, ADS1299-6: 21, ADS1299: 27; "Data Output (DOUT)", section 9.4).
pub const fn frame_bytes(channels: usize) -> usize {
    3 + 3 * channels
}

/// The datasheet name of a register, for messages.
pub const fn name(addr: u8) -> &'static str {
    const NAMES: [&str; reg::COUNT] = [
        "ID",
        "CONFIG1",
        "CONFIG2",
        "CONFIG3",
        "LOFF",
        "CH1SET",
        "CH2SET",
        "CH3SET",
        "CH4SET",
        "CH5SET",
        "CH6SET",
        "CH7SET",
        "CH8SET",
        "BIAS_SENSP",
        "BIAS_SENSN",
        "LOFF_SENSP",
        "LOFF_SENSN",
        "LOFF_FLIP",
        "LOFF_STATP",
        "LOFF_STATN",
        "GPIO",
        "MISC1",
        "MISC2",
        "CONFIG4",
    ];
    if (addr as usize) < reg::COUNT {
        NAMES[addr as usize]
    } else {
        "(no such register)"
    }
}

/// `ID` register fields.
pub mod id {
    /// Revision, bits [7:5].
    pub const REV_ID_MASK: u8 = 0xE0;
    /// Always reads 1.
    pub const BIT4: u8 = 0x10;
    /// Device family, bits [3:2]: `0b11` is the ADS1299 family.
    pub const DEV_ID_MASK: u8 = 0x0C;
    pub const DEV_ID_ADS1299: u8 = 0x0C;
    /// Number of channels, bits [1:0].
    pub const NU_CH_MASK: u8 = 0x03;
    /// ADS1299-4.
    pub const NU_CH_4: u8 = 0x00;
    /// ADS1299-6.
    pub const NU_CH_6: u8 = 0x01;
    /// ADS1299 (8 channels).
    pub const NU_CH_8: u8 = 0x02;
}

/// `CONFIG1` fields.
pub mod config1 {
    /// Bit 7 must be written 1.
    pub const RESERVED_SET: u8 = 0x80;
    /// `DAISY_EN'`: 0 = daisy-chain mode (default), 1 = multiple readback mode.
    pub const MULTI_READBACK: u8 = 0x40;
    /// `CLK_EN`: 1 = the oscillator clock is output on CLK (default 0).
    pub const CLK_EN: u8 = 0x20;
    /// Bits [4:3] must be written `0b10`.
    pub const RESERVED_10: u8 = 0x10;
    /// Output data rate, bits [2:0]: fMOD / 2^(DR + 5) with fMOD = fCLK / 4 (see
    /// [`super::DataRate`]).
    pub const DR_MASK: u8 = 0x07;
}

/// `CONFIG2` fields.
pub mod config2 {
    /// Bits [7:5] must be written `0b110`.
    pub const RESERVED_SET: u8 = 0xC0;
    /// `INT_CAL`: test signal generated internally (default 0: driven externally).
    pub const INT_CAL: u8 = 0x10;
    /// `CAL_AMP0`: 0 = 1 × (VREFP − VREFN) / 2400 (default), 1 = 2 × that.
    pub const CAL_AMP0: u8 = 0x04;
    /// `CAL_FREQ`, bits [1:0]: 00 = fCLK / 2^21 (default), 01 = fCLK / 2^20, 11 = DC.
    pub const CAL_FREQ_MASK: u8 = 0x03;
    pub const CAL_FREQ_SLOW: u8 = 0x00;
    pub const CAL_FREQ_FAST: u8 = 0x01;
    pub const CAL_FREQ_DC: u8 = 0x03;
}

/// `CONFIG3` fields.
pub mod config3 {
    /// `PD_REFBUF'`: 1 = internal reference buffer on (default 0: off).
    pub const PD_REFBUF: u8 = 0x80;
    /// Bits [6:5] must be written `0b11`.
    pub const RESERVED_SET: u8 = 0x60;
    /// `BIAS_MEAS`: BIASIN routed to channels whose mux is `BIAS_MEAS` (default 0).
    pub const BIAS_MEAS: u8 = 0x10;
    /// `BIASREF_INT`: bias reference generated internally, (AVDD + AVSS) / 2 (default 0).
    pub const BIASREF_INT: u8 = 0x08;
    /// `PD_BIAS'`: 1 = bias buffer on (default 0: off).
    pub const PD_BIAS: u8 = 0x04;
    /// `BIAS_LOFF_SENS`: bias lead-off sensing on (default 0).
    pub const BIAS_LOFF_SENS: u8 = 0x02;
    /// `BIAS_STAT` (read-only): 1 = the bias is not connected.
    pub const BIAS_STAT: u8 = 0x01;
}

/// `LOFF` fields.
pub mod loff {
    /// `COMP_TH`, bits [7:5]: comparator threshold (positive side / negative side).
    pub const COMP_TH_MASK: u8 = 0xE0;
    pub const COMP_TH_SHIFT: u8 = 5;
    /// `ILEAD_OFF`, bits [3:2]: 00 = 6 nA (default), 01 = 24 nA, 10 = 6 µA, 11 = 24 µA.
    pub const ILEAD_OFF_MASK: u8 = 0x0C;
    pub const ILEAD_OFF_SHIFT: u8 = 2;
    /// `FLEAD_OFF`, bits [1:0]: 00 = DC (default), 01 = AC 7.8 Hz, 10 = AC 31.2 Hz,
    /// 11 = AC fDR / 4.
    pub const FLEAD_OFF_MASK: u8 = 0x03;
    pub const FLEAD_OFF_DC: u8 = 0x00;
    pub const FLEAD_OFF_AC_7_8: u8 = 0x01;
    pub const FLEAD_OFF_AC_31_2: u8 = 0x02;
    pub const FLEAD_OFF_AC_QUARTER: u8 = 0x03;
    /// The lead-off currents of `ILEAD_OFF` 0…3, nA (LOFF register description).
    pub const CURRENTS_NA: [f64; 4] = [6.0, 24.0, 6000.0, 24000.0];
    /// The AC lead-off frequencies: fCLK / 2^18 = 7.8125 Hz and fCLK / 2^16 = 31.25 Hz (the
    /// datasheet's "7.8 Hz" and "31.2 Hz").
    pub const AC_7_8_HZ: f64 = super::F_CLK_HZ / (1u64 << 18) as f64;
    pub const AC_31_2_HZ: f64 = super::F_CLK_HZ / (1u64 << 16) as f64;
}

/// `CHnSET` fields.
pub mod chset {
    /// `PDn`: 1 = channel powered down (default 0). Set the mux to shorted as well.
    pub const PD: u8 = 0x80;
    /// `GAINn`, bits [6:4] (default `0b110`, 24).
    pub const GAIN_MASK: u8 = 0x70;
    pub const GAIN_SHIFT: u8 = 4;
    /// `SRB2`: the channel's negative input connected to SRB2 (default 0).
    pub const SRB2: u8 = 0x08;
    /// `MUXn`, bits [2:0] (default `0b001`, shorted). See [`super::Mux`].
    pub const MUX_MASK: u8 = 0x07;
}

/// `GPIO` fields.
pub mod gpio {
    /// `GPIOD[4:1]`: pin levels, bits [7:4].
    pub const GPIOD_MASK: u8 = 0xF0;
    /// `GPIOC[4:1]`: 1 = input (default all inputs), bits [3:0].
    pub const GPIOC_MASK: u8 = 0x0F;
}

/// `MISC1` fields.
pub mod misc1 {
    /// `SRB1`: SRB1 connected to every channel's negative input (default 0).
    pub const SRB1: u8 = 0x20;
}

/// `CONFIG4` fields.
pub mod config4 {
    /// `SINGLE_SHOT`: one conversion per START (default 0: continuous).
    pub const SINGLE_SHOT: u8 = 0x08;
    /// `PD_LOFF_COMP'`: 1 = lead-off comparators on (default 0: off).
    pub const PD_LOFF_COMP: u8 = 0x02;
}

/// Output data rate (`CONFIG1.DR`), with the 2.048 MHz internal clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataRate {
    Sps16000 = 0,
    Sps8000 = 1,
    Sps4000 = 2,
    Sps2000 = 3,
    Sps1000 = 4,
    Sps500 = 5,
    /// (default)
    Sps250 = 6,
}

impl DataRate {
    pub const ALL: [DataRate; 7] = [
        DataRate::Sps250,
        DataRate::Sps500,
        DataRate::Sps1000,
        DataRate::Sps2000,
        DataRate::Sps4000,
        DataRate::Sps8000,
        DataRate::Sps16000,
    ];

    /// Samples per second.
    pub const fn hz(self) -> u32 {
        16_000 >> (self as u32)
    }

    /// The rate of `hz` samples per second, if the chip has it.
    pub fn from_hz(hz: u32) -> Option<DataRate> {
        Self::ALL.into_iter().find(|r| r.hz() == hz)
    }

    /// From `CONFIG1.DR`; `0b111` is "do not use" and gives `None`.
    pub const fn from_bits(bits: u8) -> Option<DataRate> {
        Some(match bits & config1::DR_MASK {
            0 => DataRate::Sps16000,
            1 => DataRate::Sps8000,
            2 => DataRate::Sps4000,
            3 => DataRate::Sps2000,
            4 => DataRate::Sps1000,
            5 => DataRate::Sps500,
            6 => DataRate::Sps250,
            _ => return None,
        })
    }
}

/// PGA gain (`CHnSET.GAIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gain {
    X1 = 0,
    X2 = 1,
    X4 = 2,
    X6 = 3,
    X8 = 4,
    X12 = 5,
    /// (default)
    X24 = 6,
}

impl Gain {
    pub const ALL: [Gain; 7] = [Gain::X1, Gain::X2, Gain::X4, Gain::X6, Gain::X8, Gain::X12, Gain::X24];

    pub const fn factor(self) -> u32 {
        match self {
            Gain::X1 => 1,
            Gain::X2 => 2,
            Gain::X4 => 4,
            Gain::X6 => 6,
            Gain::X8 => 8,
            Gain::X12 => 12,
            Gain::X24 => 24,
        }
    }

    pub fn from_factor(g: u32) -> Option<Gain> {
        Self::ALL.into_iter().find(|x| x.factor() == g)
    }

    /// From `CHnSET.GAIN`; `0b111` is reserved and gives `None`.
    pub const fn from_bits(bits: u8) -> Option<Gain> {
        Some(match (bits & chset::GAIN_MASK) >> chset::GAIN_SHIFT {
            0 => Gain::X1,
            1 => Gain::X2,
            2 => Gain::X4,
            3 => Gain::X6,
            4 => Gain::X8,
            5 => Gain::X12,
            6 => Gain::X24,
            _ => return None,
        })
    }
}

/// Channel input (`CHnSET.MUX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mux {
    /// The electrode inputs INnP/INnN.
    Normal = 0,
    /// Inputs shorted together (default): offset and noise measurement.
    Shorted = 1,
    /// The bias measurement (with `CONFIG3.BIAS_MEAS`).
    BiasMeas = 2,
    /// Supply measurement: (AVDD − AVSS) / 2.
    Mvdd = 3,
    /// Temperature sensor.
    Temperature = 4,
    /// The test signal (internal with `CONFIG2.INT_CAL`).
    TestSignal = 5,
    /// Bias drive on the positive input.
    BiasDrp = 6,
    /// Bias drive on the negative input.
    BiasDrn = 7,
}

impl Mux {
    pub const fn from_bits(bits: u8) -> Mux {
        match bits & chset::MUX_MASK {
            0 => Mux::Normal,
            1 => Mux::Shorted,
            2 => Mux::BiasMeas,
            3 => Mux::Mvdd,
            4 => Mux::Temperature,
            5 => Mux::TestSignal,
            6 => Mux::BiasDrp,
            _ => Mux::BiasDrn,
        }
    }
}

/// The chip's internal reference, volts (VREFP − VREFN with the internal buffer).
pub const VREF: f64 = 4.5;
/// The internal oscillator, Hz.
pub const F_CLK_HZ: f64 = 2.048e6;
/// Bytes of one chip's RDATAC frame: a 24-bit status word and 8 channels of 24 bits.
pub const FRAME_BYTES: usize = 27;
/// Channels per chip.
pub const CHANNELS: usize = 8;
/// The most chips this driver chains (32 channels).
pub const MAX_CHIPS: usize = 4;
/// The status word's top nibble.
pub const STATUS_MARKER: u8 = 0xC;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_gains_round_trip_their_bits() {
        for r in DataRate::ALL {
            assert_eq!(DataRate::from_bits(r as u8), Some(r));
            assert_eq!(DataRate::from_hz(r.hz()), Some(r));
        }
        assert_eq!(DataRate::Sps250.hz(), 250);
        assert_eq!(DataRate::Sps16000.hz(), 16000);
        for g in Gain::ALL {
            assert_eq!(Gain::from_bits((g as u8) << chset::GAIN_SHIFT), Some(g));
        }
        assert_eq!(DataRate::from_bits(7), None);
        assert_eq!(Gain::from_bits(0x70), None);
    }

    #[test]
    fn reset_values_decode_to_the_datasheet_defaults() {
        let c1 = RESET_VALUES[reg::CONFIG1 as usize];
        assert_eq!(DataRate::from_bits(c1), Some(DataRate::Sps250));
        assert_eq!(c1 & config1::MULTI_READBACK, 0, "daisy-chain mode");
        let ch = RESET_VALUES[reg::CH1SET as usize];
        assert_eq!(Gain::from_bits(ch), Some(Gain::X24));
        assert_eq!(Mux::from_bits(ch), Mux::Shorted);
        assert_eq!(RESET_VALUES[reg::ID as usize] & id::DEV_ID_MASK, id::DEV_ID_ADS1299);
        assert_eq!(name(reg::MISC1), "MISC1");
    }
}
