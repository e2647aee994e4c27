//! Filter design: Butterworth and notch filters as second-order sections.
//!
//! The contract is equality with scipy: [`butter`] returns what
//! `scipy.signal.butter(order, Wn, btype, output='sos', fs=fs)` returns (to 1e-9), and
//! [`iirnotch`] what `scipy.signal.iirnotch(w0, Q, fs)` returns. So the code follows scipy's
//! algorithm step by step rather than a textbook shortcut: the analog prototype's poles,
//! `lp2lp`/`lp2hp`/`lp2bp`/`lp2bs` on prewarped frequencies, the bilinear transform in
//! zero-pole-gain form, and `zpk2sos` with `pairing='nearest'` — the poles closest to the unit
//! circle go to the last section and the overall gain into the first. Section order and pairing
//! change the rounding of a cascade, so they are part of the contract too.
//!
//! One limit: a band exactly symmetric about a quarter of the rate (`low + high = fs/2`) has
//! pole pairs of equal radius, `p` and `-p`. scipy breaks that tie by the last bit of numpy's
//! `tan` and `abs`, which vary with the CPU numpy runs on (its SIMD kernels), so for such bands
//! the order of those sections may differ from a given scipy run: the same filter, the same
//! sections, another order.
use crate::complex::C64;
use std::f64::consts::PI;

/// One second-order section `(b0, b1, b2, a0, a1, a2)` with `a0 = 1`:
/// `H(z) = (b0 + b1 z⁻¹ + b2 z⁻²) / (a0 + a1 z⁻¹ + a2 z⁻²)`, scipy's `sos` row layout.
pub type Sos = [f64; 6];

/// Highest Butterworth order [`butter`] designs.
pub const MAX_ORDER: usize = 8;

/// The band of a Butterworth filter; frequencies in Hz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BandKind {
    Lowpass(f64),
    Highpass(f64),
    /// `(low, high)`: passes between the edges.
    Bandpass(f64, f64),
    /// `(low, high)`: stops between the edges.
    Bandstop(f64, f64),
}

/// Why a filter cannot be designed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesignError {
    #[error("filter order {0} is outside 1..={MAX_ORDER}")]
    Order(usize),
    #[error("sample rate {0} Hz must be finite and positive")]
    Rate(f64),
    #[error("frequency {f_hz} Hz must be above 0 and below the Nyquist frequency {nyquist_hz} Hz")]
    Frequency { f_hz: f64, nyquist_hz: f64 },
    #[error("band edges must satisfy low < high (got {low_hz} Hz and {high_hz} Hz)")]
    Band { low_hz: f64, high_hz: f64 },
    #[error("quality factor {0} must be finite and positive")]
    Q(f64),
    #[error("{what} {value} is outside {range}")]
    Param { what: &'static str, value: f64, range: &'static str },
}

/// Zeros, poles and gain.
#[derive(Debug, Clone)]
struct Zpk {
    z: Vec<C64>,
    p: Vec<C64>,
    k: f64,
}

impl Zpk {
    fn degree(&self) -> usize {
        self.p.len() - self.z.len()
    }
}

fn check_rate(fs: f64) -> Result<(), DesignError> {
    if fs.is_finite() && fs > 0.0 {
        Ok(())
    } else {
        Err(DesignError::Rate(fs))
    }
}

/// `f_hz / (fs / 2)`, checked to lie strictly between 0 and 1.
fn normalised(f_hz: f64, fs: f64) -> Result<f64, DesignError> {
    let wn = f_hz / (fs / 2.0);
    if wn.is_finite() && wn > 0.0 && wn < 1.0 {
        Ok(wn)
    } else {
        Err(DesignError::Frequency { f_hz, nyquist_hz: fs / 2.0 })
    }
}

/// Prewarps a normalised frequency for the bilinear transform at scipy's internal `fs = 2`.
fn warp(wn: f64) -> f64 {
    let fs = 2.0;
    2.0 * fs * (PI * wn / fs).tan()
}

