//! Packet kinds and headers. The packet itself, with its pooled storage, is [`crate::Packet`].
use crate::stream::StreamMeta;
use serde::Serialize;
use std::sync::Arc;

/// What the samples of a packet are. Stages declare the kinds they take and give; the graph
/// builder rejects a mismatch before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Raw ADC counts, `i32` holding a sign-extended 24-bit value.
    #[default]
    Raw,
    /// Time series in microvolts, `f32`.
    Voltage,
    /// Power spectral density per channel, µV²/Hz, `f32`, one spectrum per packet.
    Spectrum,
    /// Band powers per channel, µV², `f32`, one row of bands per packet.
    BandPower,
}

impl Kind {
    /// Time series kinds: one value per channel per sample instant.
    pub const TIME_SERIES: &'static [Kind] = &[Kind::Raw, Kind::Voltage];
    /// Every kind.
    pub const ANY: &'static [Kind] = &[Kind::Raw, Kind::Voltage, Kind::Spectrum, Kind::BandPower];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw counts",
            Kind::Voltage => "voltage",
            Kind::Spectrum => "spectrum",
            Kind::BandPower => "band powers",
        }
    }
}

/// Everything about a packet except its samples.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Which source the packet descends from.
    pub stream_id: u16,
    pub kind: Kind,
    /// Per stream, +1 per packet, so a gap is visible.
    pub seq: u64,
    /// Time of the first sample in ns since the UNIX epoch: the first DRDY, then + n/rate.
    pub timestamp_ns: i64,
    /// Samples per second per channel (for spectra: spectra per second).
    pub rate: f64,
    pub channels: u32,
    /// Samples per channel in this packet (for spectra: bins).
    pub samples: u32,
    /// Monotonic clock (ns, `CLOCK_MONOTONIC`) when the source had the packet's last sample:
    /// the start of the end-to-end latency measurement.
    pub ready_ns: u64,
    /// Labels, units and gains, built once per graph.
    pub meta: Arc<StreamMeta>,
}

impl Header {
    /// Number of values (channels × samples).
    pub fn len(&self) -> usize {
        self.channels as usize * self.samples as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
