//! `bench fetch-floor`: a poller that only fetches (issue #14, "distance to the floor" end to
//! end). It polls the same targets at the same period as the manager in
//! `bench prometheus-compare --floors`, on the same runtime (tokio's multi-thread scheduler, a
//! worker per core, one task per target, a phase per target), reads every body whole and drops
//! it: no parse, no envelope, no output. What it spends per round is what any poller on this
//! machine spends on the fetch alone, so it bounds from below what a system round can cost:
//!
//! * `--client http`: the manager's own HTTP layer ([`monitor_strategies::Http`] from the
//!   default [`StrategySettings`], the client the system monitor uses: reqwest/hyper, keep-alive,
//!   its redirect policy, timeout and body cap), the body read into a buffer kept across rounds;
//! * `--client raw`: the stand-in's own load-check client (`server::load`): a tokio `TcpStream`
//!   per target kept open, a fixed `GET` written, the answer read to its `Content-Length` into a
//!   kept buffer: the kernel's loopback TCP, the runtime's timers and wake-ups, nothing of HTTP
//!   beyond finding the header's end;
//! * `--client hyper`: the same HTTP layer's kept-connection path, as the system monitor fetches
//!   a plain `http://` exporter ([`monitor_strategies::Http::get_into_kept`]): hyper's
//!   connection-level HTTP/1.1 client on a connection kept per target, polled inside the
//!   target's own task together with the response and its body (no spawned connection task, no
//!   pool, no redirect policy), under the same timeout and body cap, the body read into a kept
//!   buffer: what an HTTP/1.1 parser costs on top of `raw`.
//!
//! Completed rounds (status 200, the whole body) and failed ones are written to `--count-file`
//! ("OK FAILED\n") every 250 ms, which the harness reads at the window's edges.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monitor_core::PeriodGroup;
use monitor_strategies::{KeptConnection, StrategySettings, Target};

use crate::server::load;
use crate::BenchError;

/// Which fetch the floor poller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Client {
    /// The manager's HTTP layer (reqwest/hyper).
    Http,
    /// A kept TCP connection, a fixed request, the answer read to its `Content-Length`.
    Raw,
    /// The manager's kept-connection path (hyper's connection-level client, polled in the
    /// target's task).
    Hyper,
}

impl Client {
    /// The name used in results.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Client::Http => "http",
            Client::Raw => "raw",
            Client::Hyper => "hyper",
        }
    }
}

/// Rounds done so far.
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// The targets of `--targets-file`: one `IP:PORT` per line.
fn read_targets(path: &Path) -> Result<Vec<SocketAddr>, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse()
                .map_err(|e| BenchError::Usage(format!("{}: `{l}`: {e}", path.display())))
        })
        .collect()
}

/// Poll every target of `targets_file` every `period` until killed.
pub(crate) async fn run(
    client: Client,
    targets_file: PathBuf,
    period: Duration,
    count_file: PathBuf,
) -> Result<(), BenchError> {
    let targets = read_targets(&targets_file)?;
    if targets.is_empty() || period.is_zero() {
        return Err(BenchError::Usage(
            "fetch-floor needs at least one target and a period above zero".into(),
        ));
    }
    let counts = Arc::new(Counts::default());
    let http = match client {
        Client::Http | Client::Hyper => Some(
            StrategySettings::default()
                .http(Target::Monitored, PeriodGroup::System)
                .map_err(|e| BenchError::Setup(format!("building the HTTP client: {e}")))?,
        ),
        Client::Raw => None,
    };
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let n = targets.len() as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, addr) in targets.into_iter().enumerate() {
        // Spread over the period as the manager's phases are.
        let phase = period.mul_f64(f64::from(i as u32) / f64::from(n));
        let mut ticks = tokio::time::interval_at(start + phase, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let counts = Arc::clone(&counts);
        match &http {
            Some(http) => {
                let http = http.clone();
                let raw = format!("http://{addr}/metrics");
                let url = reqwest::Url::parse(&raw)
                    .map_err(|e| BenchError::Usage(format!("`{raw}`: {e}")))?;
                let kept_path = client == Client::Hyper;
                tasks.spawn(async move {
                    let mut body = Vec::new();
                    let mut kept = KeptConnection::default();
                    loop {
                        ticks.tick().await;
                        let status = if kept_path {
                            http.get_into_kept(&url, &raw, &mut body, &mut kept).await
                        } else {
                            http.get_into(&url, &raw, &mut body).await
                        };
                        count(&counts, matches!(status, Ok(200)) && !body.is_empty());
                    }
                });
            }
            None => {
                let client = load::Client::new(&format!("http://{addr}/metrics"))?;
                tasks.spawn(async move {
                    let mut conn: Option<load::Conn> = None;
                    loop {
                        ticks.tick().await;
                        let ok = raw_round(&client, &mut conn).await;
                        if !ok {
                            conn = None;
                        }
                        count(&counts, ok);
                    }
                });
            }
        }
    }
    let mut last = String::new();
    loop {
        let line = format!(
            "{} {}\n",
            counts.ok.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed)
        );
        if line != last {
            // Written whole then renamed: a reader never sees half a line.
            let tmp = count_file.with_extension("tmp");
            std::fs::write(&tmp, &line)
                .and_then(|()| std::fs::rename(&tmp, &count_file))
                .map_err(|e| BenchError::io(format!("writing {}", count_file.display()), e))?;
            last = line;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn count(counts: &Counts, ok: bool) {
    let c = if ok { &counts.ok } else { &counts.failed };
    c.fetch_add(1, Ordering::Relaxed);
}

/// One raw round: (re)connect if needed, then the stand-in's load-check GET (a fixed request,
/// the answer read to its `Content-Length`), within 5 s. `false` on any failure (the caller then
/// drops the connection).
async fn raw_round(client: &load::Client, conn: &mut Option<load::Conn>) -> bool {
    let exchange = async {
        if conn.is_none() {
            *conn = Some(client.connect().await?);
        }
        match conn.as_mut() {
            Some(c) => c.get().await,
            None => Err(std::io::Error::other("no connection")),
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), exchange).await,
        Ok(Ok(()))
    )
}

/// `(ok, failed)` of a count file; `None` when it cannot be read yet.
pub(crate) fn read_counts(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_files_are_read_back() {
        let dir = std::env::temp_dir().join(format!("fetch-floor-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("counts");
        assert_eq!(read_counts(&f), None);
        let _ = std::fs::write(&f, "12 3\n");
        assert_eq!(read_counts(&f), Some((12, 3)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
