//! `stream-server`: the STRP and Kafka broker. See `stream-server --help` and docs/protocol.md.

use stream_server::config::Config;

// The Kafka decoders may reserve a claimed length before its bytes are there (see process_limits::huge_alloc).
#[global_allocator]
static ALLOC: process_limits::LazyHugeAlloc = process_limits::LazyHugeAlloc;

fn main() {
    ignore_sigxfsz();
    ignore_empty_stream_vars();
    let cfg: Config = cli_support::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cfg.io_threads))
        .max_blocking_threads(usize::from(cfg.worker_threads))
        .thread_name("strp")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stream-server: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(stream_server::server::run(cfg)) {
        tracing::error!("fatal: {e:#}");
        std::process::exit(1);
    }
}

/// Under a file-size limit (RLIMIT_FSIZE: `ulimit -f`, systemd `LimitFSIZE=`, a container's
/// limits) a write past the limit raises SIGXFSZ, whose default action kills the process. Ignored,
/// the write fails with EFBIG instead: the append is cut back and the client gets STORAGE_ERROR
/// (`File too large`), while the server keeps serving everything else.
fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// A `STREAM_*` variable set to the empty string counts as unset, as `ENGINE_*` ones do for the
/// matching engine: docker-compose passes `STREAM_X=${STREAM_X}` through as empty when the host
/// does not set it, and that must mean "the default", not an invalid value.
fn ignore_empty_stream_vars() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("STREAM_")) && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        // Still single-threaded here: nothing else reads the environment concurrently.
        std::env::remove_var(k);
    }
}
