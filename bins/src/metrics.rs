//! The manager's health and the monitored data over HTTP (`--metrics-addr`): `GET /metrics`
//! (the manager's own series: monitors by state, rounds, publishes, deaths, config errors, pings,
//! the RabbitMQ outbox; and the latest data of every monitor, [`crate::data_metrics`]) and
//! `GET /health` (200 `ok`, or 503 with the reason).
//!
//! Served by hyper (HTTP/1.1, keep-alive, request head read within 5 s), encoded by
//! `prometheus-client`: OpenMetrics when the scraper's `Accept` asks for
//! `application/openmetrics-text`, the classic Prometheus text format (0.0.4) otherwise — both
//! from the same collectors (docs/DEPENDENCIES.md, docs/METRICS.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use monitors_manager::{ManagerStatus, StatusHandle};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::data_metrics::{DataMetrics, PageWriter};
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

const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One family of the manager's own series: (registered name, help, type, samples).
type OwnFamily = (
    &'static str,
    &'static str,
    MetricType,
    Vec<(Option<(&'static str, &'static str)>, u64)>,
);

/// The manager's own series (a snapshot) as a `prometheus-client` collector.
#[derive(Debug)]
struct ManagerCollector {
    families: Vec<OwnFamily>,
}

impl ManagerCollector {
    fn new(status: &ManagerStatus, bus: BusHealth) -> Self {
        use MetricType::{Counter, Gauge};
        let s = &status.states;
        let n = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let one = |v: u64| vec![(None, v)];
        let mut families: Vec<OwnFamily> = vec![
            (
                "panic_monitors",
                "Monitors by state.",
                Gauge,
                vec![
                    (Some(("state", "running")), n(s.running)),
                    (Some(("state", "failing")), n(s.failing)),
                    (Some(("state", "dead")), n(s.dead)),
                ],
            ),
            (
                "panic_monitor_rounds",
                "Monitoring rounds by outcome.",
                Counter,
                vec![
                    (Some(("outcome", "ok")), status.rounds_ok),
                    (Some(("outcome", "error")), status.rounds_err),
                    (Some(("outcome", "timed_out")), status.rounds_timed_out),
                ],
            ),
            (
                "panic_monitor_rounds_in_flight",
                "Rounds running now.",
                Gauge,
                one(status.rounds_in_flight),
            ),
            (
                "panic_raw_data_publishes",
                "Raw-data publishes by outcome.",
                Counter,
                vec![
                    (Some(("outcome", "ok")), status.publishes_ok),
                    (Some(("outcome", "failed")), status.publishes_failed),
                    (Some(("outcome", "unroutable")), status.publishes_unroutable),
                ],
            ),
            (
                "panic_monitors_slow_lane",
                "Monitors in the slow lane (last round slow or timed out).",
                Gauge,
                one(status.slow_monitors),
            ),
            (
                "panic_monitor_rounds_cut_off",
                "Rounds cut off at their slow threshold because the slow lane was full.",
                Counter,
                one(status.rounds_cut_off),
            ),
            (
                "panic_manager_outbox_messages",
                "Messages in the manager's outbox (waiting for or being published).",
                Gauge,
                one(status.outbox_messages),
            ),
            (
                "panic_manager_outbox_bytes",
                "Bytes in the manager's outbox.",
                Gauge,
                one(status.outbox_bytes),
            ),
            (
                "panic_manager_outbox_dropped",
                "Messages dropped from the manager's outbox, oldest first, because it was full.",
                Counter,
                one(status.outbox_dropped),
            ),
            (
                "panic_manager_outbox_dropped_bytes",
                "Bytes dropped from the manager's outbox because it was full.",
                Counter,
                one(status.outbox_dropped_bytes),
            ),
        ];
        for (name, help, v) in [
            ("panic_worker_heartbeats", "Worker heartbeats published.", status.worker_heartbeats),
            ("panic_monitor_build_failures", "Failed strategy builds.", status.build_failures),
            ("panic_monitor_deaths", "Monitor deaths (panics, hangs).", status.deaths),
            ("panic_config_messages", "Config messages handled.", status.config_messages),
            ("panic_config_errors", "Config messages or sections refused.", status.config_errors),
            ("panic_pings", "Pings answered.", status.pings),
            ("panic_bus_reconnections", "Reconnections to the broker.", bus.reconnections),
            ("panic_bus_outbox_dropped", "Publishes dropped, outbox full.", bus.dropped),
            (
                "panic_bus_consumer_restarts",
                "Subscriptions found stuck (messages ready, none delivered) and resubscribed.",
                bus.consumer_restarts,
            ),
            (
                "panic_manager_consumer_stalls",
                "Config or ping consumers found stalled (deliveries pending, no progress) and restarted.",
                bus.consumer_stalls,
            ),
        ] {
            families.push((name, help, Counter, one(v)));
        }
        families.push((
            "panic_bus_outbox",
            "Publishes waiting for the broker.",
            Gauge,
            one(bus.outbox),
        ));
        families.push((
            "panic_bus_connected",
            "1 when the bus is connected.",
            Gauge,
            one(u64::from(bus.connected)),
        ));
        ManagerCollector { families }
    }
}

