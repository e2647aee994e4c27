//! The built-in stages of eegd, one file each, registered with `register_stage!`.
//!
//! Each stage is thin: parameters, kinds, and a `process` that calls into the `dsp` library or
//! a sink's writer. Nothing here knows about threads, queues or HTTP.
#![forbid(unsafe_code)]

pub mod ads1299;
pub mod align_and_zip;
pub mod band_power;
pub mod bdf_sink;
pub mod broker;
pub mod csv_sink;
pub mod downsample;
pub mod edf_sink;
pub mod emulator;
pub mod fft;
pub mod file_source;
pub mod files;
pub mod filter;
pub mod gain;
pub mod labels;
pub mod lsl_sink;
pub mod lsl_source;
pub mod markers;
pub mod notch;
pub mod null_sink;
pub mod quality;
pub mod recorder;
pub mod rereference;
pub mod select;
pub mod to_voltage;
pub mod websocket_sink;

/// The names of every stage this crate registers. The binary calls this so the linker keeps
/// the registrations (dtolnay/inventory#7), and a test checks the registry against it.
pub const BUILT_IN: &[&str] = &[
    "ads1299",
    "align_and_zip",
    "band_power",
    "bandpass",
    "bandstop",
    "bdf_sink",
    "csv_sink",
    "downsample",
    "edf_sink",
    "emulator",
    "fft",
    "file_source",
    "gain",
    "highpass",
    "lowpass",
    "lsl_sink",
    "lsl_source",
    "notch",
    "null_sink",
    "rereference",
    "select",
    "to_voltage",
    "websocket_sink",
];

/// Makes sure this crate is linked (and its registrations with it).
pub fn link() -> usize {
    BUILT_IN.len()
}

/// A packet's channel count against the count the stage (`who`, as the message names it) was
/// built for.
pub(crate) fn check_channels(channels: usize, built: usize, who: &str) -> Result<(), pipeline::StageError> {
    if channels == built {
        return Ok(());
    }
    Err(pipeline::StageError::msg(format!("packet has {channels} channels, {who} was built for {built}")))
}
