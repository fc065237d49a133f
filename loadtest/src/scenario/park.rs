//! Parking: keeping idle connections alive while the run waits.
//!
//! Between its handshake and the start of the measurement a connection may
//! wait a long time (the rest of the fleet connecting, a slow worker at the
//! barrier). A connection nobody reads never answers the server's heartbeat
//! (wsgate pings every 25 s and gives up 10 s later; Socket.IO likewise), so
//! each one is parked in a small task that reads and answers pings until it is
//! released.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::stats::Live;
use crate::wire::{Client, Event};

/// A connection held by its parking task.
pub struct Parked {
    release: oneshot::Sender<()>,
    task: JoinHandle<Option<Client>>,
}

/// Parks `client`; `live.open` drops if the server closes it meanwhile.
pub fn park(mut client: Client, live: Arc<Live>) -> Parked {
    let (release, mut released) = oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = &mut released => return Some(client),
                ev = client.next_event(false) => {
                    let ok = match ev {
                        Ok(Event::SioPing) => client.sio_pong().await.is_ok(),
                        Ok(_) => true,
                        Err(_) => false,
                    };
                    if !ok {
                        live.open.fetch_sub(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
    });
    Parked { release, task }
}

/// Takes every connection back; returns those still open and how many the
/// server closed while they were parked.
pub async fn unpark_all(parked: Vec<(u64, Parked)>) -> (Vec<(u64, Client)>, u64) {
    let mut tasks = Vec::with_capacity(parked.len());
    for (g, p) in parked {
        let _ = p.release.send(());
        tasks.push((g, p.task));
    }
    let mut clients = Vec::with_capacity(tasks.len());
    let mut dropped = 0;
    for (g, task) in tasks {
        match task.await {
            Ok(Some(c)) => clients.push((g, c)),
            _ => dropped += 1,
        }
    }
    (clients, dropped)
}
