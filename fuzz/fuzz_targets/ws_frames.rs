//! Any bytes as what a client writes after the upgrade, read by tungstenite
//! with the server's WebSocket settings (the limits the server really uses):
//! never a panic, never a message over the hard limit.
#![no_main]

use std::io::{Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::{Role, WebSocket};
use wsgate::config::Config;

/// The client's bytes to read; writes (pongs, closes) are discarded.
struct Wire(Cursor<Vec<u8>>);

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config {
        max_message_bytes: 1024,
        ..Config::default()
    };
    let hard = config.hard_message_limit();
    let ws_config = wsgate::server::upgrade::ws_config(&config);
    let mut ws = WebSocket::from_raw_socket(
        Wire(Cursor::new(data.to_vec())),
        Role::Server,
        Some(ws_config),
    );
    for _ in 0..256 {
        match ws.read() {
            Ok(msg) => assert!(msg.len() <= hard, "a message over the hard limit"),
            Err(_) => break,
        }
    }
});
