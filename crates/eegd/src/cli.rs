//! The headless commands: `run`, `validate`, `stages`.
use anyhow::{Context as _, Result};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stage::{defaults_of, registry};
use pipeline::topology::graph::plan;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Exit code for an invalid pipeline file.
pub const EXIT_INVALID: u8 = 2;

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

pub fn validate(file: &Path) -> Result<ExitCode> {
    let src = read(file)?;
    match plan(&file.display().to_string(), &src) {
        Ok(p) => {
            // The groups by name, for pinning them in `runtime.groups`.
            let mut groups: Vec<&str> = p.stages.iter().map(|s| s.group.as_str()).collect();
            groups.sort();
            groups.dedup();
            println!(
                "{}: ok ({} stages; thread group{}: {})",
                file.display(),
                p.stages.len(),
                if groups.len() == 1 { "" } else { "s" },
                groups.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{} error{}", d.items.len(), if d.items.len() == 1 { "" } else { "s" });
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

enum Event {
    Interrupted,
    Finished,
    Marker(i64, String),
}

/// `eegd run`'s recording options: a session as the daemon would record it.
#[derive(clap::Args, Debug, Default)]
pub struct RecordArgs {
    /// Record a session (the pipeline's `recording.input`) into a new folder under DIR.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Participant code of the session.
    #[arg(long, default_value = "", requires = "record")]
    pub participant: String,
    /// Notes stored with the session.
    #[arg(long, default_value = "", requires = "record")]
    pub notes: String,
    /// File format of the session (default: the pipeline file's `recording.format`).
    #[arg(long, value_parser = ["bdf", "edf", "csv", "bids"], requires = "record")]
    pub format: Option<String>,
    /// `bids`: the task label (default the pipeline file's `recording.task`, else `rest`).
    #[arg(long, requires = "record")]
    pub task: Option<String>,
    /// `bids`: the session label.
    #[arg(long, requires = "record")]
    pub session: Option<String>,
    /// `bids`: the run number (default the next free one).
    #[arg(long, requires = "record")]
    pub run: Option<u32>,
    /// Each line read on standard input becomes a marker, at the time it is read.
    #[arg(long)]
    pub stdin_markers: bool,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

pub fn run(file: &Path, duration: Option<f64>, rec: &RecordArgs) -> Result<ExitCode> {
    let src = read(file)?;
    let mut plan = match plan(&file.display().to_string(), &src) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let Err(e) = crate::daemon::lsl::check_liblsl(&plan) {
        eprintln!("{}: {e}", file.display());
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let mut session = match &rec.record {
        Some(dir) => {
            let format =
                rec.format.as_deref().map(|f| serde_json::from_value(serde_json::json!(f))).transpose()?;
            let opts = recording::SessionOptions {
                participant: rec.participant.clone(),
                notes: rec.notes.clone(),
                format,
                task: rec.task.clone(),
                session: rec.session.clone(),
                run: rec.run,
            };
            Some(recording::Session::create(dir, &mut plan, &opts)?)
        }
        None => None,
    };
    let files = crate::progress::recorded_files(&plan);
    let pipeline = match Pipeline::start(plan) {
        Ok(p) => p,
        Err(e) => {
            if let Some(s) = session {
                s.abandon(&e.to_string())?;
            }
            return Err(e.into());
        }
    };
    let shared = pipeline.shared().clone();
    if let Some(s) = session.as_mut() {
        s.attach(shared.clone());
    }
    tracing::info!(file = %file.display(), "Pipeline running");
    let mut progress = crate::progress::Progress::new(
        shared.clone(),
        files,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );

    // Wait for whichever comes first: Ctrl-C, the duration, or the sources ending. No polling:
    // each event is a message.
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    ctrlc::set_handler(move || {
        let _ = tx2.send(Event::Interrupted);
    })
    .context("installing the Ctrl-C handler")?;
    if rec.stdin_markers {
        let tx3 = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                let _ = tx3.send(Event::Marker(now_ns(), line.trim().to_string()));
            }
        });
    }
    let waiter = shared.clone();
    std::thread::spawn(move || {
        waiter.wait_finished(None);
        let _ = tx.send(Event::Finished);
    });
    let deadline = duration.map(|s| std::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    loop {
        // On a terminal, wake every tick to redraw the progress line.
        let event = loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let timeout = match left {
                Some(l) if progress.live() => Some(l.min(crate::progress::TICK)),
                Some(l) => Some(l),
                None if progress.live() => Some(crate::progress::TICK),
                None => None,
            };
            match timeout {
                None => break rx.recv().ok(),
                Some(t) => match rx.recv_timeout(t) {
                    Ok(e) => break Some(e),
                    Err(RecvTimeoutError::Timeout) if left.is_none_or(|l| l > t) => progress.tick(),
                    Err(_) => break None,
                },
            }
        };
        match event {
            Some(Event::Marker(ts, text)) if !text.is_empty() => match session.as_mut() {
                Some(s) => {
                    if let Err(e) = s.add_marker_at(ts, &text) {
                        tracing::warn!(error = %e, "Marker not recorded");
                    }
                }
                None => {
                    stages::markers::MarkerHub::global().post(stages::markers::Marker::new(ts, &text));
                }
            },
            Some(Event::Marker(..)) => {}
            Some(Event::Interrupted) => {
                progress.clear();
                tracing::info!("Interrupted; draining");
                break;
            }
            _ => break,
        }
    }
    let state = pipeline.join();
    progress.clear();
    let mut recorded = true;
    let mut session_dir = None;
    if let Some(s) = session {
        let dir = s.dir().to_path_buf();
        session_dir = Some(dir.clone());
        let meta = s.finish()?;
        if meta.status != "complete" {
            eprintln!(
                "recording did not complete: {}",
                meta.recorder.and_then(|r| r.error).unwrap_or_default()
            );
            recorded = false;
        }
        println!("{}", dir.display());
    }
    for s in shared.stage_snapshots() {
        tracing::debug!(
            stage = %s.name, state = ?s.state, packets_in = s.packets_in, packets_out = s.packets_out,
            drops = s.drops, errors = s.errors, overruns = s.overruns, drift_ppm = s.drift_ppm, "Stage finished"
        );
    }
    for e in shared.edge_snapshots() {
        if e.dropped > 0 {
            tracing::warn!(from = %e.from, to = %e.to, dropped = e.dropped, "Queue dropped packets");
        }
    }
    eprint!("{}", progress.summary(session_dir.as_deref()));
    match state {
        PipelineState::Failed(reason) => {
            eprintln!("pipeline failed: {reason}");
            Ok(ExitCode::FAILURE)
        }
        _ if !recorded => Ok(ExitCode::FAILURE),
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn stages(json: bool) -> Result<ExitCode> {
    let all = registry();
    if json {
        let list = crate::daemon::catalogue();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in all {
        println!("{} ({:?})", r.name, r.role);
        for line in r.doc.lines() {
            println!("    {line}");
        }
        let schema = (r.schema)();
        let defaults = defaults_of(r).unwrap_or_default();
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, p) in props {
                let desc = p.get("description").and_then(|d| d.as_str()).unwrap_or("");
                let default = defaults.get(name).map(|d| format!(" [default: {d}]")).unwrap_or_default();
                let required = schema
                    .get("required")
                    .and_then(|r| r.as_array())
                    .is_some_and(|r| r.iter().any(|x| x == name.as_str()));
                println!("    {name}{}{default}: {desc}", if required { " (required)" } else { "" });
            }
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
