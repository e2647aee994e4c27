//! Pure DSP for eegd: Butterworth, Chebyshev II and notch design to second-order sections, causal SOS
//! filtering across channels, decimation, Hann-windowed PSD and re-referencing. No pipeline
//! types here.
//!
//! # Contract
//! - Design equals scipy: [`butter`] = `scipy.signal.butter(…, output='sos', fs=…)` and
//!   [`iirnotch`] = `scipy.signal.iirnotch`, to 1e-9; [`SosBank`] = `scipy.signal.sosfilt` per
//!   channel with zero initial state; [`Psd`] = single-segment `scipy.signal.welch` with a
//!   Hann window and density scaling.
//! - Designs are `f64`; data is `f32`, planar (channel-major: `data[ch * samples + i]`), and
//!   filtered in `f64` (with fused multiply-adds where the CPU has them, which changes only the
//!   last bits). [`cheby2`] = `scipy.signal.cheby2(…, output='sos')` to 1e-9; [`Decimator`]
//!   uses it against aliasing. `tests/scipy_reference.rs` checks all of this against data made
//!   by `scripts/reference/make_dsp_reference.py`.
//! - Real time: [`SosBank::process`], [`Decimator::process`], [`Decimator::process_in_place`]
//!   and [`Psd::compute`] never allocate, lock or block; everything they need is allocated when
//!   they are built. Design functions allocate and belong outside the per-packet path.
#![forbid(unsafe_code)]

mod complex;
pub mod decimate;
pub mod design;
pub mod psd;
pub mod reref;
pub mod response;
pub mod sos;

pub use decimate::Decimator;
pub use design::{butter, cheby2, iirnotch, BandKind, DesignError, Sos, MAX_CHEBY2_ORDER, MAX_ORDER};
pub use psd::Psd;
pub use reref::{rereference, Reference};
pub use response::{gain_at, group_delay_s};
pub use sos::SosBank;
