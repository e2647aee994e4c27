//! Recording sessions (docs/recording.md): a folder per session under a data directory, named by start
//! time and participant, holding the data file, `pipeline.yaml` (the exact running
//! configuration) and `session_meta.json` (who, when, what was recorded, and what went wrong).
//!
//! A session adds a recording sink (`bdf_sink`, `edf_sink` or `csv_sink`, from the file's
//! `recording.format` unless the session says otherwise) to a checked [`Plan`], fed by the
//! pipeline's `recording.input` stage, on a thread group of its own. The caller starts the
//! pipeline, [`attach`](Session::attach)es the session to it, and [`finish`](Session::finish)es
//! the session once the pipeline has stopped. `eegd run --record DIR` and the daemon's
//! `POST /api/recording/start|stop` both go through here.
//!
//! This crate never touches the data path: it builds, reads counters and writes JSON.
#![forbid(unsafe_code)]

pub mod bids;
mod session;

pub use session::{
    list, recover, BidsInfo, MarkerEntry, MarkerOutcome, MarkerRefused, Session, SessionError, SessionMeta,
    SessionOptions, SessionStatus, SinkOutcome, MAX_AHEAD_NS, META_FILE,
};
