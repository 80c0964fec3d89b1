//! The manager's own health over HTTP (`--metrics-addr`): `GET /metrics` in Prometheus text format
//! (monitors by state, rounds, publishes, deaths, config errors, pings, and the RabbitMQ outbox) and
//! `GET /health` (200 `ok`, or 503 with the reason).
//!
//! A deliberately tiny HTTP/1.1 responder: one request per connection, head capped at 8 KiB and
//! read within 5 s, so a slow or hostile client cannot hold it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monitors_manager::{ManagerStatus, StatusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Extra gauges from the binary (e.g. the RabbitMQ outbox), and whether the bus is connected.
pub type Probe = Arc<dyn Fn() -> BusHealth + Send + Sync>;

/// What the bus reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusHealth {
    /// Connected (always true for the in-memory bus).
    pub connected: bool,
    /// Publishes waiting for the broker.
    pub outbox: u64,
    /// Publishes dropped because the outbox was full.
    pub dropped: u64,
    /// Reconnections so far.
    pub reconnections: u64,
    /// Subscriptions the bus found stuck (messages ready, none delivered) and resubscribed.
    pub consumer_restarts: u64,
    /// Consumers the manager found stalled (deliveries pending, no progress) and restarted.
    pub consumer_stalls: u64,
}

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The Prometheus text for a status snapshot.
pub fn render(status: &ManagerStatus, bus: BusHealth) -> String {
    let mut out = String::new();
    let s = &status.states;
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    metric(
        &mut out,
        "panic_monitors",
        "gauge",
        "Monitors by state.",
        &[
            ("state=\"running\"", as_u64(s.running)),
            ("state=\"failing\"", as_u64(s.failing)),
            ("state=\"dead\"", as_u64(s.dead)),
        ],
    );
    metric(
        &mut out,
        "panic_monitor_rounds_total",
        "counter",
        "Monitoring rounds by outcome.",
        &[
            ("outcome=\"ok\"", status.rounds_ok),
            ("outcome=\"error\"", status.rounds_err),
            ("outcome=\"timed_out\"", status.rounds_timed_out),
        ],
    );
    metric(
        &mut out,
        "panic_monitor_rounds_in_flight",
        "gauge",
        "Rounds running now.",
        &[("", status.rounds_in_flight)],
    );
    metric(
        &mut out,
        "panic_raw_data_publishes_total",
        "counter",
        "Raw-data publishes by outcome.",
        &[
            ("outcome=\"ok\"", status.publishes_ok),
            ("outcome=\"failed\"", status.publishes_failed),
            ("outcome=\"unroutable\"", status.publishes_unroutable),
        ],
    );
    metric(
        &mut out,
        "panic_monitors_slow_lane",
        "gauge",
        "Monitors in the slow lane (last round slow or timed out).",
        &[("", status.slow_monitors)],
    );
    metric(
        &mut out,
        "panic_monitor_rounds_cut_off_total",
        "counter",
        "Rounds cut off at their slow threshold because the slow lane was full.",
        &[("", status.rounds_cut_off)],
    );
    metric(
        &mut out,
        "panic_manager_outbox_messages",
        "gauge",
        "Messages in the manager's outbox (waiting for or being published).",
        &[("", status.outbox_messages)],
    );
    metric(
        &mut out,
        "panic_manager_outbox_bytes",
        "gauge",
        "Bytes in the manager's outbox.",
        &[("", status.outbox_bytes)],
    );
    metric(
        &mut out,
        "panic_manager_outbox_dropped_total",
        "counter",
        "Messages dropped from the manager's outbox, oldest first, because it was full.",
        &[("", status.outbox_dropped)],
    );
    metric(
        &mut out,
        "panic_manager_outbox_dropped_bytes_total",
        "counter",
        "Bytes dropped from the manager's outbox because it was full.",
        &[("", status.outbox_dropped_bytes)],
    );
    for (name, help, v) in [
        (
            "panic_worker_heartbeats_total",
            "Worker heartbeats published.",
            status.worker_heartbeats,
        ),
        (
            "panic_monitor_build_failures_total",
            "Failed strategy builds.",
            status.build_failures,
        ),
        (
            "panic_monitor_deaths_total",
            "Monitor deaths (panics, hangs).",
            status.deaths,
        ),
        (
            "panic_config_messages_total",
            "Config messages handled.",
            status.config_messages,
        ),
        (
            "panic_config_errors_total",
            "Config messages or sections refused.",
            status.config_errors,
        ),
        ("panic_pings_total", "Pings answered.", status.pings),
        (
            "panic_bus_reconnections_total",
            "Reconnections to the broker.",
            bus.reconnections,
        ),
        (
            "panic_bus_outbox_dropped_total",
            "Publishes dropped, outbox full.",
            bus.dropped,
        ),
        (
            "panic_bus_consumer_restarts_total",
            "Subscriptions found stuck (messages ready, none delivered) and resubscribed.",
            bus.consumer_restarts,
        ),
        (
            "panic_manager_consumer_stalls_total",
            "Config or ping consumers found stalled (deliveries pending, no progress) and restarted.",
            bus.consumer_stalls,
        ),
    ] {
        metric(&mut out, name, "counter", help, &[("", v)]);
    }
    metric(
        &mut out,
        "panic_bus_outbox",
        "gauge",
        "Publishes waiting for the broker.",
        &[("", bus.outbox)],
    );
    metric(
        &mut out,
        "panic_bus_connected",
        "gauge",
        "1 when the bus is connected.",
        &[("", u64::from(bus.connected))],
    );
    out
}

