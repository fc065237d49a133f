//! [`TestNode`]: a node started in this process by `wsgate::start` on two
//! port-0 listeners (standalone unless the test passes a backend), for
//! tests that also look inside the node.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use wsgate::config::Config;
use wsgate::server::Server;
use wsgate::{Backend, Listeners};
use wsgate_client::{Client, ClientError, Options};

use super::{http, metric_value, token, unique, Response, API_KEY, SECRET};

/// A config with [`SECRET`] and [`API_KEY`]; everything else default.
pub fn config() -> Config {
    Config {
        jwt_secret: Some(SECRET.into()),
        api_key: Some(API_KEY.into()),
        node_id: unique("node"),
        ..Config::default()
    }
}

/// A running in-process node.
pub struct TestNode {
    pub node: Arc<Server>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// The gRPC listener, when the config had `grpc_listen` set (any
    /// address: the test binds port 0 instead).
    pub grpc: Option<SocketAddr>,
}

/// Starts a standalone node on two port-0 listeners.
pub async fn start(config: Config) -> TestNode {
    start_with(config, Backend::FromConfig).await
}

/// Starts a node with an explicit backend.
pub async fn start_with(mut config: Config, backend: Backend) -> TestNode {
    let public = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (public_addr, admin_addr) = (
        public.local_addr().expect("address"),
        admin.local_addr().expect("address"),
    );
    config.listen = public_addr;
    config.admin_listen = admin_addr;
    let grpc = match config.grpc_listen {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
        None => None,
    };
    let grpc_addr = grpc.as_ref().map(|l| l.local_addr().expect("address"));
    config.grpc_listen = grpc_addr;
    let listeners = Listeners {
        public,
        admin,
        grpc,
    };
    let node = wsgate::start(config, listeners, backend).expect("start");
    TestNode {
        node,
        public: public_addr,
        admin: admin_addr,
        grpc: grpc_addr,
    }
}

impl TestNode {
    /// `ws://…/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.public)
    }

    /// Options for `user` with a one-hour token.
    pub fn opts(&self, user: &str) -> Options {
        Options::new(self.ws_url()).token(token(user))
    }

    /// Connects `user` with a one-hour token.
    pub async fn connect(&self, user: &str) -> Client {
        self.connect_with(self.opts(user)).await.expect("connect")
    }

    /// Connects with a given token.
    pub async fn connect_token(&self, token: &str) -> Result<Client, ClientError> {
        self.connect_with(Options::new(self.ws_url()).token(token))
            .await
    }

    pub async fn connect_with(&self, opts: Options) -> Result<Client, ClientError> {
        Client::connect(opts).await
    }

    /// A server API request with the API key.
    pub async fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        api(self.admin, method, path, body).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let res = http(self.admin, "GET", "/metrics", &[], None).await;
        assert_eq!(res.status, 200);
        res.text()
    }

    /// One series' value from `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series).unwrap_or(0.0)
    }
}

/// A server API request with the API key and a JSON body, on `admin`.
pub async fn api(admin: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Response {
    let auth = format!("Bearer {API_KEY}");
    let body = body.map(|b| b.to_string().into_bytes());
    http(
        admin,
        method,
        path,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_deref(),
    )
    .await
}
