//! The POST to the receiver: hyper's HTTP/1.1 client on one kept-alive
//! connection (TLS by rustls with the system's roots for `https://`),
//! every request bounded by `--webhook-timeout`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::sign;
pub use crate::config::webhooks::ReceiverUrl;

/// Most of a receiver's answer that is read (the rest closes the connection).
const MAX_ANSWER: usize = 64 * 1024;

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("cannot connect to the webhook receiver")]
    Connect(#[source] std::io::Error),
    #[error("TLS with the webhook receiver failed")]
    Tls(#[source] std::io::Error),
    #[error("HTTP with the webhook receiver failed")]
    Http(#[source] hyper::Error),
    #[error("the webhook receiver did not answer within {0:?}")]
    Timeout(Duration),
    #[error("bad webhook request")]
    Request(#[source] http::Error),
}

/// One receiver, one connection at a time.
pub struct Poster {
    url: ReceiverUrl,
    timeout: Duration,
    tls: Option<TlsConnector>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Poster {
    pub fn new(url: ReceiverUrl, timeout: Duration) -> Poster {
        let tls = url.tls.then(|| {
            let mut roots = RootCertStore::empty();
            // A certificate the system store cannot parse is skipped; the
            // receiver's chain is checked against the rest.
            for cert in rustls_native_certs::load_native_certs().certs {
                if roots.add(cert).is_err() {
                    tracing::debug!("Skipped a system root certificate.");
                }
            }
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            match config {
                Ok(c) => TlsConnector::from(Arc::new(c)),
                // ring supports the default versions: this cannot happen.
                Err(_) => TlsConnector::from(Arc::new(
                    ClientConfig::builder()
                        .with_root_certificates(RootCertStore::empty())
                        .with_no_client_auth(),
                )),
            }
        });
        Poster {
            url,
            timeout,
            tls,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PostError> {
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(PostError::Connect)?;
        // Small batches go out at once.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set.");
        }
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = ServerName::try_from(self.url.host.clone()).map_err(|e| {
                    PostError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let stream = tls.connect(name, tcp).await.map_err(PostError::Tls)?;
                handshake(stream).await
            }
        }
    }

    /// POSTs `body` signed at `t`; returns the answer's status.
    pub async fn post(&mut self, body: Bytes, signature: &str) -> Result<u16, PostError> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.post_inner(body, signature)).await {
            Ok(r) => {
                if r.is_err() {
                    self.sender = None;
                }
                r
            }
            Err(_) => {
                self.sender = None;
                Err(PostError::Timeout(limit))
            }
        }
    }

    async fn post_inner(&mut self, body: Bytes, signature: &str) -> Result<u16, PostError> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
            sender.ready().await.map_err(PostError::Http)?;
        }
        let request = Request::post(self.url.path.as_str())
            .header(http::header::HOST, self.url.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "wsgate-webhooks")
            .header(sign::HEADER, signature)
            .body(Full::new(body))
            .map_err(PostError::Request)?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(PostError::Http)?;
        let status = answer.status().as_u16();
        // Read (a bounded part of) the answer so the connection can be reused.
        let whole = Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .is_ok();
        if whole {
            self.sender = Some(sender);
        }
        Ok(status)
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(PostError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "Webhook connection ended.");
        }
    });
    Ok(sender)
}