/// A Butterworth filter of `order` as second-order sections, equal to
/// `scipy.signal.butter(order, Wn, btype, output='sos', fs=fs)`. Band-pass and band-stop
/// filters have `2 × order` poles (`order` sections), as in scipy.
pub fn butter(order: usize, kind: BandKind, fs: f64) -> Result<Vec<Sos>, DesignError> {
    if !(1..=MAX_ORDER).contains(&order) {
        return Err(DesignError::Order(order));
    }
    check_rate(fs)?;
    Ok(zpk2sos(bilinear(transform(buttap(order), kind, fs)?, 2.0)))
}

/// Highest Chebyshev type II order [`cheby2`] designs.
pub const MAX_CHEBY2_ORDER: usize = 16;

/// A Chebyshev type II filter of `order` with `rs_db` of stop-band attenuation, as second-order
/// sections, equal to `scipy.signal.cheby2(order, rs_db, Wn, btype, output='sos', fs=fs)`. Its
/// frequencies are where the stop band begins (the gain first reaches `-rs_db`), not -3 dB
/// points: a low-pass at `f` attenuates everything above `f` by at least `rs_db`.
pub fn cheby2(order: usize, rs_db: f64, kind: BandKind, fs: f64) -> Result<Vec<Sos>, DesignError> {
    if !(1..=MAX_CHEBY2_ORDER).contains(&order) {
        return Err(DesignError::Param { what: "Chebyshev order", value: order as f64, range: "1..=16" });
    }
    if !(rs_db.is_finite() && rs_db > 0.0) {
        return Err(DesignError::Param {
            what: "stop-band attenuation (dB)",
            value: rs_db,
            range: "above 0",
        });
    }
    check_rate(fs)?;
    Ok(zpk2sos(bilinear(transform(cheb2ap(order, rs_db), kind, fs)?, 2.0)))
}

/// scipy's `iirfilter` between the analog prototype and the bilinear transform: the band's
/// edges prewarped at `fs = 2`, then `lp2lp`/`lp2hp`/`lp2bp`/`lp2bs`.
fn transform(proto: Zpk, kind: BandKind, fs: f64) -> Result<Zpk, DesignError> {
    Ok(match kind {
        BandKind::Lowpass(f) => lp2lp(proto, warp(normalised(f, fs)?)),
        BandKind::Highpass(f) => lp2hp(proto, warp(normalised(f, fs)?)),
        BandKind::Bandpass(lo, hi) | BandKind::Bandstop(lo, hi) => {
            let (w0, w1) = (normalised(lo, fs)?, normalised(hi, fs)?);
            // Both are finite here (`normalised` checked them).
            if w0 >= w1 {
                return Err(DesignError::Band { low_hz: lo, high_hz: hi });
            }
            let (w0, w1) = (warp(w0), warp(w1));
            let bw = w1 - w0;
            let wo = (w0 * w1).sqrt();
            if matches!(kind, BandKind::Bandpass(..)) {
                lp2bp(proto, wo, bw)
            } else {
                lp2bs(proto, wo, bw)
            }
        }
    })
}

/// A second-order IIR notch at `w0_hz` with quality factor `q` (bandwidth `w0/q` at -3 dB),
/// equal to `scipy.signal.iirnotch(w0_hz, q, fs)` as one section.
pub fn iirnotch(w0_hz: f64, q: f64, fs: f64) -> Result<Sos, DesignError> {
    check_rate(fs)?;
    let w0 = normalised(w0_hz, fs)?;
    if !(q.is_finite() && q > 0.0) {
        return Err(DesignError::Q(q));
    }
    let bw = w0 / q * PI;
    let w0 = w0 * PI;
    let beta = (bw / 2.0).tan();
    let gain = 1.0 / (1.0 + beta);
    let c = w0.cos();
    Ok([gain, gain * (-2.0 * c), gain, 1.0, -2.0 * gain * c, 2.0 * gain - 1.0])
}

