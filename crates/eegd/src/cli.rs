//! The headless commands: `run`, `validate`, `stages`.
use anyhow::{Context as _, Result};
use pipeline::exec::{Pipeline, PipelineState};
use pipeline::stage::{defaults_of, registry};
use pipeline::topology::graph::plan;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
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
            println!("{}: ok ({} stages, {} thread groups)", file.display(), p.stages.len(), {
                let mut g: Vec<&str> = p.stages.iter().map(|s| s.group.as_str()).collect();
                g.sort();
                g.dedup();
                g.len()
            });
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
}

pub fn run(file: &Path, duration: Option<f64>) -> Result<ExitCode> {
    let src = read(file)?;
    let plan = match plan(&file.display().to_string(), &src) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let pipeline = Pipeline::start(plan)?;
    let shared = pipeline.shared().clone();
    tracing::info!(file = %file.display(), "Pipeline running");

    // Wait for whichever comes first: Ctrl-C, the duration, or the sources ending. No polling:
    // each event is a message.
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    ctrlc::set_handler(move || {
        let _ = tx2.send(Event::Interrupted);
    })
    .context("installing the Ctrl-C handler")?;
    let waiter = shared.clone();
    std::thread::spawn(move || {
        waiter.wait_finished(None);
        let _ = tx.send(Event::Finished);
    });
    let event = match duration {
        Some(s) => rx.recv_timeout(Duration::from_secs_f64(s.max(0.0))).ok(),
        None => rx.recv().ok(),
    };
    if matches!(event, Some(Event::Interrupted)) {
        tracing::info!("Interrupted; draining");
    }
    let state = pipeline.join();
    for s in shared.stage_snapshots() {
        tracing::info!(
            stage = %s.name, state = ?s.state, packets_in = s.packets_in, packets_out = s.packets_out,
            drops = s.drops, errors = s.errors, "Stage finished"
        );
    }
    for e in shared.edge_snapshots() {
        if e.dropped > 0 {
            tracing::warn!(from = %e.from, to = %e.to, dropped = e.dropped, "Queue dropped packets");
        }
    }
    match state {
        PipelineState::Failed(reason) => {
            eprintln!("pipeline failed: {reason}");
            Ok(ExitCode::FAILURE)
        }
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
