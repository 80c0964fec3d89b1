//! The exporter stand-in: a minimal HTTP/1.1 keep-alive server answering `GET /metrics` with one
//! precomputed response (headers and the fixture body in one buffer), and a load check that shows
//! how many requests per second it serves and at what CPU cost. With `--json-rpc` it is an EVM
//! node stand-in instead: `POST` JSON-RPC answering `eth_blockNumber` (`0xf3eb18`) and
//! `eth_syncing` (`false`), the EVM node monitor's two calls, echoing the request's id.
//!
//! It runs in its own process (`bench serve`) so that its CPU and file descriptors are not counted
//! in, nor limited by, the approach being measured. Bound to `0.0.0.0`, it serves every loopback
//! address (127.0.0.0/8: many distinct targets on one port) and drops connections from any other
//! peer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::BenchError;

/// Largest request head accepted; a longer one closes the connection.
const MAX_HEAD: usize = 16 * 1024;

/// The two precomputed responses.
#[derive(Debug, Clone)]
struct Responses {
    metrics: Bytes,
    not_found: Bytes,
    /// Answer JSON-RPC POSTs instead of serving `metrics`.
    json_rpc: bool,
}

/// What the stand-in serves.
#[derive(Debug, Clone)]
pub(crate) enum Serve {
    /// This body at `GET /metrics`.
    Metrics(Vec<u8>),
    /// JSON-RPC (`eth_blockNumber`, `eth_syncing`) at any path.
    JsonRpc,
}

fn responses(body: &[u8]) -> Responses {
    let mut metrics = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    metrics.extend_from_slice(body);
    let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    Responses {
        metrics: Bytes::from(metrics),
        not_found: Bytes::from(not_found),
        json_rpc: false,
    }
}

/// The JSON-RPC answer to one request body: `eth_blockNumber` → a height, `eth_syncing` → false,
/// anything else → a JSON-RPC error; the id is echoed.
fn json_rpc_response(body: &[u8], close: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let id = text
        .find("\"id\":")
        .map(|at| {
            text[at + 5..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "null".to_owned());
    let answer = if text.contains("\"eth_blockNumber\"") {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"0xf3eb18"}}"#)
    } else if text.contains("\"eth_syncing\"") {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":false}}"#)
    } else {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"method not found"}}}}"#
        )
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        answer.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(answer.as_bytes());
    out
}