/// `scipy.signal.buttap`: the analog Butterworth prototype, poles on the unit circle at
/// `-exp(iπm / 2N)`, `m = -N+1, -N+3, …, N-1`.
fn buttap(n: usize) -> Zpk {
    // numpy evaluates `1j*pi*m / (2*N)` as a complex division, which multiplies by the
    // reciprocal `1/(2N)`: not the same last bit as `πm / 2N` when N is not a power of two.
    let inv = 1.0 / (2.0 * n as f64);
    let p = (0..n)
        .map(|i| {
            let m = -(n as f64) + 1.0 + 2.0 * i as f64;
            -C64::cis(PI * m * inv)
        })
        .collect();
    Zpk { z: Vec::new(), p, k: 1.0 }
}

/// `scipy.signal.cheb2ap`: the analog Chebyshev type II prototype, stop band from 1 rad/s,
/// `rs` dB down: zeros on the imaginary axis, poles the reciprocals of Butterworth poles
/// squeezed onto an ellipse.
fn cheb2ap(n: usize, rs: f64) -> Zpk {
    let de = 1.0 / (10f64.powf(0.1 * rs) - 1.0).sqrt();
    let mu = (1.0 / de).asinh() / n as f64;
    let nf = n as f64;
    // m = -N+1, -N+3, … N-1, leaving out 0 when N is odd (a zero at infinity).
    let m = (0..n).map(|i| -nf + 1.0 + 2.0 * i as f64).filter(|&m| m != 0.0);
    let z: Vec<C64> =
        m.map(|m| -(C64::new(0.0, 1.0) / C64::real((m * PI / (2.0 * nf)).sin())).conj()).collect();
    let p: Vec<C64> = buttap(n)
        .p
        .into_iter()
        .map(|p| C64::real(1.0) / C64::new(mu.sinh() * p.re, mu.cosh() * p.im))
        .collect();
    let k = (prod(p.iter().map(|&p| -p)) / prod(z.iter().map(|&z| -z))).re;
    Zpk { z, p, k }
}

fn prod(v: impl Iterator<Item = C64>) -> C64 {
    v.fold(C64::real(1.0), |a, b| a * b)
}

/// `scipy.signal.lp2lp_zpk`.
fn lp2lp(s: Zpk, wo: f64) -> Zpk {
    let degree = s.degree();
    Zpk {
        z: s.z.iter().map(|&z| z * wo).collect(),
        p: s.p.iter().map(|&p| p * wo).collect(),
        k: s.k * wo.powi(degree as i32),
    }
}

/// `scipy.signal.lp2hp_zpk`.
fn lp2hp(s: Zpk, wo: f64) -> Zpk {
    let degree = s.degree();
    let w = C64::real(wo);
    let mut z: Vec<C64> = s.z.iter().map(|&z| w / z).collect();
    z.extend(std::iter::repeat_n(C64::real(0.0), degree));
    let k = s.k * (prod(s.z.iter().map(|&z| -z)) / prod(s.p.iter().map(|&p| -p))).re;
    Zpk { z, p: s.p.iter().map(|&p| w / p).collect(), k }
}

/// Shifts each root `r` of a low-pass to the pair `r ± sqrt(r² - wo²)`: all the `+` first.
fn shift_pairs(roots: &[C64], wo: f64) -> Vec<C64> {
    let wo2 = C64::real(wo * wo);
    let plus = roots.iter().map(|&r| r + (r.square() - wo2).sqrt());
    let minus = roots.iter().map(|&r| r - (r.square() - wo2).sqrt());
    plus.chain(minus).collect()
}

/// `scipy.signal.lp2bp_zpk`.
fn lp2bp(s: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = s.degree();
    let z_lp: Vec<C64> = s.z.iter().map(|&z| z * bw / 2.0).collect();
    let p_lp: Vec<C64> = s.p.iter().map(|&p| p * bw / 2.0).collect();
    let mut z = shift_pairs(&z_lp, wo);
    z.extend(std::iter::repeat_n(C64::real(0.0), degree));
    Zpk { z, p: shift_pairs(&p_lp, wo), k: s.k * bw.powi(degree as i32) }
}

