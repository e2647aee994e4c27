//! RDATAC frames: per chip a 24-bit status word (`1100`, `LOFF_STATP`, `LOFF_STATN`,
//! `GPIO[7:4]`), then eight 24-bit two's-complement channels, most significant byte first. In
//! a daisy chain the host clocks out `chips × 27` bytes, the first chip's frame first.
use crate::registers::{CHANNELS, MAX_CHIPS, STATUS_MARKER};

/// The status word of one chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Lead-off status of the positive inputs, bit `k` = channel `k + 1` (1 = off).
    pub loff_statp: u8,
    /// Lead-off status of the negative inputs.
    pub loff_statn: u8,
    /// GPIO pin levels, `GPIOD[4:1]` in bits [3:0].
    pub gpio: u8,
}

impl Status {
    /// The 3 status bytes of this status.
    pub fn to_bytes(self) -> [u8; 3] {
        [
            (STATUS_MARKER << 4) | (self.loff_statp >> 4),
            (self.loff_statp << 4) | (self.loff_statn >> 4),
            (self.loff_statn << 4) | (self.gpio & 0x0F),
        ]
    }
}

/// The status words of every chip of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameStatus {
    pub chips: [Status; MAX_CHIPS],
}

impl FrameStatus {
    /// Lead-off of the positive inputs across the chain: bit `c` = channel `c + 1`.
    pub fn lead_off_p(&self) -> u32 {
        self.chips.iter().enumerate().fold(0, |m, (i, s)| m | (s.loff_statp as u32) << (8 * i))
    }

    /// Lead-off of the negative inputs across the chain.
    pub fn lead_off_n(&self) -> u32 {
        self.chips.iter().enumerate().fold(0, |m, (i, s)| m | (s.loff_statn as u32) << (8 * i))
    }
}

/// A status word whose top nibble is not `1100`: the bus lost byte alignment, or the chip is
/// not in RDATAC mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMarker {
    pub chip: u8,
    /// The first byte of the status word.
    pub byte: u8,
}

/// A 24-bit two's-complement value, sign-extended.
#[inline]
pub fn decode24(b: [u8; 3]) -> i32 {
    // Place the 24 bits at the top of an i32 and shift back down: the shift sign-extends.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

/// The 24-bit two's-complement bytes of `v` (clamped to the 24-bit range).
#[inline]
pub fn encode24(v: i32) -> [u8; 3] {
    let v = v.clamp(-(1 << 23), (1 << 23) - 1);
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Parses `bytes` (`chips × 27`) into `channels` (`chips × 8`, chip 0's channels first).
/// Allocation-free.
pub fn parse(bytes: &[u8], channels: &mut [i32]) -> Result<FrameStatus, BadMarker> {
    parse_chips(bytes, CHANNELS, channels)
}

/// Like [`parse`] for chips of `per_chip` channels (4 for an ADS1299-4, 6 for an ADS1299-6):
/// each chip's frame is `3 + 3 × per_chip` bytes.
pub fn parse_chips(bytes: &[u8], per_chip: usize, channels: &mut [i32]) -> Result<FrameStatus, BadMarker> {
    let mut status = FrameStatus::default();
    for (chip, (f, out)) in
        bytes.chunks_exact(3 + 3 * per_chip).zip(channels.chunks_exact_mut(per_chip)).enumerate()
    {
        if f[0] >> 4 != STATUS_MARKER {
            return Err(BadMarker { chip: chip as u8, byte: f[0] });
        }
        if let Some(s) = status.chips.get_mut(chip) {
            *s = Status {
                loff_statp: (f[0] << 4) | (f[1] >> 4),
                loff_statn: (f[1] << 4) | (f[2] >> 4),
                gpio: f[2] & 0x0F,
            };
        }
        for (v, b) in out.iter_mut().zip(f[3..].chunks_exact(3)) {
            *v = decode24([b[0], b[1], b[2]]);
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_ends_of_full_scale_and_minus_one() {
        assert_eq!(decode24([0x7F, 0xFF, 0xFF]), 8_388_607);
        assert_eq!(decode24([0x80, 0x00, 0x00]), -8_388_608);
        assert_eq!(decode24([0xFF, 0xFF, 0xFF]), -1);
        assert_eq!(decode24([0x00, 0x00, 0x01]), 1);
        for v in [0, 1, -1, 12345, -12345, 8_388_607, -8_388_608] {
            assert_eq!(decode24(encode24(v)), v);
        }
        assert_eq!(decode24(encode24(9_000_000)), 8_388_607, "clamped");
    }

    #[test]
    fn status_round_trips_and_a_bad_marker_is_refused() {
        let s = Status { loff_statp: 0xA5, loff_statn: 0x3C, gpio: 0x9 };
        let mut frame = [0u8; crate::registers::FRAME_BYTES];
        frame[..3].copy_from_slice(&s.to_bytes());
        frame[3..6].copy_from_slice(&encode24(-2));
        let mut ch = [0i32; CHANNELS];
        let st = parse(&frame, &mut ch).unwrap();
        assert_eq!(st.chips[0], s);
        assert_eq!(ch[0], -2);
        frame[0] = 0x4A;
        assert_eq!(parse(&frame, &mut ch), Err(BadMarker { chip: 0, byte: 0x4A }));
    }
}
