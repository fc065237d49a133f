//! A real nginx in front of the nodes.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, log_tail, require, stop_child};
use crate::support::{eventually, temp_dir, try_http, TempDir};

/// A real nginx in front of some nodes.
pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx round-robin over `upstreams`, with WebSocket upgrades.
    pub async fn start(upstreams: &[SocketAddr]) -> Nginx {
        require("nginx", "nginx-light");
        let dir = temp_dir("nginx");
        fs::create_dir_all(dir.join("tmp")).expect("nginx temp dir");
        // Another process may take the port between the check and the bind.
        for _ in 0..3 {
            if let Some(child) = Self::launch(&dir, upstreams, free_port()).await {
                return Nginx {
                    port: child.1,
                    dir,
                    child: Some(child.0),
                };
            }
        }
        log_tail("nginx", &dir.join("error.log"));
        log_tail("nginx stderr", &dir.join("stderr.log"));
        panic!("nginx did not start; see {}", dir.display());
    }

    /// Writes the config and starts nginx; `None` when it exited at start.
    async fn launch(dir: &Path, upstreams: &[SocketAddr], port: u16) -> Option<(Child, u16)> {
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=0;\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream wsgate {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://wsgate;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503;
    }}
  }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = File::create(dir.join("stderr.log")).expect("nginx stderr log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nginx");
        let mut child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let running = child.as_mut().expect("nginx child");
        let started = eventually("nginx proxies /healthz", Duration::from_secs(10), || {
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

    /// `ws://…/ws?user=USER` through nginx.
    pub fn user_url(&self, user: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?user={user}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail("nginx", &self.dir.join("error.log"));
            log_tail("nginx stderr", &self.dir.join("stderr.log"));
        }
        stop_child(&mut self.child);
    }
}
