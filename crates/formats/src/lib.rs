//! File formats of eegd recordings: BDF+ (24-bit) and EDF+ (16-bit) with the EDF+ annotations
//! signal, and the CSV layout of `csv_sink`. Streaming writers and readers, tested on their own.
//!
//! This crate owns the bytes on disk and nothing else: it has no pipeline types, never spawns
//! threads and never logs. The writers allocate when created and when an annotation is added;
//! writing samples into them allocates nothing (each keeps one preallocated data record).
//!
//! No crate on crates.io did what the recorders need when this was written: `edf-rs` (0.2) and
//! `edfplus` (0.1) read and write EDF/EDF+ but not 24-bit BDF/BDF+, and write whole files rather
//! than a stream whose header is finalised on close; `edf-reader` only reads EDF. The formats
//! are small and fully specified (edfplus.info), so they are written here.
#![forbid(unsafe_code)]

pub mod civil;
pub mod csv;
pub mod edf;

pub use edf::{Annotation, Format, Reader, Record, SignalHeader, SignalSpec, Writer, WriterConfig};
