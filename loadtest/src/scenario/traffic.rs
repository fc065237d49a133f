//! `broadcast`, `rooms` and `direct`: messages flowing, measured end to end.
//!
//! All three connect their share, wait at the first barrier, then run every
//! connection through [`run_conn`] for `--duration` of sending plus a drain
//! (until deliveries and answers stop changing for 1 s, at most `--drain`).
//! The second barrier comes while connections are still open, so the server's
//! RSS under load is sampled too.
//!
//! Loss accounting:
//! - `broadcast`: senders are extra connections; every receiver should get
//!   every accepted message: expected = accepted × receivers (over all
//!   workers, computed by the driver).
//! - `rooms`: whole rooms belong to one worker; expected = Σ over rooms of
//!   accepted publishes × joined non-publishing members.
//! - `direct`: whole pairs belong to one worker; every id a sender got in a
//!   `reply ok` must reach the peer (lost otherwise); a repeated id is a
//!   duplicate; a delivered id the sender never saw accepted is unconfirmed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::conn::{run_conn, Outcome, Role, SendKind, SendPlan};
use super::park::{Early, Unparked};
use super::{close_all, park, unpark_all, Ctx, Parked};
use crate::cli::{BroadcastArgs, DirectArgs, RoomsArgs, Traffic};
use crate::link::Ctl;
use crate::stats::{HistData, WorkerResult};
use crate::wire::{Client, Target};

/// Runs every connection with its role through send + drain, meets the
/// second barrier, and returns each outcome with its tag.
pub(super) async fn measure<T: Send + 'static>(
    ctx: &Ctx,
    traffic: &Traffic,
    ctl: &mut Ctl,
    conns: Vec<(T, u64, Client, Role, Vec<Early>)>,
    until: Instant,
) -> Result<Vec<(T, Outcome)>, String> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (tag, g, client, role, early) in conns {
        let (live, stop) = (ctx.live.clone(), stop_rx.clone());
        set.spawn(async move {
            let outcome = run_conn(client, role, g as usize, live, stop, early).await;
            (tag, outcome)
        });
    }
    tokio::time::sleep_until(until.into()).await;
    let deadline = Instant::now() + traffic.drain;
    let quiet = Duration::from_secs(1).min(traffic.drain);
    let seen =
        || ctx.live.delivered.load(Ordering::Relaxed) + ctx.live.replies.load(Ordering::Relaxed);
    let (mut last, mut since) = (seen(), Instant::now());
    while Instant::now() < deadline && since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = seen();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    ctl.barrier().await?;
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(o) = joined {
            outcomes.push(o);
        }
    }
    Ok(outcomes)
}

pub(super) fn plan(
    traffic: &Traffic,
    kind: SendKind,
    rate: f64,
    sender: u64,
    start: Instant,
) -> SendPlan {
    SendPlan {
        kind,
        rate,
        window: traffic.window.max(1),
        size: traffic.size,
        start,
        until: start,
        sender,
    }
}

/// Sums outcomes into a result and closes the connections still open.
pub(super) async fn tally(ctx: &Ctx, outcomes: Vec<Outcome>, r: &mut WorkerResult) {
    let mut alive = Vec::new();
    for o in outcomes {
        r.sent += o.sent;
        r.accepted += o.accepted;
        r.delivered += o.delivered;
        r.duplicates += o.duplicates;
        r.send_secs = r.send_secs.max(o.send_secs);
        for (k, v) in o.rejected {
            *r.rejected.entry(k).or_default() += v;
        }
        match o.client {
            Some(c) => alive.push(c),
            None => {
                r.dropped += 1;
                let why = o.closed.unwrap_or_else(|| "write_failed".into());
                *r.closes.entry(why).or_default() += 1;
            }
        }
    }
    r.latency = HistData::from_hist(&ctx.live.latency.snapshot());
    r.accept_latency = HistData::from_hist(&ctx.live.accept.snapshot());
    close_all(&ctx.live, alive).await;
}

pub(super) fn start_window(ctx: &Ctx) -> (Instant, Instant) {
    let start = Instant::now();
    (start, start + ctx.common.duration)
}

