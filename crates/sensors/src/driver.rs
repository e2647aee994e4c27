//! The ADS1299 driver over an `embedded-hal` 1.0 [`SpiDevice`] (SPI mode 1, chip select held
//! for each command).
use crate::config::Config;
use crate::frame::{self, FrameStatus};
use crate::registers::{cmd, config1, id, read_only_mask, reg, CHANNELS, FRAME_BYTES, MAX_CHIPS};
use crate::timing::{byte_gap_ns, T_POR_NS, T_REFERENCE_SETTLE_NS, T_RESET_NS, T_SCCS_NS, T_SDATAC_NS};
use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{Operation, SpiDevice};

/// What can go wrong talking to an ADS1299; generic over the SPI bus's error.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: core::fmt::Debug> {
    /// The SPI bus failed.
    #[error("SPI bus error: {0:?}")]
    Bus(E),
    /// The `ID` register does not name an ADS1299 (a missing chip often reads 0x00 or 0xFF).
    #[error(
        "device ID {0:#04x} is not an ADS1299 (expected bit 4 set, DEV_ID bits [3:2] = 0b11, \
         NU_CH bits [1:0] = 0b00/0b01/0b10; a board that is unpowered or miswired reads 0x00 or 0xFF)"
    )]
    WrongId(u8),
    /// A frame's status word did not start with `1100`: lost alignment, or not in RDATAC mode.
    #[error("status word of chip {chip} starts with {byte:#04x}; its top nibble must be 0b1100")]
    BadStatus { chip: u8, byte: u8 },
    /// A register read back differently from what was written.
    #[error("register {name} ({addr:#04x}) was written {wrote:#04x} but reads back {read:#04x}")]
    ReadBack { name: &'static str, addr: u8, wrote: u8, read: u8 },
    /// The request cannot be sent (a register range past the map, a chain of 0 or > 4 chips,
    /// a buffer of the wrong size).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

/// What the `ID` register says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId {
    /// The raw register value.
    pub raw: u8,
    /// `REV_ID`, bits [7:5].
    pub revision: u8,
    /// 4 (ADS1299-4), 6 (ADS1299-6) or 8 (ADS1299).
    pub channels: u8,
}

impl DeviceId {
    /// Decodes the `ID` register; `None` if it is not an ADS1299 of any size.
    pub fn decode(raw: u8) -> Option<DeviceId> {
        if raw & id::BIT4 == 0 || raw & id::DEV_ID_MASK != id::DEV_ID_ADS1299 {
            return None;
        }
        let channels = match raw & id::NU_CH_MASK {
            id::NU_CH_4 => 4,
            id::NU_CH_6 => 6,
            id::NU_CH_8 => 8,
            _ => return None,
        };
        Some(DeviceId { raw, revision: (raw & id::REV_ID_MASK) >> 5, channels })
    }
}

/// The SPI clock assumed until [`Ads1299::with_sclk_hz`] says otherwise, Hz.
pub const DEFAULT_SCLK_HZ: u32 = 4_000_000;
/// The last register the block write covers: `CONFIG1` through `LOFF_FLIP` (`LOFF_STATP/N`
/// after it are read-only).
const BLOCK1: (u8, u8) = (reg::CONFIG1, reg::LOFF_FLIP);
/// `GPIO` through `CONFIG4`.
const BLOCK2: (u8, u8) = (reg::GPIO, reg::CONFIG4);

/// An ADS1299, or a daisy chain of 1–4 of them on one chip select.
///
/// After [`start_up`](Self::start_up), [`read_frame`](Self::read_frame) reads one sample of
/// every channel into a caller's buffer: no allocation per frame (the frame buffer is sized
/// when the driver is made).
pub struct Ads1299<SPI> {
    spi: SPI,
    chips: usize,
    /// Channels per chip, from the `ID` register (8 until it has been read).
    per_chip: usize,
    frame: Vec<u8>,
    /// Pause after each byte of a multi-byte command at this SCLK (tSDECODE), ns.
    gap_ns: u32,
}

impl<SPI: SpiDevice> Ads1299<SPI> {
    /// A driver for `chips` chained chips (1–4) on `spi`. Sends nothing yet.
    pub fn new(spi: SPI, chips: usize) -> Result<Self, Error<SPI::Error>> {
        if !(1..=MAX_CHIPS).contains(&chips) {
            return Err(Error::Invalid("a daisy chain has 1 to 4 chips"));
        }
        Ok(Ads1299 {
            spi,
            chips,
            per_chip: CHANNELS,
            frame: vec![0; chips * FRAME_BYTES],
            gap_ns: byte_gap_ns(DEFAULT_SCLK_HZ) as u32,
        })
    }

    /// Tells the driver the bus's SCLK (default 4 MHz), so it pauses between the bytes of
    /// multi-byte commands where the bytes alone are shorter than tSDECODE (above 4.096 MHz).
    pub fn with_sclk_hz(mut self, hz: u32) -> Self {
        self.gap_ns = byte_gap_ns(hz) as u32;
        self
    }

