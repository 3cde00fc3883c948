//! `matching_engine`: the exchange matching engine server, and its `replay` tool.

use std::io;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Command line of `matching_engine`.
#[derive(Parser, Debug)]
#[command(name = "matching_engine", version, about = "Price-time priority matching engine")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read CSV input lines from FILE (or stdin) and print the CSV output lines to stdout.
    Replay {
        /// Input file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Replay { file }) => replay(file),
        None => anyhow::bail!("the server is not implemented yet"),
    }
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