pub async fn broadcast(
    ctx: &Ctx,
    args: &BroadcastArgs,
    ctl: &mut Ctl,
) -> Result<WorkerResult, String> {
    let receivers = ctx.share.range(args.connections);
    let senders = ctx.share.range(args.senders);
    let plan_ids = receivers
        .chain(senders.map(|s| args.connections + s))
        .map(|g| (g, ctx.endpoint_of(g)))
        .collect();
    let opened = ctx.open(plan_ids, 0.0).await;
    let mut result = WorkerResult {
        connections: opened.clients.len() as u64,
        connect_failures: opened.failures,
        handshake: HistData::from_hist(&opened.handshake),
        ..Default::default()
    };
    ctl.barrier().await?;

    let (clients, dropped) = unpark_all(opened.clients).await;
    result.dropped = dropped;
    let (start, until) = start_window(ctx);
    let rate = args.traffic.rate / args.senders.max(1) as f64;
    let conns = clients
        .into_iter()
        .map(|(g, client, early)| {
            let send = (g >= args.connections)
                .then(|| plan(&args.traffic, SendKind::Broadcast, rate, g, start));
            (g, g, client, sender_or_receiver(send, until), early)
        })
        .collect();
    measure_and_tally(ctx, &args.traffic, ctl, conns, until, result).await
}

/// A sender's role (sending `plan` until `until`) or, without a plan, a
/// receiver's.
pub(super) fn sender_or_receiver(plan: Option<SendPlan>, until: Instant) -> Role {
    match plan {
        Some(mut p) => {
            p.until = until;
            Role {
                send: Some(p),
                ..Role::default()
            }
        }
        None => Role {
            receive: true,
            ..Role::default()
        },
    }
}

/// Counts senders and receivers, runs the measured window and adds every
/// connection's outcome to `result`.
pub(super) async fn measure_and_tally(
    ctx: &Ctx,
    traffic: &Traffic,
    ctl: &mut Ctl,
    conns: Vec<(u64, u64, Client, Role, Vec<Early>)>,
    until: Instant,
    mut result: WorkerResult,
) -> Result<WorkerResult, String> {
    result.senders = conns.iter().filter(|c| c.3.send.is_some()).count() as u64;
    result.receivers = conns.len() as u64 - result.senders;
    let outcomes = measure(ctx, traffic, ctl, conns, until).await?;
    tally(
        ctx,
        outcomes.into_iter().map(|(_, o)| o).collect(),
        &mut result,
    )
    .await;
    Ok(result)
}

pub(super) async fn join_rooms(
    ctx: &Ctx,
    members: u64,
    clients: Vec<Unparked>,
    failures: &mut BTreeMap<String, u64>,
) -> Vec<(u64, Parked)> {
    let sem = Arc::new(Semaphore::new(ctx.common.concurrency.max(1)));
    let mut set = JoinSet::new();
    for (g, mut client, _) in clients {
        let room = ctx.room(g / members);
        let timeout = ctx.common.connect_timeout;
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = client.join(&room, timeout).await;
            (g, client, r)
        });
    }
    let mut joined = Vec::new();
    while let Some(res) = set.join_next().await {
        match res {
            Ok((g, client, Ok(()))) => joined.push((g, park(client, ctx.live.clone()))),
            Ok((_, client, Err(e))) => {
                *failures.entry(format!("join_{}", e.kind())).or_default() += 1;
                ctx.live.open.fetch_sub(1, Ordering::Relaxed);
                drop(client);
            }
            Err(_) => *failures.entry("panic".into()).or_default() += 1,
        }
    }
    joined
}

pub async fn rooms(ctx: &Ctx, args: &RoomsArgs, ctl: &mut Ctl) -> Result<WorkerResult, String> {
    if ctx.common.target != Target::Wsgate {
        return Err("rooms needs --target wsgate".into());
    }
    let k = args.members.max(1);
    let plan_ids = ctx
        .share
        .range(args.rooms)
        .flat_map(|r| (r * k..(r + 1) * k).map(|g| (g, ctx.endpoint_of(g))))
        .collect();
    let opened = ctx.open(plan_ids, 0.0).await;
    let mut failures = opened.failures;
    let (clients, dropped_early) = unpark_all(opened.clients).await;
    let joined = join_rooms(ctx, k, clients, &mut failures).await;
    let mut result = WorkerResult {
        connections: joined.len() as u64,
        connect_failures: failures,
        handshake: HistData::from_hist(&opened.handshake),
        ..Default::default()
    };
    ctl.barrier().await?;

    let (joined, dropped) = unpark_all(joined).await;
    result.dropped = dropped_early + dropped;
    let (start, until) = start_window(ctx);
    let rate = args.traffic.rate / (args.rooms * args.publishers).max(1) as f64;
    let mut receivers_in: BTreeMap<u64, u64> = BTreeMap::new();
    let conns = joined
        .into_iter()
        .map(|(g, client, early)| {
            let room = g / k;
            let role = if g % k < args.publishers {
                let kind = SendKind::Publish(ctx.room(room));
                let mut p = plan(&args.traffic, kind, rate, g, start);
                p.until = until;
                Role {
                    send: Some(p),
                    ..Role::default()
                }
            } else {
                *receivers_in.entry(room).or_default() += 1;
                Role {
                    receive: true,
                    ..Role::default()
                }
            };
            (room, g, client, role, early)
        })
        .collect::<Vec<_>>();
    result.senders = conns.iter().filter(|c| c.3.send.is_some()).count() as u64;
    result.receivers = conns.len() as u64 - result.senders;
    let outcomes = measure(ctx, &args.traffic, ctl, conns, until).await?;
    let mut expected = 0;
    for (room, o) in &outcomes {
        expected += o.accepted * receivers_in.get(room).copied().unwrap_or_default();
    }
    result.expected = Some(expected);
    tally(
        ctx,
        outcomes.into_iter().map(|(_, o)| o).collect(),
        &mut result,
    )
    .await;
    Ok(result)
}

