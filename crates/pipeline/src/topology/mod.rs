//! The pipeline file: parse it with positions, decode each section, check the graph.
//!
//! Tiers, each reporting every error it finds before the next runs: YAML syntax and structure
//! ([`file`]), then stage types, parameters, names, inputs, cycles and packet kinds ([`graph`]).
pub mod decode;
pub mod diag;
pub mod file;
pub mod graph;
pub mod limits;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Span};
