//! `bdf_sink`: records a time series as BDF+ (24-bit), markers as annotations. See
//! [`crate::recorder`] for what the recording sinks share.
use crate::recorder::{FileFormat, FileSink};
use formats::Format;

/// The BDF+ flavour of [`FileSink`].
pub struct Bdf;

impl FileFormat for Bdf {
    const DEFAULT_RANGE_UV: Option<f64> = None;
    const FORMAT: Format = Format::Bdf;
    const NAME: &'static str = "bdf_sink";
    const DOC: &'static str =
        "Records a time series as BDF+ (24-bit samples; MNE, EDFbrowser and edfio open it). \
        Labels and units from the stream; physical range ±vref/gain of the ADC (or ±`range_uv`), so one \
        file step is one ADC step; values at or beyond the range (a railed channel) are counted as clipped. \
        Data records divide the input's packets and last at most `flush_ms` (at most 1 s), so no record is \
        ever padded; they are written as they complete and flushed to the disk every `flush_ms`, with the \
        record count -1 until a clean stop fixes it, so a killed process leaves a readable file missing at \
        most the last `flush_ms`. A gap in the input's timestamps makes the file BDF+D: records keep their \
        true onsets and an annotation `gap: N samples not acquired` spans the gap. Markers posted while it \
        records become BDF+ annotations at their sample. Its queue is `block` only.\n\n\
        Inputs: raw counts or voltage (uV). Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - bdf_sink: { path: /tmp/eegd-example.bdf }\n";
}

/// `bdf_sink`.
pub type BdfSink = FileSink<Bdf>;

pipeline::register_stage!(BdfSink);
