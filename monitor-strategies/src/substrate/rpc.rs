//! [`WsRpc`]: JSON-RPC 2.0 over one long-lived websocket per node URL, shared by every monitor
//! that talks to that node ([`WsPool`]).
//!
//! # Ownership of the connection task
//!
//! Each URL has one connection, driven by one background task in the pool's `JoinSet`. The task
//! holds the receiving end of the connection handle's command channel, so when the last [`WsRpc`]
//! of a URL is dropped the channel closes, the task sends a websocket Close frame, drops the
//! socket and ends (it selects on the channel in every state, connecting included, so this is
//! immediate); the pool reaps it at its next use, and aborts what is left when it is dropped.
//! The pool keeps only weak references to connections: it never keeps one alive.
//!
//! # Reconnection
//!
//! The task connects on demand: the first request connects; a lost connection fails the requests
//! in flight (as [`WsError::Down`]) and the next request reconnects. A failed connection attempt
//! starts a backoff (doubling from [`WsConfig::backoff_min`] to [`WsConfig::backoff_max`]) during
//! which requests fail at once as down, without touching the network: a down node costs nothing
//! and a round never waits for reconnect attempts. The round itself never retries.
//!
//! # Limits
//!
//! Every request has a deadline (the caller's timeout, below the monitor's period); an answer
//! larger than [`WsConfig::max_message_bytes`] closes the connection and fails the request.
//! Answers are matched to requests by id; an answer nobody waits for any more is dropped.
//!
//! # Garbage
//!
//! A message that is not a JSON object (not JSON, invalid UTF-8, `NaN`, nesting past
//! `serde_json`'s limit, an array or a scalar) names no request: the node is speaking garbage and
//! which call it answered cannot be known, so every call in flight fails at once as
//! [`WsError::Malformed`] (PANIC's "data could not be read", 5033/5034, rather than "down" after
//! the timeout). The connection stays open. A JSON object without a numeric `id` (a subscription
//! notification, an id-less error) is dropped: nothing waits for it. [`read_frame`] is the pure
//! half of this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};

/// Why a JSON-RPC call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The node cannot be reached: connection refused or lost, handshake failed, or the pool is
    /// backing off after a failed attempt.
    #[error("`{}` is unreachable: {reason}", monitor_core::redact_url(url))]
    Down {
        /// The node URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("`{method}` at `{}` timed out", monitor_core::redact_url(url))]
    Timeout {
        /// The node URL.
        url: String,
        /// The method called.
        method: String,
    },
    /// The node answered with a JSON-RPC `error` object.
    #[error(
        "`{method}` at `{}` answered error {code}: {message}",
        monitor_core::redact_url(url)
    )]
    Rpc {
        /// The node URL.
        url: String,
        /// The method called.
        method: String,
        /// `error.code`.
        code: i64,
        /// `error.message`.
        message: String,
    },
    /// The URL is not a `ws://` or `wss://` URL.
    #[error("invalid websocket URL `{}`", monitor_core::redact_url(.0))]
    InvalidUrl(String),
    /// While the call was in flight the node sent a message that is not a JSON object (see the
    /// module doc, "Garbage"): the answer cannot be read.
    #[error(
        "`{method}` at `{}`: the node sent a message that is not a JSON-RPC answer ({reason})",
        monitor_core::redact_url(url)
    )]
    Malformed {
        /// The node URL.
        url: String,
        /// The method called.
        method: String,
        /// What is wrong with the message (never its content).
        reason: String,
    },
}

impl WsError {
    /// Whether the node could not be reached at all (PANIC's "node down" when it is the monitored
    /// node).
    pub fn is_down(&self) -> bool {
        matches!(self, WsError::Down { .. } | WsError::Timeout { .. })
    }
}

/// Connection settings shared by a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest accepted websocket message (an answer): larger ones close the connection.
    pub max_message_bytes: usize,
    /// First backoff after a failed connection attempt.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Verify TLS certificates of `wss://` nodes (PANIC: off, operators' nodes).
    pub verify_tls: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            // Runtime metadata is 1–3 MB of hex; leave room for growth.
            max_message_bytes: 32 * 1024 * 1024,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            verify_tls: false,
        }
    }
}

