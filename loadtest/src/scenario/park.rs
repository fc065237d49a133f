//! Parking: keeping idle connections alive while the run waits.
//!
//! Between its handshake and the start of the measurement a connection may
//! wait a long time (the rest of the fleet connecting, a slow worker at the
//! barrier). A connection nobody reads never answers the server's heartbeat
//! (wsgate pings every 25 s and gives up 10 s later; Socket.IO likewise), so
//! each one is parked in a small task that reads and answers pings until it is
//! released. Measured messages that arrive meanwhile (another worker may
//! start sending a moment before this one has taken its connections back)
//! are kept, with their arrival time, and handed over with the connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::stats::Live;
use crate::wire::{now_us, Client, Event, Stamp};

/// A measured message received while parked.
pub struct Early {
    pub stamp: Stamp,
    pub id: Option<String>,
    pub at_us: u64,
}

/// At most this many early messages are kept per connection; more are
/// dropped (and show up as loss).
const EARLY_MAX: usize = 65_536;

/// A connection held by its parking task.
pub struct Parked {
    release: oneshot::Sender<()>,
    task: JoinHandle<Option<(Client, Vec<Early>)>>,
}

/// Parks `client`; `live.open` drops if the server closes it meanwhile.
pub fn park(mut client: Client, live: Arc<Live>) -> Parked {
    let (release, mut released) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut early = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = &mut released => return Some((client, early)),
                ev = client.next_event(true) => {
                    let ok = match ev {
                        Ok(Event::SioPing) => client.sio_pong().await.is_ok(),
                        Ok(Event::Message { stamp, id }) => {
                            if early.len() < EARLY_MAX {
                                early.push(Early { stamp, id, at_us: now_us() });
                            }
                            true
                        }
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

/// A connection taken back: global index, connection, early messages.
pub type Unparked = (u64, Client, Vec<Early>);

/// Takes every connection back; returns those still open and how many the
/// server closed while they were parked.
pub async fn unpark_all(parked: Vec<(u64, Parked)>) -> (Vec<Unparked>, u64) {
    let mut tasks = Vec::with_capacity(parked.len());
    for (g, p) in parked {
        let _ = p.release.send(());
        tasks.push((g, p.task));
    }
    let mut clients = Vec::with_capacity(tasks.len());
    let mut dropped = 0;
    for (g, task) in tasks {
        match task.await {
            Ok(Some((c, early))) => clients.push((g, c, early)),
            _ => dropped += 1,
        }
    }
    (clients, dropped)
}