/// Keeps the pairs whose two sides are both open and closes the rest: a
/// message to an absent peer would wait in its inbox and look lost.
async fn complete_pairs(ctx: &Ctx, clients: Vec<Unparked>) -> Vec<Unparked> {
    let mut by_pair: BTreeMap<u64, Vec<Unparked>> = BTreeMap::new();
    for c in clients {
        by_pair.entry(c.0 / 2).or_default().push(c);
    }
    let mut complete = Vec::new();
    let mut strays = Vec::new();
    for (_, members) in by_pair {
        if members.len() == 2 {
            complete.extend(members);
        } else {
            strays.extend(members.into_iter().map(|(_, c, _)| c));
        }
    }
    close_all(&ctx.live, strays).await;
    complete
}

pub async fn direct(ctx: &Ctx, args: &DirectArgs, ctl: &mut Ctl) -> Result<WorkerResult, String> {
    if ctx.common.target != Target::Wsgate {
        return Err("direct needs --target wsgate".into());
    }
    let nodes = ctx.endpoints.len() as u64;
    let pairs = ctx.share.range(args.pairs);
    let plan_ids = pairs
        .flat_map(|p| {
            let a = (p % nodes) as usize;
            let b = ((p + 1) % nodes) as usize;
            [(2 * p, a), (2 * p + 1, b)]
        })
        .collect();
    let opened = ctx.open(plan_ids, 0.0).await;
    let mut result = WorkerResult {
        connect_failures: opened.failures,
        handshake: HistData::from_hist(&opened.handshake),
        ..Default::default()
    };
    let (clients, _) = unpark_all(opened.clients).await;
    let complete = complete_pairs(ctx, clients).await;
    result.connections = complete.len() as u64;
    let parked = complete
        .into_iter()
        .map(|(g, c, _)| (g, park(c, ctx.live.clone())))
        .collect();
    ctl.barrier().await?;

    let (clients, _) = unpark_all(parked).await;
    let complete = complete_pairs(ctx, clients).await;
    result.dropped = result.connections - complete.len() as u64;
    let (start, until) = start_window(ctx);
    let rate = args.traffic.rate / (2 * args.pairs).max(1) as f64;
    let conns = complete
        .into_iter()
        .map(|(g, client, early)| {
            let kind = SendKind::Direct(ctx.user(g ^ 1));
            let mut p = plan(&args.traffic, kind, rate, g, start);
            p.until = until;
            let role = Role {
                send: Some(p),
                receive: true,
                direct: true,
            };
            (g, g, client, role, early)
        })
        .collect::<Vec<_>>();
    result.senders = conns.len() as u64;
    result.receivers = conns.len() as u64;
    let mut outcomes = measure(ctx, &args.traffic, ctl, conns, until).await?;
    outcomes.sort_by_key(|(g, _)| *g);
    let (mut lost, mut expected, mut unconfirmed) = (0, 0, 0);
    for pair in outcomes.chunks(2) {
        if let [(ga, a), (gb, b)] = pair {
            if ga ^ 1 != *gb {
                continue;
            }
            expected += (a.accepted_ids.len() + b.accepted_ids.len()) as u64;
            lost += a.accepted_ids.difference(&b.received_ids).count() as u64;
            lost += b.accepted_ids.difference(&a.received_ids).count() as u64;
            unconfirmed += b.received_ids.difference(&a.accepted_ids).count() as u64;
            unconfirmed += a.received_ids.difference(&b.accepted_ids).count() as u64;
        }
    }
    result.expected = Some(expected);
    result.lost = Some(lost);
    result.unconfirmed = unconfirmed;
    tally(
        ctx,
        outcomes.into_iter().map(|(_, o)| o).collect(),
        &mut result,
    )
    .await;
    Ok(result)
}
