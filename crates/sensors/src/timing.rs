//! The ADS1299's timing rules, in ns, with the internal 2.048 MHz clock (tCLK = 488.28 ns).
//! The driver honours them and the simulated chip ([`crate::sim`]) checks them.
//!
//! Sources in TI SBAS499 (ADS1299): the "Timing Requirements" table of section 7
//! (Specifications) for tSDECODE, tSCCS and tCSH; section 9.5 (Programming), "Sending
//! Multi-Byte Commands" for the byte gap; the `RESET` and `SDATAC` command descriptions in
//! "SPI Command Definitions"; the data-retrieval figures ("DRDY timing" / tUPDATE) of the RDATAC
//! description; and section 10 "Power-Up Sequencing" for tPOR.
use crate::registers::F_CLK_HZ;

/// `n` periods of the 2.048 MHz clock, rounded up to whole ns.
pub const fn tclk(n: u64) -> u64 {
    (n * 1_000_000_000).div_ceil(F_CLK_HZ as u64)
}

/// tSDECODE, command decode time: 4 tCLK (1.96 µs). Between the ends of two consecutive bytes
/// of a multi-byte command ("Sending Multi-Byte Commands"), and before the next command.
pub const T_SDECODE_NS: u64 = tclk(4);
/// tSCCS, from the last SCLK falling edge to CS rising: at least 4 tCLK (Timing Requirements).
pub const T_SCCS_NS: u64 = tclk(4);
/// After `RESET`, 18 tCLK before any other command ("RESET: Reset Registers to Default
/// Values").
pub const T_RESET_NS: u64 = tclk(18);
/// After `SDATAC`, 4 tCLK before the next command (tSDECODE, as for every command).
pub const T_SDATAC_NS: u64 = tclk(4);
/// tUPDATE: the output register is reloaded 4 tCLK before DRDY falls; a read still shifting then
/// is corrupted (RDATAC description, "data retrieval").
pub const T_UPDATE_NS: u64 = tclk(4);
/// tPOR: 2^18 tCLK (128 ms) of a running clock after power-up before the chip takes commands
/// ("Power-Up Sequencing"). A chained chip clocked from chip 1's CLK output starts counting it
/// only when that clock starts.
pub const T_POR_NS: u64 = tclk(1 << 18);
/// Time the internal reference buffer takes to settle after `PD_REFBUF'` is set. The
/// datasheet's power-up flow ("Initial Flow at Power-Up") says to wait for it without a figure;
/// 150 ms is what the 10 µF VREFP capacitor needs with margin and what TI's EVM firmware waits.
pub const T_REFERENCE_SETTLE_NS: u64 = 150_000_000;

/// Time of one byte at `sclk_hz`, ns (rounded up).
pub const fn byte_ns(sclk_hz: u32) -> u64 {
    let hz = if sclk_hz == 0 { 1 } else { sclk_hz as u64 };
    (8 * 1_000_000_000u64).div_ceil(hz)
}

/// The pause to insert after a byte of a multi-byte command so the next byte ends at least
/// tSDECODE after it: 0 at 4.096 MHz and slower ("If SCLK is 4 MHz, one byte is transferred in
/// 2 µs … the processor can send subsequent bytes without delay"), 1.46 µs at 16 MHz.
pub const fn byte_gap_ns(sclk_hz: u32) -> u64 {
    T_SDECODE_NS.saturating_sub(byte_ns(sclk_hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datasheets_examples_hold() {
        assert_eq!(T_SDECODE_NS, 1954, "4 tCLK = 1.953 µs");
        assert_eq!(T_RESET_NS, 8790, "18 tCLK");
        assert_eq!(T_POR_NS, 128_000_000, "2^18 tCLK = 128 ms");
        assert_eq!(byte_gap_ns(4_000_000), 0, "4 MHz: no delay");
        assert_eq!(byte_gap_ns(16_000_000), 1454, "16 MHz: ~1.46 µs");
    }
}