/// One connection per node URL, shared by every [`WsRpc`] the pool hands out for that URL.
///
/// The pool owns the connection tasks (a `JoinSet`): a task ends by itself when the last client
/// of its URL is dropped (and is reaped at the next [`WsPool::client`]); dropping the pool aborts
/// the tasks still running.
#[derive(Debug, Default)]
pub struct WsPool {
    config: WsConfig,
    conns: Mutex<Conns>,
}

#[derive(Debug, Default)]
struct Conns {
    by_url: HashMap<String, Weak<Conn>>,
    tasks: JoinSet<()>,
}

impl WsPool {
    /// A pool whose connections use `config`.
    pub fn new(config: WsConfig) -> Self {
        WsPool {
            config,
            conns: Mutex::default(),
        }
    }

    /// The client of `url` (its connection shared with every other client of the same URL),
    /// whose calls time out after `timeout`. The connection task of a new URL runs in the current
    /// tokio runtime; outside one this is an error (never a panic).
    pub fn client(&self, url: &str, timeout: Duration) -> Result<WsRpc, WsError> {
        let url = url.trim().to_owned();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(WsError::InvalidUrl(url));
        }
        // A poisoned lock only means a thread panicked while holding it: the map is still valid.
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.by_url.retain(|_, w| w.strong_count() > 0);
        // Reap the tasks of connections whose clients are all gone.
        while conns.tasks.try_join_next().is_some() {}
        if let Some(conn) = conns.by_url.get(&url).and_then(Weak::upgrade) {
            return Ok(WsRpc { conn, timeout });
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(WsError::Down {
                url,
                reason: "no tokio runtime to run the connection in".to_owned(),
            });
        }
        let (commands, rx) = mpsc::unbounded_channel();
        conns.tasks.spawn(run(url.clone(), self.config.clone(), rx));
        let conn = Arc::new(Conn {
            url: url.clone(),
            commands,
        });
        conns.by_url.insert(url, Arc::downgrade(&conn));
        Ok(WsRpc { conn, timeout })
    }

    /// How many connections are alive (held by at least one client).
    pub fn live_connections(&self) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns
            .by_url
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// A JSON-RPC client of one node URL; clones share the connection.
#[derive(Debug, Clone)]
pub struct WsRpc {
    conn: Arc<Conn>,
    timeout: Duration,
}

impl WsRpc {
    /// The node URL.
    pub fn url(&self) -> &str {
        &self.conn.url
    }

    /// The same connection with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> WsRpc {
        WsRpc {
            conn: Arc::clone(&self.conn),
            timeout,
        }
    }

    /// One call: the `result`, or why there is none.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, WsError> {
        let deadline = Instant::now() + self.timeout;
        let (reply, answer) = oneshot::channel();
        let down = |reason: &str| WsError::Down {
            url: self.conn.url.clone(),
            reason: reason.to_owned(),
        };
        self.conn
            .commands
            .send(Request {
                method: method.to_owned(),
                params,
                deadline,
                reply,
            })
            .map_err(|_| down("connection task ended"))?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(down("connection task ended")),
            Err(_) => Err(WsError::Timeout {
                url: self.conn.url.clone(),
                method: method.to_owned(),
            }),
        }
    }
}

/// A request handed to the connection task.
#[derive(Debug)]
struct Request {
    method: String,
    params: Value,
    deadline: Instant,
    reply: oneshot::Sender<Result<Value, WsError>>,
}

/// The shared part of a connection: the command channel to its task.
#[derive(Debug)]
struct Conn {
    url: String,
    commands: mpsc::UnboundedSender<Request>,
}

