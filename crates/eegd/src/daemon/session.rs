//! Where recording sessions go: the data directory, and the folders inside it that a pipeline
//! file's `recording.data_dir` may name. The sessions themselves (folder, `pipeline.yaml`,
//! `session_meta.json`, the recorder) are the `recording` crate's.
//!
//! The root is canonicalised once; a session folder is always made below it, from names the
//! `recording` crate chooses (start time, sanitised participant code): a request cannot name a
//! path outside it.
use anyhow::{Context as _, Result};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// What a client asked for when it started a recording (`POST /api/recording/start`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub participant: Option<String>,
    pub notes: Option<String>,
    /// `bdf`, `edf`, `csv` or `bids`; default the pipeline file's `recording.format`.
    pub format: Option<String>,
    /// `bids`: the task label (default the file's `recording.task`, else `rest`).
    pub task: Option<String>,
    /// `bids`: the session label (default none).
    pub session: Option<String>,
    /// `bids`: the run number (default the next free one).
    pub run: Option<u32>,
}

/// The data directory.
pub struct SessionStore {
    root: PathBuf,
}

impl SessionStore {
    /// Creates the data directory if needed.
    pub fn new(root: &Path) -> Result<SessionStore> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating the data directory {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
        recover_under(&root, 3);
        Ok(SessionStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder a pipeline file's `recording.data_dir` names, which must lie inside the data
    /// directory: a relative path without `..`, created if needed.
    pub fn confine(&self, dir: Option<&Path>) -> Result<PathBuf, String> {
        let Some(dir) = dir else { return Ok(self.root.clone()) };
        if dir.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(format!(
                "`recording.data_dir` must be a folder inside the data directory ({}), without `..`",
                self.root.display()
            ));
        }
        let p = self.root.join(dir);
        fs::create_dir_all(&p).map_err(|_| "`recording.data_dir` cannot be created".to_string())?;
        match p.canonicalize() {
            Ok(c) if c.starts_with(&self.root) => Ok(c),
            _ => Err("`recording.data_dir` leaves the data directory".to_string()),
        }
    }
}

/// Marks every session under `dir` (and the folders `recording.data_dir` may have made, up to
/// `depth` levels down) that a stopped process left `recording` as `interrupted`.
fn recover_under(dir: &Path, depth: usize) {
    if let Err(e) = recording::recover(dir) {
        tracing::warn!(error = %e, "Looking for interrupted sessions");
    }
    if depth == 0 {
        return;
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        // Plain folders only (no symlinks), and not sessions themselves.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !p.join(recording::META_FILE).exists() {
            recover_under(&p, depth - 1);
        }
    }
}

impl SessionStore {
    /// A file of a past session, by its path relative to the data directory (as
    /// `GET /api/recordings` lists it): plain names only, and it must resolve inside the data
    /// directory.
    pub fn file(&self, rel: &str) -> Result<PathBuf, String> {
        let rel = Path::new(rel);
        if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(
                "a recording file is named by its path inside the data directory, without `..`".into()
            );
        }
        match self.root.join(rel).canonicalize() {
            Ok(p) if p.starts_with(&self.root) && p.is_file() => Ok(p),
            _ => Err("no such recording file".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_cannot_leave_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path()).unwrap();
        assert!(store.confine(Some(Path::new("../x"))).is_err());
        assert!(store.confine(Some(Path::new("/etc"))).is_err());
        assert!(store.confine(Some(Path::new("a/../../b"))).is_err());
        let ok = store.confine(Some(Path::new("lab/a"))).unwrap();
        assert!(ok.starts_with(store.root()));
        assert_eq!(store.confine(None).unwrap(), store.root());
    }

    #[test]
    fn sessions_left_recording_are_marked_interrupted_at_start_up() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path()).unwrap();
        let lab = store.confine(Some(Path::new("lab/a"))).unwrap();
        let folder = lab.join("20250101T000000Z_p1");
        fs::create_dir(&folder).unwrap();
        let meta = serde_json::json!({
            "participant": "p1", "notes": "", "status": "recording", "start_time": "", "start_ns": 1,
            "stop_time": null, "stop_ns": null, "eegd_version": "0", "format": "bdf", "input": "to_voltage",
            "rate": 250.0, "channels": 1, "labels": ["Fp1"], "units": "uV", "files": ["recording.bdf"],
            "samples_written": 0, "samples_dropped_upstream": 0, "packets_dropped_upstream": 0,
            "samples_clipped": 0, "markers": [], "markers_dropped": 0, "recorder": null, "other_sinks": []
        });
        fs::write(folder.join(recording::META_FILE), meta.to_string()).unwrap();
        SessionStore::new(tmp.path()).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(folder.join(recording::META_FILE)).unwrap()).unwrap();
        assert_eq!(back["status"], "interrupted");
    }
}
