//! Recording sessions on disk: one folder per session under the data directory, holding
//! `session_meta.json`, `pipeline.yaml` (the exact running configuration) and the data file.
//!
//! The daemon sees sessions only through [`SessionStore`] and [`Session`], so a fuller session
//! library can take this module's place without touching the routes. Every path a session
//! writes is made here from names the daemon chooses (a timestamp, a sanitised participant id),
//! below a root that was canonicalised once: a request cannot name a path outside it.
use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// The data file's name in a session folder, per format (`data.bdf`, `data.csv`, …).
pub fn data_file_name(format: &str) -> String {
    format!("data.{format}")
}

/// What a client asked for when it started a recording.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub participant: Option<String>,
    pub notes: Option<String>,
    /// `bdf`, `edf` or `csv`; default the pipeline file's `recording.format`.
    pub format: Option<String>,
}

/// The recorded stream's facts, for `session_meta.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamFacts {
    pub input: String,
    pub rate: f64,
    pub channels: usize,
    pub labels: Vec<String>,
    pub units: String,
}

/// The folder sessions are written under.
pub struct SessionStore {
    root: PathBuf,
}

/// Longest participant id kept in a folder name.
const MAX_PARTICIPANT: usize = 40;

impl SessionStore {
    /// Creates the data directory if needed.
    pub fn new(root: &Path) -> Result<SessionStore> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating the data directory {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
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

    /// Opens a new session folder under `dir` (from [`SessionStore::confine`]) and writes its
    /// `pipeline.yaml` and first `session_meta.json`. The data file is written by the recorder.
    pub fn open(
        &self,
        dir: &Path,
        req: &SessionRequest,
        format: &str,
        pipeline_yaml: &str,
        stream: &StreamFacts,
    ) -> Result<Session> {
        let started = SystemTime::now();
        let stamp = humantime::format_rfc3339_seconds(started).to_string().replace(':', "-");
        let participant = req.participant.as_deref().map(sanitise).filter(|p| !p.is_empty());
        let base = match &participant {
            Some(p) => format!("{stamp}_{p}"),
            None => stamp,
        };
        let (name, path) = (1..1000)
            .map(|k| if k == 1 { base.clone() } else { format!("{base}-{k}") })
            .map(|n| (n.clone(), dir.join(n)))
            .find(|(_, p)| fs::create_dir(p).is_ok())
            .context("creating the session folder")?;
        fs::write(path.join("pipeline.yaml"), pipeline_yaml).context("writing pipeline.yaml")?;
        let data_file = path.join(data_file_name(format));
        let meta = json!({
            "session": name,
            "participant": req.participant,
            "notes": req.notes,
            "format": format,
            "data_file": data_file_name(format),
            "started_at": humantime::format_rfc3339_millis(started).to_string(),
            "stopped_at": null,
            "stream": stream,
            "markers": [],
            "eegd_version": env!("CARGO_PKG_VERSION"),
        });
        let session = Session { name, dir: path, data_file, meta };
        session.write_meta()?;
        Ok(session)
    }

    /// Past sessions (folders with a `session_meta.json`), newest first.
    pub fn list(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        // The root, and the folders that `recording.data_dir` made inside it, one level deep.
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if !p.is_dir() {
                    continue;
                }
                match fs::read_to_string(p.join("session_meta.json"))
                    .ok()
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                {
                    Some(mut meta) => {
                        let rel = p.strip_prefix(&self.root).unwrap_or(&p).display().to_string();
                        meta["path"] = json!(rel);
                        let bytes = meta["data_file"]
                            .as_str()
                            .and_then(|f| fs::metadata(p.join(f)).ok())
                            .map(|m| m.len());
                        meta["bytes"] = json!(bytes);
                        out.push(meta);
                    }
                    None if dir == self.root => stack.push(p),
                    None => {}
                }
            }
        }
        out.sort_by(|a, b| b["started_at"].as_str().cmp(&a["started_at"].as_str()));
        out
    }
}

/// Keeps letters, digits, `-` and `_`; anything else becomes `_`.
fn sanitise(s: &str) -> String {
    s.chars()
        .take(MAX_PARTICIPANT)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// One open session.
pub struct Session {
    pub name: String,
    pub dir: PathBuf,
    pub data_file: PathBuf,
    meta: Value,
}

impl Session {
    fn write_meta(&self) -> Result<()> {
        let tmp = self.dir.join(".session_meta.json.tmp");
        let mut f = BufWriter::new(File::create(&tmp).context("writing session_meta.json")?);
        serde_json::to_writer_pretty(&mut f, &self.meta).context("writing session_meta.json")?;
        f.write_all(b"\n").context("writing session_meta.json")?;
        f.into_inner().map_err(|e| e.into_error()).context("writing session_meta.json")?.sync_all()?;
        fs::rename(&tmp, self.dir.join("session_meta.json")).context("writing session_meta.json")?;
        Ok(())
    }

    /// Bytes the data file holds so far.
    pub fn bytes_written(&self) -> u64 {
        fs::metadata(&self.data_file).map(|m| m.len()).unwrap_or(0)
    }

    /// Adds a marker (an event with a label at a time) to the session.
    pub fn marker(&mut self, timestamp_ns: i64, label: &str) -> Result<()> {
        if let Some(list) = self.meta["markers"].as_array_mut() {
            list.push(json!({ "timestamp_ns": timestamp_ns, "label": label }));
        }
        self.write_meta()
    }

    pub fn summary(&self) -> Value {
        json!({
            "session": self.name,
            "path": self.dir.display().to_string(),
            "data_file": self.meta["data_file"],
            "format": self.meta["format"],
            "started_at": self.meta["started_at"],
            "bytes": self.bytes_written(),
        })
    }

    /// Marks the session stopped (after the recorder closed the data file).
    pub fn close(mut self) -> Result<Value> {
        self.meta["stopped_at"] = json!(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        self.meta["bytes"] = json!(self.bytes_written());
        self.write_meta()?;
        Ok(self.summary())
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
    }

    #[test]
    fn participant_cannot_escape_the_folder_name() {
        assert_eq!(sanitise("../../etc/x"), "______etc_x");
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::new(tmp.path()).unwrap();
        let facts = StreamFacts {
            input: "v".into(),
            rate: 250.0,
            channels: 1,
            labels: vec!["C1".into()],
            units: "uV".into(),
        };
        let req = SessionRequest { participant: Some("../p01".into()), ..Default::default() };
        let s = store.open(store.root(), &req, "csv", "stages: []\n", &facts).unwrap();
        assert_eq!(s.dir.parent(), Some(store.root()));
        assert!(s.name.ends_with("____p01"), "{}", s.name);
        let summary = s.close().unwrap();
        assert_eq!(summary["format"], "csv");
        assert_eq!(store.list().len(), 1);
    }
}