/// Requests sent and not answered yet: id → (method, reply).
pub(crate) type Pending = HashMap<u64, (String, oneshot::Sender<Result<Value, WsError>>)>;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The connection task: disconnected → (a request arrives, no backoff) connect → serve until the
/// connection is lost → disconnected; ends when the command channel closes.
async fn run(url: String, config: WsConfig, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut backoff = config.backoff_min;
    let mut retry_at = Instant::now();
    let next_id = AtomicU64::new(1);
    while let Some(first) = rx.recv().await {
        if Instant::now() < retry_at {
            fail(first, &url, "reconnect backoff after a failed attempt");
            continue;
        }
        // Requests arriving while connecting wait for this attempt (a round's concurrent
        // calls share it); the channel is watched so a drop of every handle ends the task.
        let deadline = first.deadline;
        let mut waiting = vec![first];
        let attempt = tokio::time::timeout_at(deadline, connect(&url, &config));
        tokio::pin!(attempt);
        let connected = loop {
            tokio::select! {
                biased;
                r = &mut attempt => break r,
                request = rx.recv() => match request {
                    Some(r) => waiting.push(r),
                    None => return,
                },
            }
        };
        let ws = match connected {
            Ok(Ok(ws)) => ws,
            other => {
                let reason = match other {
                    Ok(Err(reason)) => reason,
                    _ => "connection attempt timed out".to_owned(),
                };
                warn!(url = %monitor_core::redact_url(&url), error = %reason, backoff_ms = backoff.as_millis() as u64,
                    "substrate node websocket connection failed");
                for r in waiting {
                    fail(r, &url, &reason);
                }
                retry_at = Instant::now() + backoff;
                backoff = (backoff * 2).min(config.backoff_max);
                continue;
            }
        };
        debug!(url = %monitor_core::redact_url(&url), "substrate node websocket connected");
        backoff = config.backoff_min;
        match serve(ws, waiting, &mut rx, &url, &next_id).await {
            Served::ChannelClosed => return,
            Served::Lost(reason) => {
                warn!(url = %monitor_core::redact_url(&url), error = %reason, "substrate node websocket connection lost");
                retry_at = Instant::now();
            }
        }
    }
}

fn fail(request: Request, url: &str, reason: &str) {
    let _ = request.reply.send(Err(WsError::Down {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }));
}

async fn connect(url: &str, config: &WsConfig) -> Result<Ws, String> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let connector = if url.starts_with("wss://") {
        Some(Connector::Rustls(Arc::new(tls_config(config.verify_tls)?)))
    } else {
        None
    };
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(ws_config), false, connector)
            .await
            .map_err(|e| e.to_string())?;
    Ok(ws)
}

enum Served {
    ChannelClosed,
    Lost(String),
}

/// Serves requests over a live connection until it is lost or the channel closes.
async fn serve(
    mut ws: Ws,
    first: Vec<Request>,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    url: &str,
    next_id: &AtomicU64,
) -> Served {
    let mut pending: Pending = HashMap::new();
    let mut queued: std::collections::VecDeque<Request> = first.into();
    let lost = |pending: &mut Pending, reason: String| {
        for (_, (_, reply)) in pending.drain() {
            let _ = reply.send(Err(WsError::Down {
                url: url.to_owned(),
                reason: reason.clone(),
            }));
        }
        Served::Lost(reason)
    };
    loop {
        if let Some(request) = queued.pop_front() {
            if Instant::now() >= request.deadline || request.reply.is_closed() {
                continue;
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let text = json!({"jsonrpc": "2.0", "id": id, "method": request.method,
                "params": request.params})
            .to_string();
            pending.retain(|_, (_, reply)| !reply.is_closed());
            pending.insert(id, (request.method, request.reply));
            if let Err(e) = ws.send(Message::text(text)).await {
                return lost(&mut pending, e.to_string());
            }
            continue;
        }
        tokio::select! {
            request = rx.recv() => match request {
                Some(r) => queued.push_back(r),
                None => {
                    let _ = ws.close(None).await;
                    return Served::ChannelClosed;
                }
            },
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => answer(text.as_bytes(), &mut pending, url),
                Some(Ok(Message::Binary(bytes))) => answer(&bytes, &mut pending, url),
                Some(Ok(Message::Close(_))) | None => {
                    return lost(&mut pending, "closed by the node".to_owned())
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return lost(&mut pending, e.to_string()),
            },
        }
    }
}

/// What one message from the node is to the calls in flight ([`read_frame`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// Not a JSON object: every call in flight fails as [`WsError::Malformed`] with this reason.
    Garbage(String),
    /// A JSON object without a numeric `id` (a subscription notification, an id-less error):
    /// nothing waits for it.
    Unrouted,
    /// The answer to request `id`: its `result` (`null` when absent), or its JSON-RPC `error`
    /// (code, message).
    Answer {
        /// The request id.
        id: u64,
        /// The result or the error.
        result: Result<Value, (i64, String)>,
    },
}

/// Reads one websocket message (text or binary) from the node: pure, no state.
pub(crate) fn read_frame(bytes: &[u8]) -> Frame {
    let mut body = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(body)) => body,
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Frame::Garbage(format!("JSON {kind}, not an object"));
        }
        Err(e) => return Frame::Garbage(format!("not JSON: {e}")),
    };
    let Some(id) = body.get("id").and_then(Value::as_u64) else {
        return Frame::Unrouted;
    };
    let result = match body.remove("error").filter(|e| !e.is_null()) {
        Some(error) => Err((
            error.get("code").and_then(Value::as_i64).unwrap_or(0),
            error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
        )),
        None => Ok(body.remove("result").unwrap_or(Value::Null)),
    };
    Frame::Answer { id, result }
}

