//! Frequency response of a cascade of second-order sections: gain and group delay.
use crate::complex::C64;
use crate::design::Sos;
use std::f64::consts::PI;

/// `Σ c_k e^{-iωk}` and `Σ k c_k e^{-iωk}` for a polynomial in `z⁻¹` of degree 2.
fn poly_and_ramp(c: &[f64], w: f64) -> (C64, C64) {
    let mut value = C64::default();
    let mut ramp = C64::default();
    for (k, &ck) in c.iter().enumerate() {
        let e = C64::cis(-w * k as f64) * ck;
        value = value + e;
        ramp = ramp + e * k as f64;
    }
    (value, ramp)
}

/// The complex response `H(e^{iω})` of the cascade at `f_hz`.
pub(crate) fn response_at(sos: &[Sos], f_hz: f64, fs: f64) -> C64 {
    let w = 2.0 * PI * f_hz / fs;
    sos.iter().fold(C64::real(1.0), |h, s| {
        let (b, _) = poly_and_ramp(&s[..3], w);
        let (a, _) = poly_and_ramp(&s[3..], w);
        h * (b / a)
    })
}

/// Magnitude of the cascade's response at `f_hz` (1 = unity gain).
pub fn gain_at(sos: &[Sos], f_hz: f64, fs: f64) -> f64 {
    response_at(sos, f_hz, fs).abs()
}

/// Group delay of the cascade at `f_hz`, in seconds: `-dφ/dω / fs`, computed analytically per
/// section as `Re(Σ k b_k e^{-iωk} / B) - Re(Σ k a_k e^{-iωk} / A)`. Not finite where the
/// response has a zero on the unit circle (a high-pass at 0 Hz, a notch at its centre): ask at a
/// frequency in the pass band.
pub fn group_delay_s(sos: &[Sos], f_hz: f64, fs: f64) -> f64 {
    let w = 2.0 * PI * f_hz / fs;
    let samples: f64 = sos
        .iter()
        .map(|s| {
            let (b, rb) = poly_and_ramp(&s[..3], w);
            let (a, ra) = poly_and_ramp(&s[3..], w);
            (rb / b).re - (ra / a).re
        })
        .sum();
    samples / fs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::{butter, BandKind};

    #[test]
    fn pure_delay_has_its_delay() {
        // y[n] = x[n-2]: two samples at every frequency.
        let sos = [[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]];
        for f in [0.0, 10.0, 100.0] {
            assert!((group_delay_s(&sos, f, 1000.0) - 0.002).abs() < 1e-15);
        }
    }

    #[test]
    fn first_order_lowpass_delay_matches_the_formula() {
        // H = g (1 + z⁻¹) / (1 + a z⁻¹): τ(0) = 1/2 - a / (1 + a) samples.
        let sos = butter(1, BandKind::Lowpass(10.0), 1000.0).unwrap();
        let a = sos[0][4];
        let want = (0.5 - a / (1.0 + a)) / 1000.0;
        assert!((group_delay_s(&sos, 0.0, 1000.0) - want).abs() < 1e-15);
    }

    #[test]
    fn group_delay_is_the_phase_slope() {
        let sos = butter(4, BandKind::Bandpass(1.0, 40.0), 250.0).unwrap();
        let phase = |f: f64| {
            let h = response_at(&sos, f, 250.0);
            h.im.atan2(h.re)
        };
        let (f, df) = (10.0, 1e-4);
        let numeric = -(phase(f + df) - phase(f - df)) / (2.0 * PI * 2.0 * df);
        let analytic = group_delay_s(&sos, f, 250.0);
        assert!((numeric - analytic).abs() < 1e-6 * analytic.abs(), "{numeric} vs {analytic}");
    }
}
