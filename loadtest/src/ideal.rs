//! The ideal fan-out server: the ceiling wsgate is measured against.
//!
//! The smallest tokio program that does the job: accept WebSockets, and write
//! every text frame any client sends to every client (sender included). No
//! protocol, no auth, no Redis. One task per connection selects between its
//! socket and its outbox. A received frame is shared, not copied: tungstenite's
//! `Utf8Bytes` is reference-counted `Bytes`, so fan-out clones a pointer per
//! client. Each outbox is a bounded channel; a client whose outbox is full is
//! dropped (slow consumer), the same policy wsgate has (close 1013).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::wire::{ws_config, Message};

/// Who is connected: connection id → outbox.
#[derive(Default)]
struct Hub {
    clients: RwLock<HashMap<u64, mpsc::Sender<Message>>>,
    next: AtomicU64,
}

impl Hub {
    fn fan_out(&self, msg: &Message) {
        let mut slow = Vec::new();
        if let Ok(clients) = self.clients.read() {
            for (id, tx) in clients.iter() {
                if tx.try_send(msg.clone()).is_err() {
                    slow.push(*id);
                }
            }
        }
        if !slow.is_empty() {
            if let Ok(mut clients) = self.clients.write() {
                for id in slow {
                    clients.remove(&id);
                }
            }
        }
    }
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, outbox: usize) -> std::io::Result<()> {
    let hub = Arc::new(Hub::default());
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(session(hub.clone(), tcp, outbox.max(1)));
            }
            // Out of file descriptors or similar: back off briefly, keep serving.
            Err(e) => {
                eprintln!("ideal-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn session(hub: Arc<Hub>, tcp: TcpStream, outbox: usize) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())).await
    else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(outbox);
    let id = hub.next.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut clients) = hub.clients.write() {
        clients.insert(id, tx);
    }
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(m @ Message::Text(_))) => hub.fan_out(&m),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => {
                let Some(m) = out else { break };
                let mut ok = ws.feed(m).await.is_ok();
                let mut batch = 1;
                while ok && batch < 256 {
                    batch += 1;
                    match rx.try_recv() {
                        Ok(m) => ok = ws.feed(m).await.is_ok(),
                        Err(_) => break,
                    }
                }
                if !ok || ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    if let Ok(mut clients) = hub.clients.write() {
        clients.remove(&id);
    }
}