/// Routes one message from the node ([`read_frame`]): an answer to the request with its id
/// (an answer nobody waits for is dropped), garbage to every request in flight, anything else
/// nowhere.
pub(crate) fn answer(bytes: &[u8], pending: &mut Pending, url: &str) {
    match read_frame(bytes) {
        Frame::Garbage(reason) => {
            warn!(url = %monitor_core::redact_url(url), error = %reason, in_flight = pending.len(),
                "substrate node sent a message that is not a JSON object; failing the calls in flight");
            for (_, (method, reply)) in pending.drain() {
                let _ = reply.send(Err(WsError::Malformed {
                    url: url.to_owned(),
                    method,
                    reason: reason.clone(),
                }));
            }
        }
        Frame::Unrouted => {}
        Frame::Answer { id, result } => {
            let Some((method, reply)) = pending.remove(&id) else {
                return;
            };
            let _ = reply.send(result.map_err(|(code, message)| WsError::Rpc {
                url: url.to_owned(),
                method,
                code,
                message,
            }));
        }
    }
}

/// The rustls client config: the platform's roots when verifying, else a verifier that accepts
/// any certificate (PANIC does not verify operators' node endpoints).
fn tls_config(verify: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A platform certificate rustls cannot parse is skipped, as reqwest does.
            let _ = roots.add(cert);
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    } else {
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth())
    }
}

/// Accepts every server certificate (signatures still checked for well-formedness).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_flight(ids: &[u64]) -> (Pending, Vec<oneshot::Receiver<Result<Value, WsError>>>) {
        let mut pending = Pending::new();
        let mut answers = Vec::new();
        for &id in ids {
            let (reply, answer) = oneshot::channel();
            pending.insert(id, (format!("m{id}"), reply));
            answers.push(answer);
        }
        (pending, answers)
    }

    #[test]
    fn an_answer_reaches_its_call_only() {
        let (mut pending, mut answers) = in_flight(&[1, 2]);
        answer(
            br#"{"jsonrpc":"2.0","id":2,"result":{"a":1}}"#,
            &mut pending,
            "ws://h",
        );
        assert_eq!(answers[1].try_recv().unwrap().unwrap(), json!({"a": 1}));
        assert!(answers[0].try_recv().is_err());
        assert_eq!(pending.len(), 1);
        // An error answer, an answer nobody waits for, a notification: only the first routes.
        answer(
            br#"{"id":1,"error":{"code":-32601,"message":"no"}}"#,
            &mut pending,
            "ws://h",
        );
        assert!(matches!(
            answers[0].try_recv().unwrap(),
            Err(WsError::Rpc { code: -32601, .. })
        ));
        let (mut pending, mut answers) = in_flight(&[1]);
        answer(br#"{"id":7,"result":1}"#, &mut pending, "ws://h");
        answer(
            br#"{"jsonrpc":"2.0","method":"chain_newHead","params":{"subscription":"s","result":{}}}"#,
            &mut pending,
            "ws://h",
        );
        answer(
            br#"{"id":null,"error":{"code":-32700}}"#,
            &mut pending,
            "ws://h",
        );
        assert!(answers[0].try_recv().is_err());
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn garbage_fails_every_call_in_flight_as_malformed() {
        let deep = "[".repeat(100_000);
        let cases: [&[u8]; 7] = [
            b"\x01garbage{{{ not json",
            b"\xff\xfe\x00binary",
            br#"{"jsonrpc":"2.0","id":1,"result":NaN}"#,
            deep.as_bytes(),
            b"[1,2]",
            b"12",
            b"",
        ];
        for bytes in cases {
            let (mut pending, answers) = in_flight(&[1, 2, 3]);
            assert!(matches!(read_frame(bytes), Frame::Garbage(_)));
            answer(bytes, &mut pending, "ws://user:secret@h");
            assert!(pending.is_empty());
            for mut a in answers {
                let e = a.try_recv().unwrap().unwrap_err();
                assert!(matches!(e, WsError::Malformed { .. }), "{e:?}");
                assert!(!e.is_down());
            }
        }
    }
}