/// The `Content-Length` of a request head (0 if absent or unreadable).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// Bind `addr` and serve `body` at `/metrics` until the process ends; prints
/// `LISTENING <addr>` on stdout once bound, and exits when stdin reaches end of file (the parent
/// went away).
pub(crate) async fn serve(addr: SocketAddr, what: Serve) -> Result<(), BenchError> {
    let listener = listen(addr).map_err(|e| BenchError::io(format!("binding {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| BenchError::io("reading the bound address", e))?;
    println!("LISTENING {local}");
    let r = match what {
        Serve::Metrics(body) => responses(&body),
        Serve::JsonRpc => Responses {
            json_rpc: true,
            ..responses(b"")
        },
    };
    let any = addr.ip().is_unspecified();
    let served = Arc::new(AtomicU64::new(0));
    // Connection tasks are owned by this set: finished ones are reaped as new ones arrive, and
    // those still open when the server stops are aborted and awaited.
    let mut connections = JoinSet::new();
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    while connections.try_join_next().is_some() {}
                    if any && !peer.ip().is_loopback() {
                        tracing::warn!(%peer, "not a loopback peer: connection dropped");
                        continue;
                    }
                    let r = r.clone();
                    let served = Arc::clone(&served);
                    connections.spawn(async move {
                        if let Err(e) = connection(stream, r, served).await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: say so and back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = accept => {}
        () = stdin_closed => {}
    }
    connections.shutdown().await;
    tracing::info!(served = served.load(Ordering::Relaxed), "server stops");
    Ok(())
}

/// Accept backlog of the stand-in: the kernel caps it at `net.core.somaxconn` (4,096 here).
/// tokio's `TcpListener::bind` asks for 1,024, which a start-up burst of new connections to a
/// stand-in starved of CPU overflows (the kernel then drops the SYNs: `TcpExtListenOverflows`).
const BACKLOG: u32 = 65_535;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn connection(
    mut stream: TcpStream,
    r: Responses,
    served: Arc<AtomicU64>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request head in the buffer (pipelining allowed).
        while let Some(end) = find_head_end(&buf) {
            let head = &buf[..end];
            let (is_metrics, close) = inspect(head);
            if r.json_rpc {
                let len = content_length(head);
                if buf.len() < end + 4 + len {
                    break; // the body is not all here yet
                }
                let reply = json_rpc_response(&buf[end + 4..end + 4 + len], close);
                stream.write_all(&reply).await?;
                buf.drain(..end + 4 + len);
            } else {
                let reply = if is_metrics { &r.metrics } else { &r.not_found };
                stream.write_all(reply).await?;
                buf.drain(..end + 4);
            }
            served.fetch_add(1, Ordering::Relaxed);
            if close {
                return Ok(());
            }
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// `(GET of /metrics, connection: close asked)`.
fn inspect(head: &[u8]) -> (bool, bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let metrics = method == "GET" && path == "/metrics";
    let close = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
        })
    });
    (metrics, close)
}

/// What the load check found.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ServerCheck {
    /// Concurrent keep-alive connections of the load generator.
    pub(crate) connections: usize,
    /// Duration of the check, seconds.
    pub(crate) seconds: f64,
    /// Complete 200 responses received.
    pub(crate) requests: u64,
    /// Requests per second achieved (a lower bound of the server's capacity: the load generator
    /// shares the same cores).
    pub(crate) requests_per_s: f64,
    /// CPU seconds the server process used during the check.
    pub(crate) server_cpu_s: f64,
    /// Server CPU per request, microseconds.
    pub(crate) server_cpu_us_per_request: f64,
    /// Requests per second one fully busy core of the server would serve at that cost.
    pub(crate) capacity_per_core: f64,
    /// Failed requests.
    pub(crate) errors: u64,
}

/// Hammer `url` with `connections` keep-alive clients for `seconds`, measuring the server's CPU
/// (`server_pid`) over the same time.
pub(crate) async fn check(
    url: &str,
    server_pid: u32,
    connections: usize,
    seconds: f64,
) -> Result<ServerCheck, BenchError> {
    let client = load::Client::new(url)?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cpu0 = super::proc::cpu_seconds(server_pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let client = client.clone();
        let ok = Arc::clone(&ok);
        let errors = Arc::clone(&errors);
        tasks.spawn(async move {
            let mut conn = None;
            while Instant::now() < deadline {
                if conn.is_none() {
                    conn = client.connect().await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                match c.get().await {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = super::proc::cpu_seconds(server_pid).unwrap_or(cpu0) - cpu0;
    let requests = ok.load(Ordering::Relaxed);
    let per_request = if requests > 0 {
        cpu / requests as f64
    } else {
        0.0
    };
    Ok(ServerCheck {
        connections,
        seconds: elapsed,
        requests,
        requests_per_s: requests as f64 / elapsed.max(1e-9),
        server_cpu_s: cpu,
        server_cpu_us_per_request: per_request * 1e6,
        capacity_per_core: if per_request > 0.0 {
            1.0 / per_request
        } else {
            0.0
        },
        errors: errors.load(Ordering::Relaxed),
    })
}

/// A bare keep-alive HTTP/1.1 GET client for the load check and the raw fetch floor
/// (`bench fetch-floor --client raw`): as cheap as possible on the client side, so the check
/// measures the server rather than an HTTP library, and the floor the kernel and the runtime.
pub(crate) mod load {
    use super::*;

    #[derive(Debug, Clone)]
    pub(crate) struct Client {
        addr: SocketAddr,
        request: Bytes,
    }

    pub(crate) struct Conn {
        stream: TcpStream,
        request: Bytes,
        buf: Vec<u8>,
    }

    impl Client {
        pub(crate) fn new(url: &str) -> Result<Self, BenchError> {
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| BenchError::Usage(format!("{url}: only http:// URLs")))?;
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let addr: SocketAddr = host
                .parse()
                .map_err(|e| BenchError::Usage(format!("{url}: host must be ip:port ({e})")))?;
            let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            Ok(Client {
                addr,
                request: Bytes::from(request),
            })
        }

        pub(crate) async fn connect(&self) -> std::io::Result<Conn> {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                stream,
                request: self.request.clone(),
                buf: Vec::with_capacity(128 * 1024),
            })
        }
    }

    impl Conn {
        /// One request; reads the whole response (`Content-Length` framing) into the kept
        /// buffer (read straight into it: no chunk on the stack of a future held per target).
        pub(crate) async fn get(&mut self) -> std::io::Result<()> {
            self.stream.write_all(&self.request).await?;
            self.buf.clear();
            loop {
                if let Some(end) = find_head_end(&self.buf) {
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                    if !head.starts_with("http/1.1 200") {
                        return Err(std::io::Error::other("not a 200"));
                    }
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| std::io::Error::other("no content-length"))?;
                    while self.buf.len() < end + 4 + len {
                        self.read_more(end + 4 + len - self.buf.len()).await?;
                    }
                    return Ok(());
                }
                self.read_more(64 * 1024).await?;
            }
        }

        /// One read of up to `want` more bytes (at least some) into the buffer.
        async fn read_more(&mut self, want: usize) -> std::io::Result<()> {
            self.buf.reserve(want);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(inspect(b"GET /metrics HTTP/1.1\r\nHost: x"), (true, false));
        assert_eq!(
            inspect(b"GET /metrics?x=1 HTTP/1.1\r\nConnection: Close"),
            (true, true)
        );
        assert_eq!(inspect(b"POST /metrics HTTP/1.1"), (false, false));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(14));
        let r = responses(b"abc");
        assert!(r.metrics.ends_with(b"\r\n\r\nabc"));
        assert_eq!(content_length(b"POST / HTTP/1.1\r\ncontent-length: 12"), 12);
        let a = json_rpc_response(
            br#"{"id":7,"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}"#,
            false,
        );
        assert!(a.ends_with(br#"{"jsonrpc":"2.0","id":7,"result":"0xf3eb18"}"#));
        let a = json_rpc_response(br#"{"id": 8,"method":"eth_syncing"}"#, true);
        assert!(a.ends_with(br#"{"jsonrpc":"2.0","id":8,"result":false}"#));
        assert!(String::from_utf8_lossy(&a).contains("Connection: close"));
    }
}
