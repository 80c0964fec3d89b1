//! A local HTTP/1.1 server for strategy tests (feature `testing`): fixed or computed replies per
//! path (or for every path, [`TestServer::route_any`]), statuses, headers, delays, truncated,
//! broken, stalled or endless bodies, heads that never end, silent servers, and a log of every
//! request. It binds `127.0.0.1:0` and stops when dropped. [`TestServer::start_tls`] serves HTTPS
//! with a self-signed certificate (for `localhost` and `127.0.0.1`, [`TEST_CERT_PEM`]).
//!
//! ```ignore
//! let server = TestServer::start().await?;
//! server.route("/metrics", Reply::ok(fixture_bytes));
//! let url = server.url("/metrics");
//! // … run a round …
//! assert_eq!(server.hits("/metrics"), 1);
//! ```
//!
//! [`substrate`] replays the Substrate fixtures over websocket JSON-RPC.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub mod substrate;

/// The self-signed certificate of [`TestServer::start_tls`] (`CN=localhost`, SAN `localhost`,
/// `127.0.0.1`), for tests that trust it explicitly.
pub const TEST_CERT_PEM: &str = include_str!("testing/cert.pem");
const TEST_KEY_PEM: &str = include_str!("testing/key.pem");

/// How the body of a reply is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyMode {
    /// `Content-Length` and the whole body.
    Full,
    /// `Content-Length` of the whole body, but only its first `n` bytes, then the connection closes.
    Truncated(usize),
    /// `Content-Length` of the whole body, its first `n` bytes, then silence (connection open).
    Stalled(usize),
    /// `Transfer-Encoding: chunked`, the body cut into chunks of this size.
    Chunked(usize),
    /// `Transfer-Encoding: chunked` with a malformed chunk header after the first chunk.
    BrokenChunked,
    /// These bytes are written as the whole response (status line and headers ignored), then the
    /// connection closes: garbage, or a hand-made response.
    Raw(Bytes),
    /// Read the request and never answer (the connection stays open until the server drops).
    NoResponse,
    /// Close the connection without answering.
    Close,
    /// The status line, then an endless header line trickled one byte per interval: a head that
    /// never completes (a slow-headers server).
    SlowHead(Duration),
    /// `Transfer-Encoding: chunked`, the body sent again and again, forever (an endless body).
    Endless,
}

/// One reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Wait this long before answering.
    pub delay: Duration,
    /// How the body goes out.
    pub mode: BodyMode,
}

