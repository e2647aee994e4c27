//! What flows on an edge: the stream's shape, fixed when the graph is built.
use crate::packet::Kind;
use serde::Serialize;
use std::sync::Arc;

/// Per-stream facts that do not change packet to packet, shared by every packet of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct StreamMeta {
    /// Identifies the source, distinct for each source in a pipeline.
    pub stream_id: u16,
    /// One label per channel (`Fp1`, `Ch3`, … or for band powers `Ch1.alpha`).
    pub labels: Vec<String>,
    /// Unit of the values: `counts`, `uV`, `uV^2/Hz`, `uV^2`.
    pub units: String,
    /// Per-channel PGA gain of the ADC (raw and voltage streams).
    pub gains: Vec<f64>,
    /// ADC reference voltage in volts.
    pub vref: f64,
    /// Sensor identity (`emulator`, `ads1299:/dev/spidev0.0`, a file path).
    pub sensor_id: String,
    /// For spectra: the frequency of each bin in Hz; for band powers: the band edges `[lo, hi]`
    /// flattened. Empty for time series.
    pub axis: Vec<f64>,
    /// Names of the bands, for band-power streams.
    pub bands: Vec<String>,
    /// Group delay added by the stages so far, in seconds (at the pass-band centre).
    pub group_delay_s: f64,
}

/// The shape of the packets on one edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    pub kind: Kind,
    /// Samples per second per channel (for spectra: spectra per second).
    pub rate: f64,
    pub channels: usize,
    /// The most samples per channel one packet carries (for spectra: bins).
    pub max_samples: usize,
    pub meta: Arc<StreamMeta>,
}

impl StreamInfo {
    /// Words of pool storage one packet of this stream needs.
    pub fn words(&self) -> usize {
        self.channels * self.max_samples
    }

    /// A copy with another metadata record (stages that change labels, units or delay).
    pub fn with_meta(&self, f: impl FnOnce(&mut StreamMeta)) -> StreamInfo {
        let mut meta = (*self.meta).clone();
        f(&mut meta);
        StreamInfo { meta: Arc::new(meta), ..self.clone() }
    }
}
