//! The gRPC side of the harness: a connected tonic channel to a node's
//! `--grpc-listen` address, and requests carrying the API key.

use std::net::SocketAddr;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use super::{API_KEY, T};

/// A channel to the gRPC listener at `addr`, with the harness's timeouts.
pub async fn grpc_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a gRPC URI")
        .connect_timeout(T)
        .timeout(T)
        .connect()
        .await
        .expect("gRPC connect")
}

/// `message` with the harness's API key as `authorization` metadata.
pub fn authed<M>(message: M) -> Request<M> {
    with_key(message, &format!("Bearer {API_KEY}"))
}

/// `message` with `authorization` set to exactly `authorization`.
pub fn with_key<M>(message: M, authorization: &str) -> Request<M> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(authorization).expect("an ASCII header value"),
    );
    req
}
