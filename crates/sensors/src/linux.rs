//! The Linux backend (a Raspberry Pi 5): SPI through `/dev/spidev*`, DRDY as a falling-edge
//! event on a GPIO character device (`/dev/gpiochip*`).
//!
//! The SPI side is a small [`SpiDevice`] over the `spidev` crate rather than
//! `linux-embedded-hal`'s `SpidevDevice`, because that one allocates a `Vec` per transaction
//! and a frame is read thousands of times a second; here the transfers live on the stack.
use crate::drdy::{Drdy, DrdyEvent};
use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use gpiocdev::line::{EdgeDetection, EventClock};
use spidev::{SpiModeFlags, Spidev, SpidevOptions, SpidevTransfer};
use std::io;
use std::path::Path;
use std::time::Duration;

/// An SPI bus error: the `ioctl`'s I/O error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpiError(#[from] pub io::Error);

impl embedded_hal::spi::Error for SpiError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A `/dev/spidevB.C` device: the kernel drives chip select `C` of bus `B` around each
/// transaction.
pub struct Spi {
    dev: Spidev,
}

/// The most transfers one transaction may hold: a `WREG` of 24 registers at a fast SCLK is 26
/// bytes, each with its decode pause, and chip-select hold (a frame read needs two).
const MAX_TRANSFERS: usize = 64;

impl Spi {
    /// Opens `path` in SPI mode 1 (CPOL 0, CPHA 1: what the ADS1299 speaks), 8-bit words, at
    /// `speed_hz`.
    pub fn open(path: impl AsRef<Path>, speed_hz: u32) -> io::Result<Spi> {
        let mut dev = Spidev::open(path)?;
        dev.configure(
            &SpidevOptions::new()
                .bits_per_word(8)
                .max_speed_hz(speed_hz)
                .mode(SpiModeFlags::SPI_MODE_1)
                .build(),
        )?;
        Ok(Spi { dev })
    }
}

impl ErrorType for Spi {
    type Error = SpiError;
}

impl SpiDevice for Spi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), SpiError> {
        let mut t: [SpidevTransfer<'_, '_>; MAX_TRANSFERS] =
            std::array::from_fn(|_| SpidevTransfer::default());
        let mut n = 0;
        fn push<'a, 'b>(
            x: SpidevTransfer<'a, 'b>,
            t: &mut [SpidevTransfer<'a, 'b>],
            n: &mut usize,
        ) -> io::Result<()> {
            let slot = t
                .get_mut(*n)
                .ok_or_else(|| io::Error::other("too many SPI operations in one transaction"))?;
            *slot = x;
            *n += 1;
            Ok(())
        }
        for op in operations.iter_mut() {
            match op {
                Operation::Read(buf) => push(SpidevTransfer::read(buf), &mut t, &mut n)?,
                Operation::Write(buf) => push(SpidevTransfer::write(buf), &mut t, &mut n)?,
                Operation::Transfer(read, write) => {
                    let k = read.len().min(write.len());
                    let (r1, r2) = read.split_at_mut(k);
                    push(SpidevTransfer::read_write(&write[..k], r1), &mut t, &mut n)?;
                    if !r2.is_empty() {
                        push(SpidevTransfer::read(r2), &mut t, &mut n)?;
                    }
                    if write.len() > k {
                        push(SpidevTransfer::write(&write[k..]), &mut t, &mut n)?;
                    }
                }
                Operation::TransferInPlace(buf) => {
                    push(SpidevTransfer::read_write_in_place(buf), &mut t, &mut n)?
                }
                Operation::DelayNs(ns) => {
                    let us = ns.div_ceil(1000).min(u16::MAX as u32) as u16;
                    push(SpidevTransfer::delay(us), &mut t, &mut n)?;
                }
            }
        }
        self.dev.transfer_multiple(&mut t[..n])?;
        Ok(())
    }
}

/// A `std::thread::sleep` delay, for the power-up waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

impl embedded_hal::delay::DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(ns as u64));
    }
}

/// DRDY as a falling-edge event on a GPIO line, through the GPIO character device. The wait
/// blocks in the kernel (`poll`, then `read` of the event); the event carries the interrupt's
/// `CLOCK_MONOTONIC` timestamp and a per-line sequence number, whose gaps count missed DRDYs.
pub struct GpioDrdy {
    req: gpiocdev::Request,
    last_seqno: Option<u32>,
}

/// The device path of a GPIO chip given as `gpiochip4`, `/dev/gpiochip4` or `4`.
pub fn chip_path(chip: &str) -> String {
    if chip.starts_with('/') {
        chip.to_string()
    } else if chip.chars().all(|c| c.is_ascii_digit()) {
        format!("/dev/gpiochip{chip}")
    } else {
        format!("/dev/{chip}")
    }
}