impl Collector for ManagerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, help, kind, samples) in &self.families {
            let mut family = encoder.encode_descriptor(name, help, None, *kind)?;
            for (label, value) in samples {
                let labels: Vec<(&str, &str)> = label.iter().copied().collect();
                let mut sample = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => {
                        sample.encode_counter::<NoLabelSet, u64, u64>(value, None)?
                    }
                    _ => sample.encode_gauge(value)?,
                }
            }
        }
        Ok(())
    }
}

/// The exposition formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4 (what `promtool check metrics` reads).
    Text,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (Prometheus sends it first by default), the classic text
    /// otherwise.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Drop the data of every monitor the manager no longer runs (`status.monitors`).
pub fn prune(status: &ManagerStatus, data: &DataMetrics) {
    let running: std::collections::HashSet<&str> = status
        .monitors
        .iter()
        .map(|m| m.component_name.as_str())
        .collect();
    data.retain(|name| running.contains(name));
}

/// The manager's own families for a status snapshot, encoded now by `prometheus-client`.
fn own_families(status: &ManagerStatus, bus: BusHealth, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ManagerCollector::new(status, bus)));
    let mut own = String::new();
    let encoded = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut own, &registry),
        Format::OpenMetrics => {
            prometheus_client::encoding::text::encode_registry(&mut own, &registry)
        }
    };
    if let Err(e) = encoded {
        // Writing to a String does not fail; an encoder refusing a value would be a bug here.
        tracing::error!(error = %e, "metrics endpoint: encoding failed");
    }
    own
}

/// What ends a page: OpenMetrics' `# EOF` (as `prometheus-client` writes it), nothing in the
/// classic format.
fn end_of_page(format: Format) -> String {
    let mut eof = String::new();
    if format == Format::OpenMetrics {
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode_eof(&mut eof);
    }
    eof
}

/// How much of the page a body frame carries (before compression).
const PIECE: usize = 256 * 1024;

/// A `/metrics` response body, written a piece ([`PIECE`]) at a time as hyper asks for the next
/// frame: the manager's own families, the data families ([`DataMetrics::page`]), then the end of
/// the page; gzipped on the way (fast level: the page is text with long repeated runs, and a
/// scrape should cost little CPU) when the scraper accepts it. So a scrape holds a piece of the
/// page at a time, not the page (10 MiB at 10,000 monitors), and its CPU comes in slices of
/// about a millisecond between the runtime's other tasks.
#[derive(Debug)]
pub struct PageBody {
    own: Option<String>,
    data: Option<PageWriter>,
    end: Option<String>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl PageBody {
    /// The page for a status snapshot and, when given, the monitored data.
    pub fn new(
        status: &ManagerStatus,
        bus: BusHealth,
        data: Option<&DataMetrics>,
        format: Format,
        gzip: bool,
    ) -> Self {
        PageBody {
            own: Some(own_families(status, bus, format)),
            data: data.map(|d| d.page(format)),
            end: Some(end_of_page(format)),
            gzip: gzip
                .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())),
        }
    }

    /// The next piece of the page (compressed when asked), `None` once it is all out.
    fn next_piece(&mut self) -> Option<Bytes> {
        use std::io::Write as _;
        while self.end.is_some() {
            let mut piece = self.own.take().map(String::into_bytes).unwrap_or_default();
            let more = match &mut self.data {
                Some(page) => page.fill(&mut piece, PIECE),
                None => false,
            };
            if !more {
                self.data = None;
                piece.extend_from_slice(self.end.take().unwrap_or_default().as_bytes());
            }
            let out = match self.gzip.take() {
                None => piece,
                Some(mut z) => {
                    let written = z.write_all(&piece);
                    let out = match (written, self.end.is_some()) {
                        (Ok(()), true) => {
                            let out = std::mem::take(z.get_mut());
                            self.gzip = Some(z);
                            Ok(out)
                        }
                        (Ok(()), false) => z.finish(),
                        (Err(e), _) => Err(e),
                    };
                    match out {
                        Ok(out) => out,
                        Err(e) => {
                            // Compressing into a Vec does not fail: end the page where it is.
                            tracing::error!(error = %e, "metrics endpoint: gzip failed");
                            self.data = None;
                            self.end = None;
                            return None;
                        }
                    }
                }
            };
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
        None
    }
}

