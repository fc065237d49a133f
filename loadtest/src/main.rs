//! `wsgate-loadtest` command line entry point: parses arguments, raises the
//! open-file limit, and runs a scenario (as driver, or as a worker child when
//! `WSGATE_LOADTEST_WORKER` is set), a ramp, the ideal server, or the report.

use clap::Parser;
use wsgate_loadtest::cli::{Cli, Command};
use wsgate_loadtest::coord;
use wsgate_loadtest::link::{Share, WORKER_ENV};
use wsgate_loadtest::{ideal, report, Scenario};

fn main() {
    let cli = Cli::parse();
    // Use the whole hard limit: each connection is a file descriptor.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsgate-loadtest: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    std::process::exit(runtime.block_on(run(cli)));
}

async fn run(cli: Cli) -> i32 {
    let scenario = match cli.command {
        Command::Idle(a) => Scenario::Idle(a),
        Command::Connect(a) => Scenario::Connect(a),
        Command::Broadcast(a) => Scenario::Broadcast(a),
        Command::Rooms(a) => Scenario::Rooms(a),
        Command::Direct(a) => Scenario::Direct(a),
        Command::LargeRoom(a) => Scenario::LargeRoom(a),
        Command::Ramp(a) => return ramp(&a).await,
        Command::IdealServer(a) => return ideal_server(&a.listen, a.outbox).await,
        Command::Report(a) => {
            return match report::write(&a) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("wsgate-loadtest report: {e}");
                    1
                }
            };
        }
    };
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        let Some(share) = Share::from_env(&spec) else {
            eprintln!("wsgate-loadtest: bad {}={spec}", WORKER_ENV);
            return 2;
        };
        return coord::child_main(scenario, share).await;
    }
    match wsgate_loadtest::run_scenario(scenario).await {
        Ok(result) => {
            println!("{}", result.summary());
            0
        }
        Err(e) => {
            eprintln!("wsgate-loadtest: {e}");
            1
        }
    }
}

async fn ramp(args: &wsgate_loadtest::cli::RampArgs) -> i32 {
    match wsgate_loadtest::run_ramp(args).await {
        Ok(result) => {
            println!("{}", result.summary());
            0
        }
        Err(e) => {
            eprintln!("wsgate-loadtest ramp: {e}");
            1
        }
    }
}

async fn ideal_server(listen: &str, outbox: usize) -> i32 {
    let listener = match bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ideal-server: bind {listen}: {e}");
            return 1;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("ideal-server listening on {addr}"),
        Err(e) => eprintln!("ideal-server: {e}"),
    }
    match ideal::serve(listener, outbox).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ideal-server: {e}");
            1
        }
    }
}

/// Binds with a deep accept backlog, so connection storms are not throttled
/// by SYN retransmits (tokio's default backlog is 1024).
fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(65_535)
}