/// Checks that line `line` of `chip` is the one meant: its name as the kernel reports it
/// (`found`) must be `label`. On a Raspberry Pi 5 the header pins are the RP1's lines, named
/// `GPIO0` … `GPIO27`; kernels before 6.6.45 number that chip `gpiochip4` and have a different
/// chip as `gpiochip0`, whose line 25 is no header pin at all, so a wrong chip would wait for a
/// DRDY that never comes. `elsewhere`: where a line named `label` was found, if anywhere.
pub fn check_line_label(
    chip: &str,
    line: u32,
    label: &str,
    found: &str,
    elsewhere: Option<&str>,
) -> Result<(), String> {
    if label.is_empty() || found == label {
        return Ok(());
    }
    let hint = match elsewhere {
        Some(c) => format!("`{label}` is a line on `{c}`: set `drdy.chip` to it"),
        None => "no GPIO chip has a line of that name; `gpioinfo` lists them".to_string(),
    };
    Err(format!(
        "line {line} of `{chip}` is named `{found}`, not `{label}`: on a Raspberry Pi 5 the header \
         GPIOs are the RP1's, `gpiochip0` from kernel 6.6.45 and `gpiochip4` before ({hint}; set \
         `drdy.label: \"\"` to skip this check on other boards)"
    ))
}

/// Why the DRDY line could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DrdyOpenError {
    #[error("{0}")]
    Gpio(#[from] gpiocdev::Error),
    #[error("{0}")]
    WrongLine(String),
}

impl GpioDrdy {
    /// Requests line `line` of `chip` as an input with falling-edge detection, after checking
    /// that the line is named `label` (see [`check_line_label`]; `""` skips the check).
    pub fn open(chip: &str, line: u32, label: &str) -> Result<GpioDrdy, DrdyOpenError> {
        let path = chip_path(chip);
        if !label.is_empty() {
            let info = gpiocdev::Chip::from_path(&path)?.line_info(line)?;
            if info.name != label {
                let elsewhere = gpiocdev::find_named_line(label).map(|f| f.chip.display().to_string());
                check_line_label(&path, line, label, &info.name, elsewhere.as_deref())
                    .map_err(DrdyOpenError::WrongLine)?;
            }
        }
        let req = gpiocdev::Request::builder()
            .on_chip(chip_path(chip))
            .with_consumer("eegd-drdy")
            .with_line(line)
            .as_input()
            .with_edge_detection(EdgeDetection::FallingEdge)
            .with_event_clock(EventClock::Monotonic)
            .with_kernel_event_buffer_size(64)
            .request()?;
        Ok(GpioDrdy { req, last_seqno: None })
    }
}

impl Drdy for GpioDrdy {
    type Error = gpiocdev::Error;

    fn wait(&mut self, timeout_ns: u64) -> Result<Option<DrdyEvent>, gpiocdev::Error> {
        if !self.req.wait_edge_event(Duration::from_nanos(timeout_ns))? {
            return Ok(None);
        }
        let mut ev = self.req.read_edge_event()?;
        // Events queued behind this one are later DRDYs: the chip holds only the latest frame,
        // so take the newest; the sequence numbers count what was skipped.
        while self.req.has_edge_event()? {
            ev = self.req.read_edge_event()?;
        }
        let missed = match self.last_seqno {
            Some(s) => ev.line_seqno.wrapping_sub(s).saturating_sub(1),
            None => 0,
        };
        self.last_seqno = Some(ev.line_seqno);
        Ok(Some(DrdyEvent { timestamp_ns: ev.timestamp_ns, missed }))
    }

    fn flush(&mut self) -> Result<u32, gpiocdev::Error> {
        let mut n = 0;
        while self.req.has_edge_event()? {
            self.req.read_edge_event()?;
            n += 1;
        }
        self.last_seqno = None;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_names_become_device_paths() {
        assert_eq!(chip_path("gpiochip4"), "/dev/gpiochip4");
        assert_eq!(chip_path("0"), "/dev/gpiochip0");
        assert_eq!(chip_path("/dev/gpiochip0"), "/dev/gpiochip0");
    }

    #[test]
    fn a_line_with_another_name_is_refused_with_the_chip_that_has_it() {
        assert!(check_line_label("/dev/gpiochip0", 25, "GPIO25", "GPIO25", None).is_ok());
        assert!(check_line_label("/dev/gpiochip0", 25, "", "whatever", None).is_ok());
        let e = check_line_label("/dev/gpiochip0", 25, "GPIO25", "-", Some("/dev/gpiochip4")).unwrap_err();
        assert!(e.contains("named `-`, not `GPIO25`") && e.contains("`/dev/gpiochip4`"), "{e}");
        assert!(e.contains("6.6.45"), "{e}");
    }
}