impl hyper::body::Body for PageBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .next_piece()
                .map(|b| Ok(hyper::body::Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.end.is_none()
    }
}

/// The page, uncompressed, at once (the endpoint streams it, [`PageBody`]).
pub fn render(
    status: &ManagerStatus,
    bus: BusHealth,
    data: Option<&DataMetrics>,
    format: Format,
) -> Vec<u8> {
    let mut body = PageBody::new(status, bus, data, format, false);
    let mut out = Vec::with_capacity(data.map_or(0, DataMetrics::page_size_hint) + 8192);
    while let Some(piece) = body.next_piece() {
        out.extend_from_slice(&piece);
    }
    out
}

/// What the endpoint answers from.
#[derive(Clone)]
pub struct Endpoint {
    /// The manager's status.
    pub status: StatusHandle,
    /// The bus's health.
    pub probe: Probe,
    /// The monitored data, when the binary taps it.
    pub data: Option<Arc<DataMetrics>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

/// A response body: a page, or a short text.
type AnyBody = BoxBody<Bytes, Infallible>;

fn respond(endpoint: &Endpoint, req: &Request<Incoming>) -> Response<AnyBody> {
    let text = |code: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
        *r.status_mut() = code;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|a| a.to_str().ok());
            let format = Format::from_accept(accept);
            let status = endpoint.status.status();
            if let Some(data) = &endpoint.data {
                prune(&status, data);
            }
            let gzip = req
                .headers()
                .get(ACCEPT_ENCODING)
                .and_then(|a| a.to_str().ok())
                .is_some_and(accepts_gzip);
            let body = PageBody::new(
                &status,
                (endpoint.probe)(),
                endpoint.data.as_deref(),
                format,
                gzip,
            );
            let mut r = Response::new(body.boxed());
            if gzip {
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            r
        }
        "/health" => {
            let bus = (endpoint.probe)();
            let s = endpoint.status.status();
            if !bus.connected {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker disconnected\n".into(),
                )
            } else if s.states.dead > 0 || s.states.failing > 0 {
                // The manager is up; some monitors are being restarted: say so, stay 200.
                let body = format!(
                    "ok ({} failing, {} dead)\n",
                    s.states.failing, s.states.dead
                );
                text(StatusCode::OK, body)
            } else {
                text(StatusCode::OK, "ok\n".into())
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Whether an `Accept-Encoding` header accepts gzip (Prometheus sends `gzip`).
fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

/// Serve `/metrics` and `/health` on `listener` until `shutdown`. Each connection is served on
/// a task of its own, owned here: finished ones are reaped as new ones arrive, and those still open
/// at shutdown are aborted and awaited before this returns.
pub async fn serve(listener: TcpListener, endpoint: Endpoint, shutdown: CancellationToken) {
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
        let endpoint = endpoint.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = respond(&endpoint, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics endpoint: connection failed");
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
    pub fn start(listener: TcpListener, endpoint: Endpoint, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        // Owned: `MetricsServer::stop` cancels and awaits the handle.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(serve(listener, endpoint, stop.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn stop_ends_the_server_and_its_open_connections() {
        let bus: Arc<dyn monitor_bus::Bus> = Arc::new(monitor_bus::MemoryBus::new());
        let manager = monitors_manager::MonitorsManager::new(bus, Vec::new(), Default::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let probe: Probe = Arc::new(BusHealth::default);
        let shutdown = CancellationToken::new();
        let endpoint = Endpoint {
            status: manager.status_handle(),
            probe,
            data: None,
        };
        let server = MetricsServer::start(listener, endpoint, &shutdown);
        // A client that never sends its request: its connection would be held for READ_TIMEOUT.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        // Connections are accepted in order: once this one is answered, the idle one is accepted.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
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

    fn status() -> ManagerStatus {
        ManagerStatus {
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
        }
    }

    /// The pages of the data kept from one system monitor's publication.
    fn data_pages() -> (DataMetrics, Vec<u8>, Vec<u8>) {
        let data = DataMetrics::new();
        let meta = r#"{"monitor_name": "System monitor (h)", "system_name": "h",
            "system_id": "s1", "system_parent_id": "GENERAL", "time": 5.0}"#;
        let body = format!(
            r#"{{"result": {{"meta_data": {meta}, "data": {{"process_cpu_seconds_total": 1.5,
            "system_storage_usage": 91.5, "network_receive_bytes_total": 7.0}}}}}}"#
        );
        data.observe("system", body.as_bytes());
        let bus = BusHealth::default();
        let text = render(&status(), bus, Some(&data), Format::Text);
        let open = render(&status(), bus, Some(&data), Format::OpenMetrics);
        (data, text, open)
    }

    #[test]
    fn gzip_when_accepted() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
    }

    /// A page larger than a piece goes out in several frames, plain or gzipped, and reads back
    /// as the page written at once.
    #[test]
    fn the_page_is_streamed_in_pieces() {
        let data = DataMetrics::new();
        for i in 0..3000 {
            let body = format!(
                r#"{{"result": {{"meta_data": {{"monitor_name": "System monitor (h{i})",
                "system_name": "h{i}", "system_id": "s{i}", "system_parent_id": "GENERAL",
                "time": 5.0}}, "data": {{"process_cpu_seconds_total": {i}.5,
                "system_storage_usage": 91.5, "network_receive_bytes_total": 7.0}}}}}}"#
            );
            data.observe("system", body.as_bytes());
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let whole = render(&status(), BusHealth::default(), Some(&data), format);
            assert!(whole.len() > 3 * PIECE, "{}", whole.len());
            for gzip in [false, true] {
                let mut body =
                    PageBody::new(&status(), BusHealth::default(), Some(&data), format, gzip);
                let mut pieces = Vec::new();
                while let Some(piece) = body.next_piece() {
                    pieces.push(piece);
                }
                assert!(hyper::body::Body::is_end_stream(&body));
                let joined: Vec<u8> = pieces.concat();
                let page = if gzip {
                    assert!(
                        joined.len() < whole.len() / 10,
                        "{} of {}",
                        joined.len(),
                        whole.len()
                    );
                    let mut back = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&joined[..]),
                        &mut back,
                    )
                    .unwrap();
                    back
                } else {
                    assert!(pieces.len() > 3, "{} pieces", pieces.len());
                    assert!(pieces.iter().all(|p| p.len() < PIECE + 1024));
                    joined
                };
                assert!(page == whole, "{format:?}, gzip {gzip}");
            }
        }
    }

    /// The data families come after the manager's own, each under its one descriptor, and the
    /// OpenMetrics page ends with `# EOF` after them.
    #[test]
    fn data_families_follow_the_managers_own() {
        let (_, text, open) = data_pages();
        let text = String::from_utf8(text).unwrap();
        let open = String::from_utf8(open).unwrap();
        let at = |page: &str, line: &str| {
            page.find(line)
                .unwrap_or_else(|| panic!("{line} missing:\n{page}"))
        };
        assert!(
            at(&text, "# TYPE panic_bus_connected gauge\n")
                < at(&text, "# TYPE panic_monitor_up gauge\n")
        );
        assert!(
            at(
                &text,
                "panic_monitor_up{type=\"system\",system_id=\"s1\"} 1\n"
            ) > at(&text, "# TYPE panic_monitor_up gauge\n")
        );
        assert!(text.contains("# TYPE panic_system_process_cpu_seconds_total counter\npanic_system_process_cpu_seconds_total{system_id=\"s1\"} 1.5\n"), "{text}");
        assert!(text.contains("# TYPE panic_system_info gauge\npanic_system_info{system_id=\"s1\",system_name=\"h\",parent_id=\"GENERAL\",monitor=\"System monitor (h)\"} 1\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(open.contains("# TYPE panic_system_process_cpu_seconds counter\npanic_system_process_cpu_seconds_total{system_id=\"s1\"} 1.5\n"), "{open}");
        assert!(open.contains("# TYPE panic_system info\n"), "{open}");
        assert!(
            open.ends_with("panic_system_network_receive_bytes_total{system_id=\"s1\"} 7\n# EOF\n"),
            "{open}"
        );
        assert_eq!(open.matches("# EOF").count(), 1);
    }

    #[test]
    fn renders_prometheus_text() {
        let status = status();
        let bus = BusHealth {
            connected: true,
            outbox: 7,
            ..BusHealth::default()
        };
        let open = String::from_utf8(render(&status, bus, None, Format::OpenMetrics)).unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE panic_pings counter\n"), "{open}");
        assert!(open.contains("panic_pings_total 5\n"), "{open}");
        let text = String::from_utf8(render(&status, bus, None, Format::Text)).unwrap();
        assert!(!text.contains("# EOF"), "{text}");
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
