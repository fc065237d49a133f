//! A real HAProxy in front of the nodes, in TCP mode, sending the PROXY
//! protocol v2 header (`send-proxy-v2`) on each connection to a node.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, log_tail, require, stop_child};
use crate::support::{eventually, temp_dir, try_http, TempDir};

/// A real HAProxy in front of some nodes.
pub struct Haproxy {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Haproxy {
    /// Starts HAProxy round-robin over `upstreams`, TCP mode, `send-proxy-v2`.
    pub async fn start(upstreams: &[SocketAddr]) -> Haproxy {
        require("haproxy", "haproxy");
        let dir = temp_dir("haproxy");
        for _ in 0..3 {
            if let Some((child, port)) = Self::launch(&dir, upstreams, free_port()).await {
                return Haproxy {
                    port,
                    dir,
                    child: Some(child),
                };
            }
        }
        log_tail("haproxy", &dir.join("stderr.log"));
        panic!("haproxy did not start; see {}", dir.display());
    }

    /// Writes the config and starts HAProxy; `None` when it exited at start.
    async fn launch(dir: &Path, upstreams: &[SocketAddr], port: u16) -> Option<(Child, u16)> {
        let servers: String = upstreams
            .iter()
            .enumerate()
            .map(|(i, a)| format!("  server n{i} {a} send-proxy-v2\n"))
            .collect();
        let conf = format!(
            "global\n  maxconn 1024\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\
             frontend public\n  bind 127.0.0.1:{port}\n  default_backend wsgate\n\
             backend wsgate\n  balance roundrobin\n{servers}"
        );
        let conf_path = dir.join("haproxy.cfg");
        fs::write(&conf_path, conf).expect("write haproxy.cfg");
        let log = File::create(dir.join("stderr.log")).expect("haproxy stderr log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start haproxy");
        let mut child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let running = child.as_mut().expect("haproxy child");
        // Generous: a loaded CI machine (load 12 on 2 cores seen) is slow to start.
        let started = eventually("haproxy proxies /healthz", Duration::from_secs(20), || {
            let exited = running.try_wait().ok().flatten().is_some();
            async move {
                if exited {
                    return Some(false);
                }
                let r = try_http(addr, "GET", "/healthz", &[], None).await.ok()?;
                (r.status == 200).then_some(true)
            }
        })
        .await;
        if started {
            child.map(|c| (c, port))
        } else {
            stop_child(&mut child);
            None
        }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail("haproxy", &self.dir.join("stderr.log"));
        }
        stop_child(&mut self.child);
    }
}
