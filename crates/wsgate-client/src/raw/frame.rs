//! WebSocket frames by hand (RFC 6455 section 5): client frames are encoded
//! with any opcode and FIN bit, masked; server frames are read one at a time
//! without reassembly, so a test sees exactly what the server wrote.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Opcode of a continuation frame.
pub const CONTINUATION: u8 = 0;
/// Opcode of a text frame.
pub const TEXT: u8 = 1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 2;
/// Opcode of a close frame.
pub const CLOSE: u8 = 8;
/// Opcode of a ping frame.
pub const PING: u8 = 9;
/// Opcode of a pong frame.
pub const PONG: u8 = 10;

/// The largest server frame [`read_frame`] accepts (a bound, not a protocol
/// limit: a length past it is reported as invalid data).
pub const MAX_SERVER_FRAME: u64 = 64 * 1024 * 1024;

/// A server frame read by [`read_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame with its code (`None` when it had no payload).
    Close(Option<u16>),
}

/// One masked client frame with `opcode`, `payload` and the FIN bit as given.
pub fn encode_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one server frame. A masked frame, a length over
/// [`MAX_SERVER_FRAME`], text that is not UTF-8 or an unknown opcode is an
/// [`io::ErrorKind::InvalidData`] error (servers never send them). No
/// timeout: callers bound it.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await?;
    let opcode = h[0] & 0x0f;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).await?;
        len = u64::from_be_bytes(b);
    }
    if h[1] & 0x80 != 0 {
        return Err(invalid("a masked server frame".into()));
    }
    if len > MAX_SERVER_FRAME {
        return Err(invalid(format!("absurd server frame length {len}")));
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).await?;
    Ok(match opcode {
        TEXT => Frame::Text(
            String::from_utf8(payload).map_err(|_| invalid("server text is not UTF-8".into()))?,
        ),
        BINARY => Frame::Binary(payload),
        CLOSE => {
            Frame::Close((payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])))
        }
        PING => Frame::Ping(payload),
        PONG => Frame::Pong(payload),
        other => return Err(invalid(format!("unexpected opcode {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_lengths_and_masks() {
        for n in [0usize, 125, 126, 65535, 65536] {
            let f = encode_frame(TEXT, &vec![b'a'; n], true);
            assert_eq!(f[0], 0x81);
            assert_eq!(f[1] & 0x80, 0x80, "client frames are masked");
        }
        // An unmasked server close with code 1000.
        let mut server: &[u8] = &[0x88, 2, 0x03, 0xe8];
        assert_eq!(
            read_frame(&mut server).await.expect("frame"),
            Frame::Close(Some(1000))
        );
        let mut masked: &[u8] = &[0x81, 0x81, 0, 0, 0, 0, b'a'];
        assert_eq!(
            read_frame(&mut masked).await.expect_err("masked").kind(),
            io::ErrorKind::InvalidData
        );
    }
}