impl Reply {
    /// `200` with a body.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Reply::status(200, body)
    }

    /// A status with a body.
    pub fn status(status: u16, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            mode: BodyMode::Full,
        }
    }

    /// `200` with a JSON body and `Content-Type: application/json`.
    pub fn json(body: impl Into<Bytes>) -> Self {
        Reply::ok(body).header("content-type", "application/json")
    }

    /// A reply that never comes.
    pub fn no_response() -> Self {
        Reply::ok(Bytes::new()).mode(BodyMode::NoResponse)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a delay before the answer.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the body mode.
    pub fn mode(mut self, mode: BodyMode) -> Self {
        self.mode = mode;
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The path alone.
    pub path: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The request body (`Content-Length` bodies only).
    pub body: Bytes,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    routes: HashMap<String, Handler>,
    fallback: Option<Handler>,
    requests: Vec<RecordedRequest>,
    /// Connections accepted.
    accepted: usize,
}

/// The server. Dropping it stops it and closes every connection.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    scheme: &'static str,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Binds `127.0.0.1:0` and serves HTTP. Unknown paths get `404 not found`.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(None).await
    }

    /// Binds `127.0.0.1:0` and serves HTTPS with the self-signed [`TEST_CERT_PEM`].
    pub async fn start_tls() -> io::Result<Self> {
        Self::start_with(Some(tls_acceptor()?)).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Owned by the `TestServer`: its handle is kept and the task aborted on drop.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(accept_loop(listener, tls, Arc::clone(&state)));
        Ok(TestServer {
            addr,
            state,
            task,
            scheme,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` (`https://` for a TLS server).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Serves `reply` for `target` (a path, or a path with its query, which is matched first).
    pub fn route(&self, target: &str, reply: Reply) {
        self.route_fn(target, move |_| reply.clone());
    }

    /// Serves a computed reply for `target` (e.g. by JSON-RPC method in the request body).
    pub fn route_fn(
        &self,
        target: &str,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) {
        self.lock()
            .routes
            .insert(target.to_owned(), Arc::new(handler));
    }

    /// Serves `reply` for every target no route matches (instead of `404`): a server that is
    /// hostile on every path a monitor may ask for.
    pub fn route_any(&self, reply: Reply) {
        self.route_any_fn(move |_| reply.clone());
    }

    /// Serves a computed reply for every target no route matches.
    pub fn route_any_fn(
        &self,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) {
        self.lock().fallback = Some(Arc::new(handler));
    }

    /// How many requests reached `target` (matched as a route is: full target or path).
    pub fn hits(&self, target: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.target == target || r.path == target)
            .count()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().accepted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A URL on which connections are refused: a port that was just bound and released.
pub async fn refused_url(path: &str) -> io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}{path}"))
}

fn tls_acceptor() -> io::Result<TlsAcceptor> {
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let certs = CertificateDer::pem_slice_iter(TEST_CERT_PEM.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes()).map_err(|e| invalid(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<Mutex<State>>) {
    // Connections live in this set: aborting the accept task drops it and aborts them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    state.lock().unwrap_or_else(|e| e.into_inner()).accepted += 1;
                    let state = Arc::clone(&state);
                    match tls.clone() {
                        None => {
                            connections.spawn(serve_connection(stream, state));
                        }
                        Some(acceptor) => {
                            connections.spawn(async move {
                                // A failed handshake (a client that rejects the certificate) just
                                // ends the connection.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_connection(stream, state).await;
                                }
                            });
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves requests on one connection (keep-alive) until the client closes or a reply closes it.
async fn serve_connection<S>(stream: S, state: Arc<Mutex<State>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    loop {
        let Ok(Some(request)) = read_request(&mut stream).await else {
            return;
        };
        let client_closes = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let handler = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.requests.push(request.clone());
            st.routes
                .get(&request.target)
                .or_else(|| st.routes.get(&request.path))
                .or(st.fallback.as_ref())
                .cloned()
        };
        let reply = match handler {
            Some(h) => h(&request),
            None => Reply::status(404, "not found"),
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let keep_open = match write_reply(stream.get_mut(), &reply).await {
            Ok(keep) => keep,
            Err(_) => return,
        };
        if !keep_open || client_closes {
            let _ = stream.get_mut().shutdown().await;
            return;
        }
    }
}

/// Reads one request head (and a `Content-Length` body); `None` when the client closed.
async fn read_request<S>(stream: &mut BufReader<S>) -> io::Result<Option<RecordedRequest>>
where
    S: AsyncRead + Unpin,
{
    const MAX_HEAD: usize = 64 * 1024;
    let mut head_len = 0;
    let mut first = String::new();
    if stream.read_line(&mut first).await? == 0 {
        return Ok(None);
    }
    head_len += first.len();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        head_len += line.len();
        if head_len > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(16 * 1024 * 1024);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    let path = target.split('?').next().unwrap_or_default().to_owned();
    Ok(Some(RecordedRequest {
        method,
        target,
        path,
        headers,
        body: Bytes::from(body),
    }))
}

/// Writes a reply; returns whether the connection may serve another request.
async fn write_reply<S>(stream: &mut S, reply: &Reply) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
{
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &reply.mode {
        BodyMode::Full => {
            head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&reply.body).await?;
            stream.flush().await?;
            Ok(true)
        }
        BodyMode::Truncated(n) => {
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                reply.body.len()
            ));
            stream.write_all(head.as_bytes()).await?;
            stream
                .write_all(&reply.body[..(*n).min(reply.body.len())])
                .await?;
            stream.flush().await?;
            Ok(false)
        }
        BodyMode::Stalled(n) => {
            head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
            stream.write_all(head.as_bytes()).await?;
            stream
                .write_all(&reply.body[..(*n).min(reply.body.len())])
                .await?;
            stream.flush().await?;
            std::future::pending::<()>().await;
            Ok(false)
        }
        BodyMode::Chunked(size) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            for chunk in reply.body.chunks((*size).max(1)) {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.flush().await?;
            Ok(true)
        }
        BodyMode::BrokenChunked => {
            head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let half = reply.body.len() / 2;
            stream.write_all(format!("{half:x}\r\n").as_bytes()).await?;
            stream.write_all(&reply.body[..half]).await?;
            stream.write_all(b"\r\nzz-not-hex\r\n").await?;
            stream.flush().await?;
            Ok(false)
        }
        BodyMode::Raw(bytes) => {
            stream.write_all(bytes).await?;
            stream.flush().await?;
            Ok(false)
        }
        BodyMode::NoResponse => {
            std::future::pending::<()>().await;
            Ok(false)
        }
        BodyMode::Close => Ok(false),
        BodyMode::SlowHead(interval) => {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(b"x-slow: ").await?;
            loop {
                stream.flush().await?;
                tokio::time::sleep(*interval).await;
                stream.write_all(b"a").await?;
            }
        }
        BodyMode::Endless => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let chunk = if reply.body.is_empty() {
                Bytes::from_static(b"endless ")
            } else {
                reply.body.clone()
            };
            // Ends when the client hangs up (a write error).
            loop {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
