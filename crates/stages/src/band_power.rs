//! `band_power`: power in frequency bands, from spectra.
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Context, Kind, Packet, Role, Stage, StageError, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One frequency band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub name: String,
    /// Lower edge in Hz (included).
    pub low_hz: f64,
    /// Upper edge in Hz (excluded).
    pub high_hz: f64,
}

fn d_bands() -> Vec<Band> {
    [
        ("delta", 1.0, 4.0),
        ("theta", 4.0, 8.0),
        ("alpha", 8.0, 13.0),
        ("beta", 13.0, 30.0),
        ("gamma", 30.0, 45.0),
    ]
    .into_iter()
    .map(|(n, l, h)| Band { name: n.into(), low_hz: l, high_hz: h })
    .collect()
}

/// Parameters of `band_power`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandPowerParams {
    /// The bands (default delta 1–4, theta 4–8, alpha 8–13, beta 13–30, gamma 30–45 Hz).
    #[serde(default = "d_bands")]
    pub bands: Vec<Band>,
}

/// Sums PSD × bin width over each band's bins: µV² per band per channel.
pub struct BandPower {
    /// Per band, the bin range `[first, last)`.
    bins: Vec<(usize, usize)>,
    df: f64,
    /// The input's frequency axis, for live changes of the bands.
    axis: Vec<f64>,
    /// The input stream's metadata, which the output's is made from.
    input_meta: std::sync::Arc<pipeline::StreamMeta>,
    seq: u64,
    /// The output stream's metadata (band names and edges).
    meta: std::sync::Arc<pipeline::StreamMeta>,
}

impl Stage for BandPower {
    fn process(&mut self, _: usize, pkt: Packet, cx: &mut Context<'_>) -> Result<(), StageError> {
        let h = pkt.header();
        let (ch, n, nb) = (h.channels as usize, h.samples as usize, self.bins.len());
        let mut out = cx.alloc(pipeline::Header {
            kind: Kind::BandPower,
            seq: self.seq,
            samples: nb as u32,
            meta: self.meta.clone(),
            ..h.clone()
        })?;
        self.seq += 1;
        let psd = pkt.f32s();
        let mut w = out.make_mut()?;
        let dst = w.f32s_mut();
        for c in 0..ch {
            let row = &psd[c * n..(c + 1) * n];
            for (b, &(lo, hi)) in self.bins.iter().enumerate() {
                let p: f64 = row[lo.min(n)..hi.min(n)].iter().map(|&v| v as f64).sum();
                dst[c * nb + b] = (p * self.df) as f32;
            }
        }
        cx.emit(out);
        Ok(())
    }
}

impl StageType for BandPower {
    type Params = BandPowerParams;
    const NAME: &'static str = "band_power";
    const ROLE: Role = Role::Transform;
    const ACCEPTS: &'static [Kind] = &[Kind::Spectrum];
    const DOC: &'static str = "Power in frequency bands (µV²): the PSD summed over each band's bins \
        (`low_hz` ≤ f < `high_hz`) times the bin width. Takes live changes of the bands' edges and names \
        (not their number).\n\nInputs: spectrum. Outputs: band powers, one value per band per channel.";
    const EXAMPLE: &'static str = "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - fft: { size: 256 }\n  - band_power: {}\n  - null_sink: {}\n";

    fn check(p: &Self::Params) -> Vec<ParamError> {
        let mut e = Vec::new();
        if p.bands.is_empty() {
            e.push(ParamError::new("bands", "give at least one band"));
        }
        for b in &p.bands {
            if !(b.low_hz >= 0.0 && b.low_hz < b.high_hz) {
                e.push(ParamError::new("bands", format!("band `{}`: need 0 ≤ low_hz < high_hz", b.name)));
            }
        }
        e
    }

    fn build(
        p: &Self::Params,
        inputs: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        let s = &inputs[0];
        let axis = s.meta.axis.clone();
        let df = if axis.len() > 1 { axis[1] - axis[0] } else { 1.0 };
        let out = StreamInfo { kind: Kind::BandPower, max_samples: p.bands.len(), ..s.clone() }
            .with_meta(|m| band_meta(m, &p.bands));
        let stage = BandPower {
            bins: bin_ranges(&axis, &p.bands),
            df,
            axis,
            input_meta: s.meta.clone(),
            seq: 0,
            meta: out.meta.clone(),
        };
        Ok((stage, Some(out)))
    }