/// Serve `/metrics` and `/health` on `listener` until `shutdown`. Each connection is answered on
/// a task of its own, owned here: finished ones are reaped as new ones arrive, and those still open
/// at shutdown are aborted and awaited before this returns.
pub async fn serve(
    listener: TcpListener,
    status: StatusHandle,
    probe: Probe,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    while let Some(accepted) = shutdown.run_until_cancelled(listener.accept()).await {
        while let Some(done) = connections.try_join_next() {
            report_connection_end(done);
        }
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        let probe = probe.clone();
        connections.spawn(async move {
            if let Err(e) = answer(stream, &status, &probe).await {
                tracing::debug!(%peer, error = %e, "metrics endpoint: request failed");
            }
        });
    }
    connections.shutdown().await;
}

fn report_connection_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "metrics endpoint: a connection task panicked");
        }
    }
}

/// The endpoint running on a task of its own, owned by this handle: [`MetricsServer::stop`] stops
/// it (open connections are aborted) and waits for it.
#[derive(Debug)]
pub struct MetricsServer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Start serving on `listener` (see [`serve`]) until [`MetricsServer::stop`] or `shutdown`.
    pub fn start(
        listener: TcpListener,
        status: StatusHandle,
        probe: Probe,
        shutdown: &CancellationToken,
    ) -> Self {
        let stop = shutdown.child_token();
        // Owned: `MetricsServer::stop` cancels and awaits the handle.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(serve(listener, status, probe, stop.clone()));
        MetricsServer { stop, task }
    }

    /// Stop serving and wait until the endpoint and its connections are gone.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "metrics endpoint task failed");
        }
    }
}

/// Bind `addr` (an error names it).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --metrics-addr {addr}: {e}"))
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    status: &StatusHandle,
    probe: &Probe,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => None,
    };
    let (code, content_type, body) = match head.as_deref().and_then(|h| h.lines().next()) {
        None => (400, "text/plain", "bad request\n".to_owned()),
        Some(line) => {
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
            match (method, path) {
                ("GET", "/metrics") => (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    render(&status.status(), probe()),
                ),
                ("GET", "/health") => {
                    let bus = probe();
                    let s = status.status();
                    if !bus.connected {
                        (503, "text/plain", "broker disconnected\n".to_owned())
                    } else if s.states.dead > 0 || s.states.failing > 0 {
                        // The manager is up; some monitors are being restarted: say so, stay 200.
                        (
                            200,
                            "text/plain",
                            format!(
                                "ok ({} failing, {} dead)\n",
                                s.states.failing, s.states.dead
                            ),
                        )
                    } else {
                        (200, "text/plain", "ok\n".to_owned())
                    }
                }
                ("GET", _) => (404, "text/plain", "not found\n".to_owned()),
                _ => (405, "text/plain", "method not allowed\n".to_owned()),
            }
        }
    };
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_the_server_and_its_open_connections() {
        let bus: Arc<dyn monitor_bus::Bus> = Arc::new(monitor_bus::MemoryBus::new());
        let manager = monitors_manager::MonitorsManager::new(bus, Vec::new(), Default::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let probe: Probe = Arc::new(BusHealth::default);
        let shutdown = CancellationToken::new();
        let server = MetricsServer::start(listener, manager.status_handle(), probe, &shutdown);
        // A client that never sends its request: its connection would be held for READ_TIMEOUT.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        // Connections are accepted in order: once this one is answered, the idle one is accepted.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        server.stop().await;
        // The idle connection was closed by the stop, unanswered (not with the 400 of a timeout).
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        assert!(!shutdown.is_cancelled());
    }

    #[test]
    fn renders_prometheus_text() {
        let status = ManagerStatus {
            states: monitors_manager::StateCounts {
                running: 3,
                failing: 1,
                dead: 0,
            },
            rounds_ok: 10,
            rounds_err: 2,
            rounds_timed_out: 0,
            rounds_in_flight: 1,
            slow_monitors: 2,
            rounds_cut_off: 0,
            publishes_ok: 9,
            publishes_failed: 1,
            publishes_unroutable: 0,
            worker_heartbeats: 9,
            heartbeats_failed: 0,
            outbox_messages: 0,
            outbox_bytes: 0,
            outbox_dropped: 6,
            outbox_dropped_bytes: 0,
            outbox_lost_at_shutdown: 0,
            build_failures: 4,
            deaths: 0,
            config_messages: 2,
            config_errors: 1,
            pings: 5,
            monitors: Vec::new(),
        };
        let text = render(
            &status,
            BusHealth {
                connected: true,
                outbox: 7,
                ..BusHealth::default()
            },
        );
        assert!(
            text.contains("panic_monitors{state=\"running\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("panic_monitor_rounds_total{outcome=\"error\"} 2\n"));
        assert!(text.contains("panic_bus_outbox 7\n"));
        assert!(text.contains("panic_monitors_slow_lane 2\n"), "{text}");
        assert!(
            text.contains("panic_manager_outbox_dropped_total 6\n"),
            "{text}"
        );
        assert!(text.contains("panic_bus_connected 1\n"));
        assert!(text.contains("# TYPE panic_pings_total counter\n"));
    }
}
