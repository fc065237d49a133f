//! permessage-deflate (RFC 7692) with `--compression`: the offer parsed at the
//! upgrade, and the two transforms of a message's payload.
//!
//! No context takeover on either side: the 101 always answers
//! `server_no_context_takeover; client_no_context_takeover`, so each message
//! is deflated and inflated on its own and a connection keeps no deflate
//! state (no 32 KiB window per socket, no `z_stream` per socket). That is what
//! lets an outgoing payload be compressed once and the same bytes be written
//! to every receiver that negotiated the extension ([`compress`], cached per
//! codec in [`crate::hub::encoding::Outgoing`]).
//!
//! Inbound, [`inflate`] bounds its OUTPUT at the hard message limit: it
//! inflates into a buffer that grows in steps and never past `limit + 1`
//! bytes, and stops with [`InflateError::TooBig`] (close 1009) once the message
//! would exceed it, so a deflate bomb costs at most the limit in memory.
//! Data that does not inflate is a protocol error (1002: RFC 7692 asks the
//! endpoint to fail the connection and names no close code).

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Why a compressed message could not be inflated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// It inflates to more than the limit (close 1009).
    #[error("a compressed message over the hard limit of {limit} bytes once inflated")]
    TooBig { limit: usize },
    /// It is not raw deflate data (close 1002).
    #[error("invalid compressed data")]
    Corrupt,
}

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";
/// The answer to an offer (RFC 7692 7.1): neither side keeps a window.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// The answer to an offer that asked for `server_max_window_bits=15`, which
/// the server must echo (7.1.2.1).
const ANSWER_15: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15";
/// The tail a sync flush ends with, removed before sending (7.2.1) and
/// appended before inflating (7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The first step of an inflate buffer's growth.
const STEP: usize = 4096;

/// The `Sec-WebSocket-Extensions` answer to the client's offers (the header's
/// values, in order), or `None` when no `permessage-deflate` offer can be
/// honoured. Offers are tried in the client's order; one with an unknown or
/// repeated parameter, or a window size outside 8..=15, is declined. The
/// compressor uses a 15-bit window, so an offer limiting the server's window
/// below 15 bits is declined too; a client window limit needs no answer (the
/// inflater accepts any window up to 15 bits).
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(accept_offer)
}

/// The answer to one offer (`name; param; param=value`), or `None`.
fn accept_offer(offer: &str) -> Option<&'static str> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    // server_no_context_takeover, client_no_context_takeover,
    // server_max_window_bits, client_max_window_bits: each at most once.
    let mut seen = [false; 4];
    let mut server_bits = false;
    for part in parts.filter(|p| !p.is_empty()) {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (part, None),
        };
        let index = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => 0,
            "client_no_context_takeover" if value.is_none() => 1,
            "server_max_window_bits" => {
                // A limit below 15 bits is one this compressor cannot keep.
                if window_bits(value?)? != 15 {
                    return None;
                }
                server_bits = true;
                2
            }
            "client_max_window_bits" => {
                if let Some(v) = value {
                    window_bits(v)?;
                }
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some(if server_bits { ANSWER_15 } else { ANSWER })
}

/// A parameter value without its quotes (a quoted-string is allowed, 7.1).
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(v),
    }
}

/// A window size: 8 to 15, as digits without a leading zero (7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// `payload` deflated as one message (raw deflate, sync flush, the 4-byte
/// tail removed), or `None` if the compressor failed (then the payload goes
/// out uncompressed).
pub fn compress(payload: &[u8]) -> Option<Bytes> {
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let mut at = 0;
    loop {
        let before = z.total_in();
        z.compress_vec(&payload[at..], &mut out, FlushCompress::Sync)
            .ok()?;
        at += usize::try_from(z.total_in() - before).ok()?;
        // The flush is complete once the input is taken and room was left.
        if at == payload.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if !out.ends_with(&TAIL) {
        return None;
    }
    out.truncate(out.len() - TAIL.len());
    Some(Bytes::from(out))
}

/// A compressed message's payload inflated, at most `limit` bytes: more is
/// [`InflateError::TooBig`], found without holding more than `limit + 1`
/// bytes; data that is not raw deflate is [`InflateError::Corrupt`].
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let corrupt = |_| InflateError::Corrupt;
    let mut z = Decompress::new(false);
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).max(STEP).min(cap));
    for (input, flush) in [
        (data, FlushDecompress::None),
        (&TAIL[..], FlushDecompress::Sync),
    ] {
        let mut at = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(InflateError::TooBig { limit });
                }
                let grow = out.capacity().max(STEP).min(cap - out.len());
                out.reserve_exact(grow);
            }
            let (before_in, before_out) = (z.total_in(), out.len());
            let status = z
                .decompress_vec(&input[at..], &mut out, flush)
                .map_err(corrupt)?;
            at += usize::try_from(z.total_in() - before_in).unwrap_or(input.len());
            if out.len() > limit {
                return Err(InflateError::TooBig { limit });
            }
            if status == Status::StreamEnd {
                // A final block (BFINAL) ends the message; the rest is ignored.
                return Ok(out);
            }
            let room_left = out.len() < out.capacity();
            if at >= input.len() && room_left {
                break;
            }
            if room_left && z.total_in() == before_in && out.len() == before_out {
                // Neither input taken nor output made with room to spare.
                return Err(InflateError::Corrupt);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
