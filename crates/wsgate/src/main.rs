//! The `wsgate` binary: parse settings, start logging, bind, run until
//! SIGTERM or SIGINT, drain, exit 0. A bad setting exits 2 naming it.

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use,
    clippy::allow_attributes_without_reason
)]

use std::process::ExitCode;

use wsgate::config::Cli;

/// jemalloc instead of the system allocator (cargo feature `jemalloc`, on
/// by default): less resident memory per idle connection, no more CPU per
/// delivery (docs/benchmarks.md, "Allocator experiment"). Set in the binary
/// only: the library and its tests keep whatever allocator embeds them.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = match Cli::from_process()
        .into_config()
        .and_then(|c| c.check_auth().map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wsgate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = wsgate::telemetry::init(&config) {
        eprintln!("wsgate: {e}");
        return ExitCode::from(2);
    }
    for name in wsgate::config::unknown_env_vars(std::env::vars_os()) {
        tracing::warn!(variable = %name, "unknown WSGATE_* environment variable ignored (a typo?)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listeners = match wsgate::Listeners::bind(&config) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("wsgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        match wsgate::run(config, listeners, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsgate: {e}");
                ExitCode::from(2)
            }
        }
    })
}

/// Installs the SIGTERM and SIGINT handlers now, so a signal that arrives while
/// the node starts still drains it, and returns the future that resolves on
/// the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            // Without signal handlers the process can only be killed; run anyway.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
