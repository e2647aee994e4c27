//! Transcript builders for tests that script the driver's bytes on an `embedded-hal-mock` SPI
//! bus (feature `testing`; only the tests of this and other crates turn it on).
//!
//! The waits are spelled out from the datasheet here rather than taken from [`crate::timing`], so
//! a transcript checks the driver against the datasheet and not against itself.
use crate::registers::cmd;
use embedded_hal_mock::eh1::spi::Transaction as T;

/// tSCCS: 4 tCLK of the 2.048 MHz clock, rounded up (SBAS499 Timing Requirements), held with
/// chip select low after each command.
pub const HOLD: u32 = 1954;
/// `RESET`: 18 tCLK before the next command.
pub const RESET_WAIT: u32 = 8790;

/// One command byte in its own transaction, then its wait.
pub fn command(op: u8) -> Vec<T<u8>> {
    let wait = if op == cmd::RESET { RESET_WAIT } else { HOLD };
    vec![T::transaction_start(), T::write_vec(vec![op]), T::delay(wait), T::transaction_end()]
}

/// `RREG` from `start`, answered with `response` (one byte per register).
pub fn read(start: u8, response: Vec<u8>) -> Vec<T<u8>> {
    let head = vec![cmd::RREG | start, response.len() as u8 - 1];
    vec![
        T::transaction_start(),
        T::write_vec(head),
        T::read_vec(response),
        T::delay(HOLD),
        T::transaction_end(),
    ]
}

/// `WREG` of `data` from `start`.
pub fn write(start: u8, data: &[u8]) -> Vec<T<u8>> {
    let mut bytes = vec![cmd::WREG | start, data.len() as u8 - 1];
    bytes.extend_from_slice(data);
    vec![T::transaction_start(), T::write_vec(bytes), T::delay(HOLD), T::transaction_end()]
}