/// `scipy.signal.lp2bs_zpk`.
fn lp2bs(s: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = s.degree();
    let half = C64::real(bw / 2.0);
    let z_hp: Vec<C64> = s.z.iter().map(|&z| half / z).collect();
    let p_hp: Vec<C64> = s.p.iter().map(|&p| half / p).collect();
    let mut z = shift_pairs(&z_hp, wo);
    z.extend(std::iter::repeat_n(C64::new(0.0, wo), degree));
    z.extend(std::iter::repeat_n(C64::new(0.0, -wo), degree));
    let k = s.k * (prod(s.z.iter().map(|&z| -z)) / prod(s.p.iter().map(|&p| -p))).re;
    Zpk { z, p: shift_pairs(&p_hp, wo), k }
}

/// `scipy.signal.bilinear_zpk`: zeros at infinity go to Nyquist (`z = -1`).
fn bilinear(s: Zpk, fs: f64) -> Zpk {
    let degree = s.degree();
    let fs2 = C64::real(2.0 * fs);
    let mut z: Vec<C64> = s.z.iter().map(|&z| (fs2 + z) / (fs2 - z)).collect();
    z.extend(std::iter::repeat_n(C64::real(-1.0), degree));
    let p = s.p.iter().map(|&p| (fs2 + p) / (fs2 - p)).collect();
    let k = s.k * (prod(s.z.iter().map(|&z| fs2 - z)) / prod(s.p.iter().map(|&p| fs2 - p))).re;
    Zpk { z, p, k }
}