    /// New band edges and names apply between packets; the number of bands sets the output's
    /// shape and needs a restart.
    fn reconfigure(&mut self, p: &Self::Params) -> Result<(), ParamError> {
        if p.bands.len() != self.bins.len() {
            return Err(ParamError::new(
                "bands",
                format!(
                    "changes the number of bands ({} to {}); restart the pipeline to change it",
                    self.bins.len(),
                    p.bands.len()
                ),
            ));
        }
        let mut meta = (*self.input_meta).clone();
        band_meta(&mut meta, &p.bands);
        self.bins = bin_ranges(&self.axis, &p.bands);
        self.meta = std::sync::Arc::new(meta);
        Ok(())
    }
}

/// Per band, the range of bins `[first, last)` whose frequencies lie in `[low_hz, high_hz)`.
fn bin_ranges(axis: &[f64], bands: &[Band]) -> Vec<(usize, usize)> {
    bands
        .iter()
        .map(|b| {
            let lo = axis.iter().position(|&f| f >= b.low_hz).unwrap_or(axis.len());
            let hi = axis.iter().position(|&f| f >= b.high_hz).unwrap_or(axis.len());
            (lo, hi)
        })
        .collect()
}

/// The band-power stream's metadata: units, band names and edges.
fn band_meta(m: &mut pipeline::StreamMeta, bands: &[Band]) {
    m.units = "uV^2".into();
    m.bands = bands.iter().map(|b| b.name.clone()).collect();
    m.axis = bands.iter().flat_map(|b| [b.low_hz, b.high_hz]).collect();
}

pipeline::register_stage!(BandPower);

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::testing::Harness;
    use pipeline::{Header, StreamMeta};
    use std::sync::Arc;

    #[test]
    fn sums_psd_times_bin_width_per_band() {
        // 0, 1, 2, … 9 Hz bins, PSD 1 everywhere except 10 in the 4–8 Hz bins.
        let meta = Arc::new(StreamMeta { axis: (0..10).map(|f| f as f64).collect(), ..Default::default() });
        let input =
            StreamInfo { kind: Kind::Spectrum, rate: 4.0, channels: 1, max_samples: 10, meta: meta.clone() };
        let params = serde_json::json!({"bands": [
            {"name": "low", "low_hz": 1, "high_hz": 4}, {"name": "mid", "low_hz": 4, "high_hz": 8}]});
        let mut h = Harness::new("band_power", params, &[input], 4).unwrap();
        assert_eq!(h.output.as_ref().unwrap().meta.bands, ["low", "mid"]);
        let psd: Vec<f32> = (0..10).map(|f| if (4..8).contains(&f) { 10.0 } else { 1.0 }).collect();
        let hdr = Header { kind: Kind::Spectrum, channels: 1, samples: 10, meta, ..Header::default() };
        let out = h.push(0, h.packet_f32(hdr, &psd)).unwrap();
        assert_eq!(out[0].header().kind, Kind::BandPower);
        assert_eq!(out[0].f32s(), &[3.0, 40.0]);

        // Live: other edges and names, the same number of bands.
        h.stage()
            .patch(&serde_json::json!({"bands": [
                {"name": "a", "low_hz": 0, "high_hz": 5}, {"name": "b", "low_hz": 5, "high_hz": 10}]}))
            .unwrap();
        let hdr = Header { kind: Kind::Spectrum, channels: 1, samples: 10, ..Header::default() };
        let out = h.push(0, h.packet_f32(hdr, &psd)).unwrap();
        assert_eq!(out[0].f32s(), &[4.0 + 10.0, 30.0 + 2.0]);
        assert_eq!(out[0].header().meta.bands, ["a", "b"]);
        let e = h.stage().patch(&serde_json::json!({"bands": [{"name": "a", "low_hz": 0, "high_hz": 5}]}));
        assert!(e.unwrap_err().contains("restart"));
    }
}
