//! `edf_sink`: records a time series as EDF+ (16-bit), markers as annotations. See
//! [`crate::recorder`] for what the recording sinks share.
use crate::recorder::{FileFormat, FileSink};
use formats::Format;

/// The EDF+ flavour of [`FileSink`].
pub struct Edf;

impl FileFormat for Edf {
    const FORMAT: Format = Format::Edf;
    const NAME: &'static str = "edf_sink";
    const DOC: &'static str = "Records a time series as EDF+ (16-bit samples; MNE, EDFbrowser and edfio open it). \
        Labels and units from the stream; physical range ±vref/gain of the ADC by default, so nothing \
        clips — but 16 bits then give steps of 2·range/65535 (5.7 µV at gain 24, vref 4.5 V): set \
        `range_uv` to trade range for resolution (`range_uv: 3000` → 0.09 µV; beyond it values clip and \
        are counted). Data records of `flush_ms` (at most 1 s) are written and flushed as they complete, \
        the record count fixed on a clean stop. Markers become EDF+ annotations. Its queue is `block` only.\n\n\
        Inputs: raw counts or voltage (uV). Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - edf_sink: { path: /tmp/eegd-example.edf, range_uv: 3000 }\n";
}

/// `edf_sink`.
pub type EdfSink = FileSink<Edf>;

pipeline::register_stage!(EdfSink);