/// scipy's `_cplxreal`: one element of each complex-conjugate pair (positive imaginary part,
/// the pair averaged) followed by the real values, each group in scipy's order.
fn cplxreal(z: &[C64]) -> Vec<C64> {
    let tol = 100.0 * f64::EPSILON;
    let mut z = z.to_vec();
    // `np.lexsort((abs(z.imag), z.real))`: by real part, then |imag|; stable.
    z.sort_by(|a, b| a.re.total_cmp(&b.re).then(a.im.abs().total_cmp(&b.im.abs())));
    let is_real = |v: &C64| v.im.abs() <= tol * v.abs();
    let reals = z.iter().filter(|v| is_real(v)).map(|v| C64::real(v.re));
    let mut zp: Vec<C64> = z.iter().filter(|v| !is_real(v) && v.im > 0.0).copied().collect();
    let mut zn: Vec<C64> = z.iter().filter(|v| !is_real(v) && v.im < 0.0).copied().collect();
    debug_assert_eq!(zp.len(), zn.len(), "complex values without their conjugates");
    // Runs of (nearly) equal real parts are sorted by |imag|, as scipy does.
    let mut start = 0;
    while start < zp.len() {
        let mut stop = start + 1;
        while stop < zp.len() && zp[stop].re - zp[stop - 1].re <= tol * zp[stop - 1].abs() {
            stop += 1;
        }
        if stop - start > 1 {
            zp[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
            zn[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
        }
        start = stop;
    }
    let mut out: Vec<C64> = zp.iter().zip(&zn).map(|(&p, &n)| (p + n.conj()) / 2.0).collect();
    out.extend(reals);
    out
}

/// numpy's `argmin`: the first index of the smallest key.
fn argmin(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, x) in v.enumerate() {
        if x < best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Digital "worst" pole: the one closest to the unit circle.
fn idx_worst(p: &[C64]) -> usize {
    argmin(p.iter().map(|v| (1.0 - v.abs()).abs()))
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Real,
    Complex,
    Any,
}

/// scipy's `_nearest_real_complex_idx`: the closest element of `fro` to `to` of the given kind.
fn nearest(fro: &[C64], to: C64, which: Which) -> usize {
    let mut order: Vec<usize> = (0..fro.len()).collect();
    order.sort_by(|&a, &b| (fro[a] - to).abs().total_cmp(&(fro[b] - to).abs()));
    order
        .into_iter()
        .find(|&i| match which {
            Which::Any => true,
            Which::Real => fro[i].is_real(),
            Which::Complex => !fro[i].is_real(),
        })
        .expect("zpk2sos: no zero of the kind needed (not reachable for Butterworth and Chebyshev designs)")
}

/// numpy's `poly`, real part, for up to two roots: `[1, -(r1 + r2), r1 r2]`.
fn poly2(r: &[C64]) -> [f64; 3] {
    // np.convolve([1, -r1], [1, -r2]) in complex arithmetic, then the real part.
    match r {
        [] => [1.0, 0.0, 0.0],
        [a] => [1.0, (-*a).re, 0.0],
        [a, b] => [1.0, (-*a + -*b).re, ((-*a) * (-*b)).re],
        _ => unreachable!("at most two roots per section"),
    }
}

/// scipy's `_single_zpksos` with `k = 1`: the polynomials right-aligned in the section.
fn single_sos(z: &[C64], p: &[C64]) -> Sos {
    let mut s = [0.0; 6];
    let b = poly2(z);
    let a = poly2(p);
    let (nb, na) = (z.len() + 1, p.len() + 1);
    s[3 - nb..3].copy_from_slice(&b[..nb]);
    s[6 - na..6].copy_from_slice(&a[..na]);
    s
}

/// `scipy.signal.zpk2sos(z, p, k)` for a digital filter with the default `pairing='nearest'`.
fn zpk2sos(s: Zpk) -> Vec<Sos> {
    let Zpk { mut z, mut p, k } = s;
    if z.is_empty() && p.is_empty() {
        return vec![[k, 0.0, 0.0, 1.0, 0.0, 0.0]];
    }
    let zero = C64::real(0.0);
    while p.len() < z.len() {
        p.push(zero);
    }
    while z.len() < p.len() {
        z.push(zero);
    }
    let n_sections = p.len().div_ceil(2);
    if p.len() % 2 == 1 {
        p.push(zero);
        z.push(zero);
    }
    let mut z = cplxreal(&z);
    let mut p = cplxreal(&p);
    let mut sos = vec![[0.0; 6]; n_sections];
    let count_real = |v: &[C64]| v.iter().filter(|x| x.is_real()).count();

    for si in (0..n_sections).rev() {
        let p1 = p.remove(idx_worst(&p));
        if p1.is_real() && count_real(&p) == 0 {
            // Special case (1): the last real pole.
            let z1 = z.remove(nearest(&z, p1, Which::Real));
            sos[si] = single_sos(&[z1, zero], &[p1, zero]);
        } else if p.len() + 1 == z.len() && !p1.is_real() && count_real(&p) == 1 && count_real(&z) == 1 {
            // Special case (2): one real pole and one real zero left; pair with a complex zero.
            let z1 = z.remove(nearest(&z, p1, Which::Complex));
            sos[si] = single_sos(&[z1, z1.conj()], &[p1, p1.conj()]);
        } else {
            let p2 = if p1.is_real() {
                let reals: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_real()).collect();
                let worst = idx_worst(&reals.iter().map(|&i| p[i]).collect::<Vec<_>>());
                p.remove(reals[worst])
            } else {
                p1.conj()
            };
            if z.is_empty() {
                sos[si] = single_sos(&[], &[p1, p2]);
            } else {
                let z1 = z.remove(nearest(&z, p1, Which::Any));
                if !z1.is_real() {
                    sos[si] = single_sos(&[z1, z1.conj()], &[p1, p2]);
                } else if z.is_empty() {
                    sos[si] = single_sos(&[z1], &[p1, p2]);
                } else {
                    let z2 = z.remove(nearest(&z, p1, Which::Real));
                    sos[si] = single_sos(&[z1, z2], &[p1, p2]);
                }
            }
        }
    }
    debug_assert!(p.is_empty() && z.is_empty());
    for c in &mut sos[0][..3] {
        *c *= k;
    }
    sos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{gain_at, response_at};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    fn assert_sos_close(got: &[Sos], want: &[Sos], tol: f64) {
        assert_eq!(got.len(), want.len(), "section count: {got:?}");
        for (g, w) in got.iter().zip(want) {
            for (a, b) in g.iter().zip(w) {
                assert!(close(*a, *b, tol), "got {got:?}\nwant {want:?}");
            }
        }
    }

    #[test]
    fn first_order_lowpass_matches_the_hand_derivation() {
        // H(s) = wc / (s + wc) with wc = 4 tan(π Wn / 2), bilinear with s = 4 (z-1)/(z+1):
        // b = [wc, wc] / (4 + wc), a = [1, (wc - 4) / (4 + wc)].
        let fs = 1000.0;
        let f = 100.0;
        let wc = 4.0 * (PI * (f / (fs / 2.0)) / 2.0).tan();
        let want = [[wc / (4.0 + wc), wc / (4.0 + wc), 0.0, 1.0, (wc - 4.0) / (4.0 + wc), 0.0]];
        assert_sos_close(&butter(1, BandKind::Lowpass(f), fs).unwrap(), &want, 1e-14);
    }

    #[test]
    fn first_order_highpass_matches_the_hand_derivation() {
        let fs = 250.0;
        let f = 1.0;
        let wc = 4.0 * (PI * (f / (fs / 2.0)) / 2.0).tan();
        let g = 4.0 / (4.0 + wc);
        let want = [[g, -g, 0.0, 1.0, (wc - 4.0) / (4.0 + wc), 0.0]];
        assert_sos_close(&butter(1, BandKind::Highpass(f), fs).unwrap(), &want, 1e-14);
    }

    #[test]
    fn second_order_lowpass_at_a_quarter_of_the_rate_is_the_known_biquad() {
        // Wn = 0.5: wc = 4, the classic result b = [1, 2, 1] / (2 + √2), a = [1, 0, (2-√2)/(2+√2)].
        let s2 = 2f64.sqrt();
        let d = 2.0 + s2;
        let want = [[1.0 / d, 2.0 / d, 1.0 / d, 1.0, 0.0, (2.0 - s2) / d]];
        assert_sos_close(&butter(2, BandKind::Lowpass(250.0), 1000.0).unwrap(), &want, 1e-14);
    }

    /// Values printed by scipy 1.17.1: `butter(4, [1, 40], 'bandpass', output='sos', fs=250)`.
    #[test]
    fn bandpass_matches_scipy() {
        let want: [Sos; 4] = [
            [
                0.021076377419427868,
                0.042152754838855735,
                0.021076377419427868,
                1.0,
                -0.6415909525269275,
                0.1380931404263148,
            ],
            [1.0, 2.0, 1.0, 1.0, -0.825142391088077, 0.5273348434208012],
            [1.0, -2.0, 1.0, 1.0, -1.9524899448412283, 0.9531581627953339],
            [1.0, -2.0, 1.0, 1.0, -1.9809387260559645, 0.9815723667195099],
        ];
        let got = butter(4, BandKind::Bandpass(1.0, 40.0), 250.0).unwrap();
        assert_sos_close(&got, &want, 1e-9);
    }

    /// Printed by scipy 1.17.1 (numpy 2.4): odd orders (a real pole, padded to a section),
    /// a band-pass wide enough that its poles split into real pairs, high orders, high rates.
    #[test]
    fn matches_scipy_reference_designs() {
        let cases: &[(usize, BandKind, f64, &[Sos])] = &[
            (
                3,
                BandKind::Lowpass(40.0),
                4000.0,
                &[
                    [
                        2.914649446569766e-05,
                        5.829298893139532e-05,
                        2.914649446569766e-05,
                        1.0,
                        -0.9390625058174923,
                        0.0,
                    ],
                    [1.0, 1.0, 0.0, 1.0, -1.9352943868599919, 0.939120798806424],
                ],
            ),
            (
                5,
                BandKind::Highpass(0.5),
                250.0,
                &[
                    [0.9798723409511474, -0.9798723409511474, 0.0, 1.0, -0.9875119299073144, 0.0],
                    [1.0, -2.0, 1.0, 1.0, -1.9797160185637206, 0.9798723409607435],
                    [1.0, -2.0, 1.0, 1.0, -1.9921065000622327, 0.992263800836836],
                ],
            ),
            (
                3,
                BandKind::Bandpass(0.1, 100.0),
                250.0,
                &[
                    [
                        0.5262272243662343,
                        1.0524544487324685,
                        0.5262272243662343,
                        1.0,
                        1.2505346793343937,
                        0.5458805322427782,
                    ],
                    [1.0, 0.0, -1.0, 1.0, -0.488264993226332, -0.5079435811343865],
                    [1.0, -2.0, 1.0, 1.0, -1.9974845964988732, 0.9974909076917097],
                ],
            ),
            (
                3,
                BandKind::Bandstop(45.0, 55.0),
                1000.0,
                &[
                    [
                        0.9390916523119577,
                        -1.7871403165235118,
                        0.9390916523119577,
                        1.0,
                        -1.8450684615682118,
                        0.9390625058174924,
                    ],
                    [1.0, -1.9030520739096508, 1.0, 1.0, -1.8532804968042271, 0.966529553970709],
                    [1.0, -1.9030520739096508, 1.0, 1.0, -1.8912545753752308, 0.971642093041352],
                ],
            ),
            (
                8,
                BandKind::Bandpass(0.5, 45.0),
                16000.0,
                &[
                    [
                        3.2490504827999024e-17,
                        6.498100965599805e-17,
                        3.2490504827999024e-17,
                        1.0,
                        -1.9663867859743585,
                        0.9666807511662239,
                    ],
                    [1.0, 2.0, 1.0, 1.0, -1.9713788895961526, 0.9716774153847698],
                    [1.0, 2.0, 1.0, 1.0, -1.9806772661818757, 0.9809824570080514],
                    [1.0, 2.0, 1.0, 1.0, -1.9929688845383553, 0.993279603188903],
                    [1.0, -2.0, 1.0, 1.0, -1.9996067470797085, 0.9996067873437433],
                    [1.0, -2.0, 1.0, 1.0, -1.9996708107962708, 0.9996708505471588],
                    [1.0, -2.0, 1.0, 1.0, -1.9997837639773164, 0.9997838030457443],
                    [1.0, -2.0, 1.0, 1.0, -1.9999249158456336, 0.9999249544599135],
                ],
            ),
            (
                7,
                BandKind::Lowpass(100.0),
                500.0,
                &[
                    [
                        0.004842115239346656,
                        0.009684230478693313,
                        0.004842115239346656,
                        1.0,
                        -0.15838444032453627,
                        0.0,
                    ],
                    [1.0, 2.0, 1.0, 1.0, -0.332836019197643, 0.07707998348399789],
                    [1.0, 2.0, 1.0, 1.0, -0.3879749284402362, 0.25551324199822106],
                    [1.0, 1.0, 0.0, 1.0, -0.5100847591947204, 0.6506689550407263],
                ],
            ),
        ];
        for (order, kind, fs, want) in cases {
            let got = butter(*order, *kind, *fs).unwrap();
            assert_sos_close(&got, want, 1e-9);
        }
    }

    #[test]
    fn lowpass_has_unit_dc_gain_and_a_zero_at_nyquist() {
        for order in 1..=MAX_ORDER {
            let sos = butter(order, BandKind::Lowpass(40.0), 250.0).unwrap();
            assert_eq!(sos.len(), order.div_ceil(2));
            assert!(close(gain_at(&sos, 0.0, 250.0), 1.0, 1e-12), "order {order}");
            assert!(gain_at(&sos, 125.0, 250.0) < 1e-12, "order {order}");
        }
    }

    /// The digital frequency whose prewarped value is the geometric mean of the prewarped
    /// edges: where a band filter's centre lands after the bilinear transform.
    fn warped_centre(lo: f64, hi: f64, fs: f64) -> f64 {
        let wo = (warp(lo / (fs / 2.0)) * warp(hi / (fs / 2.0))).sqrt();
        (fs / 2.0) * 2.0 / PI * (wo / 4.0).atan()
    }

    #[test]
    fn cutoffs_are_at_minus_3_db() {
        let half_power = std::f64::consts::FRAC_1_SQRT_2;
        for order in 1..=MAX_ORDER {
            let lp = butter(order, BandKind::Lowpass(30.0), 500.0).unwrap();
            assert!(close(gain_at(&lp, 30.0, 500.0), half_power, 1e-12), "lowpass order {order}");
            let hp = butter(order, BandKind::Highpass(0.5), 500.0).unwrap();
            assert!(close(gain_at(&hp, 0.5, 500.0), half_power, 1e-9), "highpass order {order}");
            assert!(gain_at(&hp, 0.0, 500.0) < 1e-12);
            assert!(close(gain_at(&hp, 250.0, 500.0), 1.0, 1e-12));
            let bp = butter(order, BandKind::Bandpass(8.0, 13.0), 500.0).unwrap();
            assert_eq!(bp.len(), order, "a band-pass of order N has 2N poles");
            assert!(close(gain_at(&bp, 8.0, 500.0), half_power, 1e-9), "bandpass order {order}");
            assert!(close(gain_at(&bp, 13.0, 500.0), half_power, 1e-9));
            assert!(close(gain_at(&bp, warped_centre(8.0, 13.0, 500.0), 500.0), 1.0, 1e-9));
            let bs = butter(order, BandKind::Bandstop(45.0, 55.0), 500.0).unwrap();
            assert!(close(gain_at(&bs, 45.0, 500.0), half_power, 1e-9), "bandstop order {order}");
            assert!(close(gain_at(&bs, 0.0, 500.0), 1.0, 1e-12));
            assert!(gain_at(&bs, warped_centre(45.0, 55.0, 500.0), 500.0) < 1e-9);
        }
    }

    #[test]
    fn sections_are_stable_and_normalised() {
        for order in 1..=MAX_ORDER {
            for kind in [
                BandKind::Lowpass(10.0),
                BandKind::Highpass(0.1),
                BandKind::Bandpass(0.5, 45.0),
                BandKind::Bandstop(48.0, 52.0),
            ] {
                for s in butter(order, kind, 4000.0).unwrap() {
                    assert_eq!(s[3], 1.0);
                    // A second-order section is stable when |a2| < 1 and |a1| < 1 + a2.
                    assert!(s[5].abs() < 1.0 && s[4].abs() < 1.0 + s[5], "{kind:?} {order}: {s:?}");
                }
            }
        }
    }

    #[test]
    fn rejects_bad_designs() {
        assert_eq!(butter(0, BandKind::Lowpass(1.0), 250.0), Err(DesignError::Order(0)));
        assert_eq!(butter(9, BandKind::Lowpass(1.0), 250.0), Err(DesignError::Order(9)));
        assert!(matches!(butter(2, BandKind::Lowpass(125.0), 250.0), Err(DesignError::Frequency { .. })));
        assert!(matches!(butter(2, BandKind::Highpass(0.0), 250.0), Err(DesignError::Frequency { .. })));
        assert!(matches!(butter(2, BandKind::Bandpass(40.0, 1.0), 250.0), Err(DesignError::Band { .. })));
        assert!(matches!(butter(2, BandKind::Lowpass(f64::NAN), 250.0), Err(DesignError::Frequency { .. })));
        assert_eq!(butter(2, BandKind::Lowpass(1.0), 0.0), Err(DesignError::Rate(0.0)));
        assert!(matches!(iirnotch(50.0, 0.0, 250.0), Err(DesignError::Q(_))));
        assert!(matches!(iirnotch(130.0, 30.0, 250.0), Err(DesignError::Frequency { .. })));
    }

    #[test]
    fn notch_has_a_zero_at_w0_and_unit_gain_far_away() {
        let s = iirnotch(50.0, 30.0, 1000.0).unwrap();
        assert!(response_at(&[s], 50.0, 1000.0).abs() < 1e-12);
        assert!(close(gain_at(&[s], 0.0, 1000.0), 1.0, 1e-12));
        assert!(close(gain_at(&[s], 500.0, 1000.0), 1.0, 1e-12));
        // The -3 dB bandwidth is w0 / q = 5/3 Hz, so 1 Hz off the notch is already attenuated
        // and 10 Hz off almost not.
        assert!(gain_at(&[s], 51.0, 1000.0) < 0.9);
        assert!(gain_at(&[s], 60.0, 1000.0) > 0.99);
    }

    /// `scipy.signal.iirnotch(50, 30, 250)` from scipy 1.17.1.
    #[test]
    fn notch_matches_scipy() {
        let want = [
            0.9794827609814495,
            -0.6053536376811252,
            0.9794827609814495,
            1.0,
            -0.6053536376811252,
            0.958965521962899,
        ];
        assert_sos_close(&[iirnotch(50.0, 30.0, 250.0).unwrap()], &[want], 1e-12);
    }
}