    /// Chips in the chain.
    pub fn chips(&self) -> usize {
        self.chips
    }

    /// Channels in one frame: chips × channels per chip.
    pub fn channels(&self) -> usize {
        self.chips * self.per_chip
    }

    /// Bytes of one frame.
    pub fn frame_len(&self) -> usize {
        self.chips * (3 + 3 * self.per_chip)
    }

    /// The bus, e.g. to reach a simulated chip.
    pub fn spi_mut(&mut self) -> &mut SPI {
        &mut self.spi
    }

    /// Gives the bus back.
    pub fn release(self) -> SPI {
        self.spi
    }

    /// Sends a one-byte command (`cmd::START`, `cmd::SDATAC`, ...), holding chip select for
    /// tSCCS after it, and for the command's own wait where it has one (`RESET`: 18 tCLK,
    /// `SDATAC`: 4 tCLK), so the next command may follow at once.
    pub fn command(&mut self, opcode: u8) -> Result<(), Error<SPI::Error>> {
        let wait = match opcode {
            cmd::RESET => T_RESET_NS,
            cmd::SDATAC => T_SDATAC_NS.max(T_SCCS_NS),
            _ => T_SCCS_NS,
        };
        self.spi
            .transaction(&mut [Operation::Write(&[opcode]), Operation::DelayNs(wait as u32)])
            .map_err(Error::Bus)
    }

    /// Sends `bytes` as one multi-byte command: each byte followed by the tSDECODE pause this
    /// SCLK needs (none at 4 MHz and below), then `read` clocked out, then tSCCS before chip
    /// select rises. Configuration only: it allocates its list of operations.
    fn multi_byte(&mut self, bytes: &[u8], read: Option<&mut [u8]>) -> Result<(), Error<SPI::Error>> {
        let gap = self.gap_ns;
        let mut ops: Vec<Operation<'_, u8>> = Vec::with_capacity(2 * bytes.len() + 2);
        if gap == 0 {
            ops.push(Operation::Write(bytes));
        } else {
            // The last argument of a write needs no pause before CS rises beyond tSCCS; a read's
            // data need the count byte decoded first.
            for (i, b) in bytes.chunks(1).enumerate() {
                ops.push(Operation::Write(b));
                if i + 1 < bytes.len() || read.is_some() {
                    ops.push(Operation::DelayNs(gap));
                }
            }
        }
        if let Some(r) = read {
            ops.push(Operation::Read(r));
        }
        ops.push(Operation::DelayNs(T_SCCS_NS as u32));
        self.spi.transaction(&mut ops).map_err(Error::Bus)
    }

    /// Reads `out.len()` registers from `start` (`RREG`). The chip must be in SDATAC mode.
    /// In a daisy chain this reads the first chip (the one whose DOUT the host sees).
    pub fn read_registers(&mut self, start: u8, out: &mut [u8]) -> Result<(), Error<SPI::Error>> {
        check_range(start, out.len())?;
        let head = [cmd::RREG | start, (out.len() - 1) as u8];
        self.multi_byte(&head, Some(out))
    }

    /// Writes `data` to consecutive registers from `start` (`WREG`). In a daisy chain every
    /// clocked chip takes the write.
    pub fn write_registers(&mut self, start: u8, data: &[u8]) -> Result<(), Error<SPI::Error>> {
        check_range(start, data.len())?;
        let mut buf = [0u8; 2 + reg::COUNT];
        buf[0] = cmd::WREG | start;
        buf[1] = (data.len() - 1) as u8;
        buf[2..2 + data.len()].copy_from_slice(data);
        self.multi_byte(&buf[..2 + data.len()], None)
    }

    /// Reads and checks the `ID` register.
    pub fn read_id(&mut self) -> Result<DeviceId, Error<SPI::Error>> {
        let mut b = [0u8];
        self.read_registers(reg::ID, &mut b)?;
        DeviceId::decode(b[0]).ok_or(Error::WrongId(b[0]))
    }

    /// The power-up sequence: [`configure`](Self::configure), then `START`. Conversions are
    /// running when it returns.
    pub fn start_up(
        &mut self,
        cfg: &Config,
        delay: &mut impl DelayNs,
    ) -> Result<DeviceId, Error<SPI::Error>> {
        let id = self.configure(cfg, delay)?;
        self.start()?;
        Ok(id)
    }

    /// Starts conversions (`START`): DRDY falls once per sample from now on.
    pub fn start(&mut self) -> Result<(), Error<SPI::Error>> {
        self.command(cmd::START)
    }

