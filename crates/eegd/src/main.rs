//! `eegd`: run, check, serve and benchmark pipelines.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod daemon;
mod progress;
mod stage_doc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Every allocation is counted: `eegd bench` reports the data path's allocations from it.
#[global_allocator]
static ALLOC: pipeline::alloc_count::CountingAlloc = pipeline::alloc_count::CountingAlloc;

#[derive(Parser)]
#[command(name = "eegd", version, about = "Real-time EEG acquisition and signal processing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline headless; Ctrl-C or the duration stops it cleanly.
    Run {
        file: PathBuf,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        #[command(flatten)]
        record: cli::RecordArgs,
    },
    /// Check a pipeline file: exit 0, or exit 2 with `file:line:col: message` for every error.
    Validate { file: PathBuf },
    /// Every stage type with its parameters, defaults and documentation.
    Stages {
        /// The catalogue as JSON, with each type's parameter schema.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// The stage reference as Markdown (docs/stages.md is this output).
        #[arg(long)]
        markdown: bool,
    },
    /// The daemon: HTTP/WebSocket API, live parameters, recordings, metrics and the browser UI.
    Serve(daemon::ServeArgs),
    /// The reference benchmark, beside the naive baseline (BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    stages::link();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Run { file, duration, record } => cli::run(&file, duration, &record),
        Command::Validate { file } => cli::validate(&file),
        Command::Stages { markdown: true, .. } => {
            print!("{}", stage_doc::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Stages { json, .. } => cli::stages(json),
        Command::Serve(args) => daemon::serve(args),
        Command::Bench(args) => bench::run(args),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
