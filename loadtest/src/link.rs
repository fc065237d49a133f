//! The link between the driver and one worker, shared by [`crate::coord`]
//! (which runs the driver and starts workers) and [`crate::scenario`] (which
//! a worker runs): which share of the run a worker does ([`Share`]), the
//! messages it sends ([`ToDriver`]), and its side of the barriers ([`Ctl`]).
//! A leaf: it imports neither of them.
//!
//! An in-process worker talks over bounded channels; a child process writes
//! JSON lines on stdout and reads one `go` line on stdin per barrier.

use std::io::Write;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::stats::{Progress, WorkerResult};

/// Environment variable that turns the process into a worker.
pub const WORKER_ENV: &str = "WSGATE_LOADTEST_WORKER";

/// Which part of the run a worker does.
#[derive(Clone, Debug)]
pub struct Share {
    pub index: usize,
    pub count: usize,
    /// Random tag shared by all workers of a run (user and room names).
    pub run_id: String,
}

impl Share {
    /// This worker's contiguous slice of `0..total`.
    pub fn range(&self, total: u64) -> std::ops::Range<u64> {
        let n = self.count as u64;
        let i = self.index as u64;
        let base = total / n;
        let extra = total % n;
        let start = i * base + i.min(extra);
        let len = base + u64::from(i < extra);
        start..start + len
    }

    /// Parses `index/count/run` from [`WORKER_ENV`].
    pub fn from_env(value: &str) -> Option<Share> {
        let mut parts = value.split('/');
        let index = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        let run_id = parts.next()?.to_string();
        (index < count).then_some(Share {
            index,
            count,
            run_id,
        })
    }
}

/// A message from a worker to the driver.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "msg", rename_all = "lowercase")]
pub enum ToDriver {
    Barrier,
    Progress { p: Progress },
    Result { r: Box<WorkerResult> },
    Failed { error: String },
}

pub(crate) enum Link {
    Local {
        tx: mpsc::Sender<(usize, ToDriver)>,
        go: mpsc::Receiver<()>,
    },
    Child {
        stdin: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    },
}

/// A worker's side of the link to the driver.
pub struct Ctl {
    pub(crate) link: Link,
    pub(crate) index: usize,
}

impl Ctl {
    /// The link of an in-process worker: messages on `tx`, barriers
    /// released on `go`.
    pub(crate) fn local(tx: mpsc::Sender<(usize, ToDriver)>, go: mpsc::Receiver<()>) -> Ctl {
        Ctl {
            link: Link::Local { tx, go },
            index: 0,
        }
    }

    /// The link of a child worker process: stdout and stdin.
    pub(crate) fn child(index: usize) -> Ctl {
        Ctl {
            link: Link::Child {
                stdin: BufReader::new(tokio::io::stdin()).lines(),
            },
            index,
        }
    }

    async fn send(&self, msg: ToDriver) {
        match &self.link {
            Link::Local { tx, .. } => {
                let _ = tx.send((self.index, msg)).await;
            }
            Link::Child { .. } => emit(&msg),
        }
    }

    /// Tells the driver this step is done and waits until it says go.
    pub async fn barrier(&mut self) -> Result<(), String> {
        self.send(ToDriver::Barrier).await;
        let ok = match &mut self.link {
            Link::Local { go, .. } => go.recv().await.is_some(),
            Link::Child { stdin } => matches!(stdin.next_line().await, Ok(Some(_))),
        };
        ok.then_some(())
            .ok_or_else(|| "driver went away".to_string())
    }
}

/// Writes one message to the driver (child workers: a JSON line on stdout).
pub(crate) fn emit(msg: &ToDriver) {
    if let Ok(line) = serde_json::to_string(msg) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_everything_once() {
        let mut next = 0;
        for index in 0..3 {
            let s = Share {
                index,
                count: 3,
                run_id: "x".into(),
            };
            let r = s.range(10);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, 10);
        assert!(Share::from_env("1/2/ab").is_some());
        assert!(Share::from_env("2/2/ab").is_none());
    }
}
