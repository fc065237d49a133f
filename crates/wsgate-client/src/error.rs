//! [`ClientError`]: what went wrong, by cause; [`CloseInfo`]: how a
//! connection ended.

use tokio_tungstenite::tungstenite::Error as WsError;
use wsgate_protocol::{ErrorCode, ServerFrame};

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code the server sent; `None` when the connection ended
    /// without a close frame.
    pub code: Option<u16>,
    /// The close reason, or what ended the connection.
    pub reason: String,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL or header: {0}")]
    BadRequest(String),
    #[error("cannot connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("upgrade refused with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("WebSocket error: {0}")]
    WebSocket(#[source] Box<WsError>),
    #[error("timed out")]
    Timeout,
    #[error("connection closed: {0:?}")]
    Closed(CloseInfo),
    #[error("undecodable server frame: {0}")]
    Decode(String),
    #[error("cannot encode the frame: {0}")]
    Encode(String),
    #[error("server error {code}: {message}")]
    Server {
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error("unexpected frame: {0:?}")]
    Unexpected(Box<ServerFrame>),
    #[error("the send queue is full")]
    QueueFull,
}

impl ClientError {
    /// The error code, for [`ClientError::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's close code, for [`ClientError::Closed`].
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed(info) => info.code,
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Refused`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the error means the connection is gone (closed, reset, or
    /// a protocol error that ended it).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            ClientError::Closed(_) | ClientError::Io(_) | ClientError::WebSocket(_)
        )
    }
}

impl From<WsError> for ClientError {
    /// A refused upgrade keeps its status and body; an I/O error stays an
    /// [`std::io::Error`] (its `raw_os_error` tells EMFILE from a reset).
    fn from(e: WsError) -> ClientError {
        match e {
            WsError::Http(res) => ClientError::Refused {
                status: res.status().as_u16(),
                body: res
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            WsError::Io(e) => ClientError::Io(e),
            e => ClientError::WebSocket(Box::new(e)),
        }
    }
}
