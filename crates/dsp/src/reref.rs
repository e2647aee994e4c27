//! Re-referencing of planar multichannel blocks.

/// What every channel is re-referenced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The mean of all channels, sample by sample (common average reference).
    Average,
    /// One channel (by index), which then reads zero.
    Channel(usize),
}

/// Subtracts the reference from every channel of `channels × samples` planar values, in place.
/// `scratch` holds one reference value per sample (at least `samples` long); nothing allocates.
/// Sums and differences are taken in `f64`.
///
/// # Panics
/// If `data` or `scratch` is too short, or the reference channel is not below `channels`.
pub fn rereference(
    data: &mut [f32],
    channels: usize,
    samples: usize,
    reference: Reference,
    scratch: &mut [f64],
) {
    if channels == 0 || samples == 0 {
        return;
    }
    let data = &mut data[..channels * samples];
    let r = &mut scratch[..samples];
    match reference {
        Reference::Average => {
            r.fill(0.0);
            for row in data.chunks_exact(samples) {
                for (acc, &v) in r.iter_mut().zip(row) {
                    *acc += f64::from(v);
                }
            }
            let inv = 1.0 / channels as f64;
            r.iter_mut().for_each(|v| *v *= inv);
        }
        Reference::Channel(c) => {
            for (acc, &v) in r.iter_mut().zip(&data[c * samples..(c + 1) * samples]) {
                *acc = f64::from(v);
            }
        }
    }
    for row in data.chunks_exact_mut(samples) {
        for (v, &r) in row.iter_mut().zip(r.iter()) {
            *v = (f64::from(*v) - r) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_reference_leaves_every_sample_with_zero_mean() {
        let mut x = [1.0f32, 10.0, 2.0, 20.0, 6.0, 60.0];
        rereference(&mut x, 3, 2, Reference::Average, &mut [0.0; 2]);
        assert_eq!(x, [-2.0, -20.0, -1.0, -10.0, 3.0, 30.0]);
    }

    #[test]
    fn channel_reference_zeroes_that_channel() {
        let mut x = [1.0f32, 10.0, 2.0, 20.0, 6.0, 60.0];
        rereference(&mut x, 3, 2, Reference::Channel(2), &mut [0.0; 4]);
        assert_eq!(x, [-5.0, -50.0, -4.0, -40.0, 0.0, 0.0]);
    }
}
