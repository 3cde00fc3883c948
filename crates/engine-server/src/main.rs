//! `matching_engine`: the exchange matching engine server (the default command), and its
//! `replay` tool.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine_server::config::ServerConfig;

/// Command line of `matching_engine`.
#[derive(Parser, Debug)]
#[command(
    name = "matching_engine",
    version,
    about = "Price-time priority matching engine: TCP, UDP and multicast market data",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server options (used when no subcommand is given).
    #[command(flatten)]
    server: ServerConfig,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read CSV input lines from FILE (or stdin) and print the CSV output lines to stdout.
    Replay {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    ignore_empty_engine_vars();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Replay { file }) => replay(file),
        None => {
            init_logging();
            engine_server::server::run(cli.server)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain; returning the error from main would print
            // its Debug form, which under RUST_BACKTRACE=1 buries the cause under a backtrace.
            eprintln!("matching_engine: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// An `ENGINE_*` variable set to the empty string counts as unset: docker-compose passes
/// `ENGINE_X=${ENGINE_X}` through as empty when the host does not set it, and that must mean
/// "the default", not an invalid value.
fn ignore_empty_engine_vars() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("ENGINE_")) && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // Still single-threaded here: nothing else reads the environment concurrently.
        std::env::remove_var(k);
    }
}

/// Logs go to stderr (stdout is the replay tool's output); RUST_LOG overrides the level.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn replay(file: Option<PathBuf>) -> anyhow::Result<()> {
    let stdout = io::stdout().lock();
    let stderr = io::stderr().lock();
    let stats = match file.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            engine_core::replay::run(io::BufReader::new(f), io::BufWriter::new(stdout), stderr)?
        }
        None => engine_core::replay::run(io::stdin().lock(), io::BufWriter::new(stdout), stderr)?,
    };
    if stats.parse_errors > 0 {
        eprintln!("{} line(s) could not be parsed", stats.parse_errors);
    }
    Ok(())
}
