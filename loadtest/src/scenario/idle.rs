//! `idle` and `connect`: what connections cost, without traffic.
//!
//! `idle` opens its share, lets the server settle, then holds every connection
//! (reading, answering Socket.IO pings) for `--duration`; the driver samples
//! the server's RSS and CPU around that hold, so the result has RSS before any
//! connection, RSS with all of them open, the slope in KiB per connection, and
//! the server CPU an idle fleet costs (heartbeats).
//!
//! `connect` opens nothing before the first barrier: the storm is the
//! measurement. Connections go out as fast as `--concurrency` allows (or paced
//! to `--connect-rate`); each handshake (TCP connect, upgrade, `welcome` or
//! Socket.IO `40`) is timed, failures are counted by cause, and all of them
//! stay open until the driver has sampled the server.

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::conn::{run_conn, Role};
use super::{close_all, unpark_all, Ctx};
use crate::cli::{ConnectArgs, IdleArgs};
use crate::link::Ctl;
use crate::stats::{HistData, WorkerResult};

pub async fn idle(ctx: &Ctx, args: &IdleArgs, ctl: &mut Ctl) -> Result<WorkerResult, String> {
    let plan = ctx
        .share
        .range(args.connections)
        .map(|g| (g, ctx.endpoint_of(g)))
        .collect();
    let opened = ctx.open(plan, 0.0).await;
    tokio::time::sleep(args.settle).await;
    let connections = opened.clients.len() as u64;
    ctl.barrier().await?;

    let (clients, mut dropped) = unpark_all(opened.clients).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (g, client, early) in clients {
        let (live, stop) = (ctx.live.clone(), stop_rx.clone());
        set.spawn(run_conn(
            client,
            Role::default(),
            g as usize,
            live,
            stop,
            early,
        ));
    }
    tokio::time::sleep(ctx.common.duration).await;
    ctl.barrier().await?;

    let _ = stop_tx.send(true);
    let mut alive = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.ok().and_then(|o| o.client) {
            Some(c) => alive.push(c),
            None => dropped += 1,
        }
    }
    close_all(&ctx.live, alive).await;
    Ok(WorkerResult {
        connections,
        connect_failures: opened.failures,
        dropped,
        handshake: HistData::from_hist(&opened.handshake),
        ..Default::default()
    })
}

pub async fn connect(ctx: &Ctx, args: &ConnectArgs, ctl: &mut Ctl) -> Result<WorkerResult, String> {
    let plan = ctx
        .share
        .range(args.connections)
        .map(|g| (g, ctx.endpoint_of(g)))
        .collect();
    ctl.barrier().await?;
    let rate = args.connect_rate / ctx.share.count as f64;
    let started = std::time::Instant::now();
    let opened = ctx.open(plan, rate).await;
    let storm_secs = started.elapsed().as_secs_f64();
    ctl.barrier().await?;
    let connections = opened.clients.len() as u64;
    let (clients, dropped) = unpark_all(opened.clients).await;
    close_all(&ctx.live, clients.into_iter().map(|(_, c, _)| c)).await;
    Ok(WorkerResult {
        connections,
        dropped,
        connect_failures: opened.failures,
        storm_secs,
        handshake: HistData::from_hist(&opened.handshake),
        ..Default::default()
    })
}
