//! `edf_sink`: records a time series as EDF+ (16-bit), markers as annotations. See
//! [`crate::recorder`] for what the recording sinks share.
use crate::recorder::{FileFormat, FileSink};
use formats::Format;

/// The EDF+ flavour of [`FileSink`].
pub struct Edf;

impl FileFormat for Edf {
    const DEFAULT_RANGE_UV: Option<f64> = Some(3000.0);
    const FORMAT: Format = Format::Edf;
    const NAME: &'static str = "edf_sink";
    const DOC: &'static str =
        "Records a time series as EDF+ (16-bit samples; MNE, EDFbrowser and edfio open it). \
        Labels and units from the stream; physical range ±`range_uv` (default ±3000 µV: steps of 0.09 µV; \
        values at or beyond it are written as the limit and counted as clipped). Data records divide the \
        input's packets and last at most `flush_ms` (at most 1 s), so no record is ever padded; they are \
        written as they complete and flushed to the disk every `flush_ms`, the record count fixed on a \
        clean stop. A gap in the input's timestamps makes the file EDF+D: records keep their true onsets \
        and an annotation `gap: N samples not acquired` spans the gap. Markers become EDF+ annotations \
        at their sample. Its queue is `block` only.\n\n\
        Inputs: raw counts or voltage (uV). Outputs: none.";
    const EXAMPLE: &'static str =
        "stages:\n  - emulator: {}\n  - to_voltage: {}\n  - edf_sink: { path: /tmp/eegd-example.edf, range_uv: 3000 }\n";
}

/// `edf_sink`.
pub type EdfSink = FileSink<Edf>;

pipeline::register_stage!(EdfSink);