    /// Everything before `START`: `RESET`, `SDATAC`, the `ID` check, the reference buffer,
    /// every configuration register, read-back verification of each, then `RDATAC`.
    pub fn configure(
        &mut self,
        cfg: &Config,
        delay: &mut impl DelayNs,
    ) -> Result<DeviceId, Error<SPI::Error>> {
        if cfg.chips as usize != self.chips {
            return Err(Error::Invalid("the configuration's chip count differs from the driver's"));
        }
        cfg.check().map_err(Error::Invalid)?;
        let want = cfg.registers();
        // `RESET` waits its 18 tCLK inside the command; after it the chip is in RDATAC mode,
        // where it ignores register commands.
        self.command(cmd::RESET)?;
        self.command(cmd::SDATAC)?;
        if self.chips > 1 && cfg.clock_out {
            // Chips 2…N run from chip 1's CLK output, which `RESET` (and power-up) leave off:
            // until chip 1 outputs its clock they are deaf. Switch it on, give them tPOR of
            // running clock ("Power-Up Sequencing"), then take them out of RDATAC. No `RESET`
            // after this: it would clear CLK_EN and stop their clock again; every writable
            // register is written below instead.
            let c1 = [want[reg::CONFIG1 as usize] | config1::CLK_EN];
            self.write_registers(reg::CONFIG1, &c1)?;
            delay.delay_ns(T_POR_NS as u32);
            self.command(cmd::SDATAC)?;
        }
        let id = self.read_id()?;
        self.per_chip = id.channels as usize;
        // The reference buffer first, so it settles while nothing depends on it yet.
        self.write_registers(reg::CONFIG3, &want[reg::CONFIG3 as usize..=reg::CONFIG3 as usize])?;
        if cfg.reference_buffer {
            delay.delay_ns(T_REFERENCE_SETTLE_NS as u32);
        }
        for (a, b) in [BLOCK1, BLOCK2] {
            self.write_registers(a, &want[a as usize..=b as usize])?;
        }
        self.verify(&want)?;
        self.command(cmd::RDATAC)?;
        Ok(id)
    }

    /// A new configuration on a running chip, between frames: `SDATAC`, the registers, their
    /// read-back, `RDATAC`. Conversions go on (frames due meanwhile are lost, and counted by
    /// the DRDY clock); the rate and the chain's clocking must not change.
    pub fn apply(&mut self, cfg: &Config) -> Result<(), Error<SPI::Error>> {
        cfg.check().map_err(Error::Invalid)?;
        let want = cfg.registers();
        self.command(cmd::SDATAC)?;
        for (a, b) in [BLOCK1, BLOCK2] {
            self.write_registers(a, &want[a as usize..=b as usize])?;
        }
        self.verify(&want)?;
        self.command(cmd::RDATAC)
    }

    /// Reads back every register [`start_up`](Self::start_up) wrote and compares, ignoring
    /// read-only bits and the registers of channels this chip does not have.
    pub fn verify(&mut self, want: &[u8; reg::COUNT]) -> Result<(), Error<SPI::Error>> {
        let mut got = [0u8; reg::COUNT];
        for (a, b) in [BLOCK1, BLOCK2] {
            self.read_registers(a, &mut got[a as usize..=b as usize])?;
        }
        let absent = !((1u16 << self.per_chip) - 1) as u8;
        for addr in (BLOCK1.0..=BLOCK1.1).chain(BLOCK2.0..=BLOCK2.1) {
            let mut mask = !read_only_mask(addr);
            let k = addr.wrapping_sub(reg::CH1SET) as usize;
            if k < CHANNELS && k >= self.per_chip {
                continue;
            }
            if (reg::BIAS_SENSP..=reg::LOFF_FLIP).contains(&addr) {
                mask &= !absent;
            }
            let (w, r) = (want[addr as usize], got[addr as usize]);
            if w & mask != r & mask {
                return Err(Error::ReadBack { name: crate::registers::name(addr), addr, wrote: w, read: r });
            }
        }
        Ok(())
    }

    /// Reads one frame (call after each DRDY) into `channels` (at least
    /// [`channels()`](Self::channels) long, chip 0's first). Returns the chips' status words.
    pub fn read_frame(&mut self, channels: &mut [i32]) -> Result<FrameStatus, Error<SPI::Error>> {
        let n = self.frame_len();
        if channels.len() < self.channels() {
            return Err(Error::Invalid("the channel buffer is shorter than a frame"));
        }
        self.spi
            .transaction(&mut [Operation::Read(&mut self.frame[..n]), Operation::DelayNs(T_SCCS_NS as u32)])
            .map_err(Error::Bus)?;
        frame::parse_chips(&self.frame[..n], self.per_chip, channels)
            .map_err(|b| Error::BadStatus { chip: b.chip, byte: b.byte })
    }

    /// Stops conversions and leaves RDATAC mode (`STOP`, `SDATAC`).
    pub fn stop(&mut self) -> Result<(), Error<SPI::Error>> {
        self.command(cmd::STOP)?;
        self.command(cmd::SDATAC)
    }
}

fn check_range<E: core::fmt::Debug>(start: u8, len: usize) -> Result<(), Error<E>> {
    if len == 0 || start as usize + len > reg::COUNT {
        return Err(Error::Invalid("register range outside the register map"));
    }
    Ok(())
}
