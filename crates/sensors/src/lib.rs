//! The ADS1299 acquisition library: the chip's driver, a simulated chip, the emulator's signal
//! model, and the DRDY clock.
//!
//! - [`registers`]: every register, bit field and command of the datasheet, by name.
//! - [`Ads1299`]: the driver over an `embedded-hal` 1.0 `SpiDevice` — the power-up sequence with
//!   read-back verification, RDATAC frame parsing, daisy chains of 1–4 chips.
//! - [`Drdy`]: waiting for the data-ready line; [`ClockTracker`]: the nominal sample clock
//!   (first DRDY + n / rate), its drift from the DRDY events, and overruns.
//! - [`sim`]: a simulated ADS1299 that speaks the same SPI protocol, and its DRDY.
//! - [`signal`]: the analog signal (EEG-like, sine) the simulated electrodes carry.
//! - [`timing`]: the datasheet's timing rules, which the driver honours and the simulated chip
//!   checks.
//! - `linux` (Linux only): `/dev/spidev*` and DRDY as a GPIO character-device edge event.
//!
//! It knows nothing of pipelines, packets or stages, and must never allocate per frame: frames
//! are read into buffers sized when the driver is made.
#![forbid(unsafe_code)]

pub mod config;
pub mod drdy;
pub mod driver;
pub mod frame;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod registers;
pub mod signal;
pub mod sim;
pub mod timing;

pub use config::{ChannelConfig, Config};
pub use drdy::{ClockTracker, Drdy, DrdyEvent};
pub use driver::{Ads1299, DeviceId, Error};
pub use frame::{FrameStatus, Status};
pub use registers::{DataRate, Gain, Mux};
