//! `large-room`: one room with many members (#15: 10,000 join within 2 s,
//! then 20 messages/s with no loss, no 1013 and p99 <= 250 ms).
//!
//! Every worker opens its share of the members (spread over the URLs, so a
//! cluster gets members on every node), then joins them all to the one room,
//! at most `--concurrency` joins in flight; the join time is from the first
//! join sent to the last `join` ok (the slowest worker's, in the result). The
//! first `--senders` members publish at their share of `--rate`; the others
//! count deliveries. Expected deliveries are accepted publishes × receiving
//! members over all workers (as for `broadcast`). Connections the server
//! closes during the measurement are counted by close code (`close_1013`).
//!
//! The peers have no rooms: against them (`--target raw` or `socketio`) this
//! is the plain `broadcast` to `members - senders` receivers with `senders`
//! senders, and no join time.

use std::time::Instant;

use super::conn::SendKind;
use super::traffic::{
    broadcast, join_rooms, measure_and_tally, plan, sender_or_receiver, start_window,
};
use super::{unpark_all, Ctx};
use crate::cli::{BroadcastArgs, LargeRoomArgs};
use crate::link::Ctl;
use crate::stats::{HistData, WorkerResult};
use crate::wire::Target;

pub async fn large_room(
    ctx: &Ctx,
    args: &LargeRoomArgs,
    ctl: &mut Ctl,
) -> Result<WorkerResult, String> {
    let senders = args.senders.max(1).min(args.members.max(1));
    if ctx.common.target != Target::Wsgate {
        let plain = BroadcastArgs {
            common: ctx.common.clone(),
            traffic: args.traffic.clone(),
            connections: args.members.saturating_sub(senders),
            senders,
        };
        return broadcast(ctx, &plain, ctl).await;
    }
    let n = args.members.max(1);
    let plan_ids = ctx
        .share
        .range(n)
        .map(|g| (g, ctx.endpoint_of(g)))
        .collect();
    let opened = ctx.open(plan_ids, 0.0).await;
    let mut failures = opened.failures;
    let (clients, dropped_early) = unpark_all(opened.clients).await;
    let began = Instant::now();
    // Room of member g is g / n = 0 for every member: one room.
    let joined = join_rooms(ctx, n, clients, &mut failures).await;
    let mut result = WorkerResult {
        connections: joined.len() as u64,
        connect_failures: failures,
        handshake: HistData::from_hist(&opened.handshake),
        join_secs: if joined.is_empty() {
            0.0
        } else {
            began.elapsed().as_secs_f64()
        },
        ..Default::default()
    };
    ctl.barrier().await?;

    let (joined, dropped) = unpark_all(joined).await;
    result.dropped = dropped_early + dropped;
    let (start, until) = start_window(ctx);
    let rate = args.traffic.rate / senders as f64;
    let room = ctx.room(0);
    let conns = joined
        .into_iter()
        .map(|(g, client, early)| {
            let send = (g < senders).then(|| {
                plan(
                    &args.traffic,
                    SendKind::Publish(room.clone()),
                    rate,
                    g,
                    start,
                )
            });
            (g, g, client, sender_or_receiver(send, until), early)
        })
        .collect();
    measure_and_tally(ctx, &args.traffic, ctl, conns, until, result).await
}
