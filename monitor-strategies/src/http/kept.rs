//! The system monitor's fetch path for plain `http://` URLs: hyper's connection-level HTTP/1.1
//! client (`hyper::client::conn::http1`) on a connection the monitor keeps between rounds
//! ([`KeptConnection`]), the connection future polled inside the monitor's own task together with
//! the response and its body. No spawned connection task, no pool, no redirect policy: what
//! reqwest's pool costs per request (a wake-up each way between the request's task and the
//! connection's, the pool checkout, the request built and its URL re-parsed by the redirect
//! policy) is not paid.
//!
//! It behaves as the reqwest path of [`Http::get_into`](super::Http::get_into) does (the same
//! error kinds and texts of the timeout and the body cap, the same headers, basic auth from the
//! URL's userinfo), and hands over to it what it does not do itself: `https://` URLs (TLS
//! settings live in the reqwest client), any 3xx answer (the same-host, 3-hop redirect policy),
//! a response head over [`MAX_BUF`] (reqwest reads heads up to about 400 KiB), userinfo that is
//! not UTF-8 once percent-decoded.
//!
//! Connections are bounded as the pool's are: a connection is kept after a request only with a
//! place of the [`KeepAliveBudget`] ([`KeepAliveBudget::kept_connection`]), which takes one of the
//! `max_kept_hosts` places the pool's hosts take, counted per connection and at most
//! `max_idle_per_host` per host, so kept sockets stay within `max_kept_hosts × max_idle_per_host`
//! whatever the number of monitors. Without a place (all taken, or the host's monitors already
//! keep `max_idle_per_host` connections) the request goes through the reqwest client, whose pool
//! shares its connections between the host's monitors or sends `Connection: close`. A
//! connection idle for the idle timeout or longer is closed at the next round (its place is
//! held until then).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Body as _;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use tokio::net::TcpStream;
use tracing::debug;

use super::{error_chain, Http, HttpError, HttpErrorKind};
use crate::settings::{ConnPlace, KeepAliveBudget, USER_AGENT as OUR_USER_AGENT};

/// hyper's read buffer grows to at most this (its minimum is 8 KiB): what a kept connection keeps
/// allocated between rounds, and the largest response head read here (a larger one is handed to
/// reqwest, which allows about 400 KiB, so the outcome is the same).
pub(crate) const MAX_BUF: usize = 16 * 1024;

/// A connection a caller keeps between its requests to one `http://` URL (see
/// [`Http::get_into_kept`]). Empty until the first request; holds at most one connection (and
/// its kept-connection place) at a time. Dropping it closes the connection.
#[derive(Debug, Default)]
pub struct KeptConnection {
    inner: Option<Box<Kept>>,
}

impl KeptConnection {
    /// Whether a connection is kept now.
    pub fn is_open(&self) -> bool {
        self.inner.as_ref().is_some_and(|k| k.conn.is_some())
    }
}

/// What is kept: the request prefix of the URL and, between rounds, the connection.
struct Kept {
    /// The URL this was made for (a request to another URL starts afresh).
    url: String,
    /// The request's target (path and query), `Host`, `Authorization`.
    target: String,
    host: HeaderValue,
    auth: Option<HeaderValue>,
    /// The open connection, if any.
    conn: Option<Conn>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("url", &monitor_core::redact_url(&self.url))
            .field("open", &self.conn.is_some())
            .finish()
    }
}

/// One HTTP/1.1 connection: the request handle and the connection future, both owned here.
struct Conn {
    send: http1::SendRequest<Empty<Bytes>>,
    conn: http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>,
    /// The connection future has completed (closed or failed): never polled again.
    ended: bool,
    /// An exchange started and has not completed: if it is still set at the next request, that
    /// exchange was cancelled from outside (its round dropped) and the connection is mid-answer.
    in_flight: bool,
    /// The kept-connection place, given back when the connection is dropped.
    _place: ConnPlace,
    last_used: Instant,
}

impl Conn {
    /// Polls the connection (reads and writes what it can) unless it ended; `true` once it has.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ended && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.ended = true;
        }
        self.ended
    }

    /// Whether the connection can take a request: polled once, so a close by the server while
    /// idle (its FIN already read) is seen now.
    async fn usable(&mut self) -> bool {
        poll_fn(|cx| {
            self.drive(cx);
            Poll::Ready(())
        })
        .await;
        !self.ended && self.send.is_ready()
    }
}

/// How an exchange on the fast path ended.
enum Outcome {
    /// The status; the body is in the caller's buffer.
    Done(u16),
    /// Not for this path: redo the request with reqwest.
    HandOver,
}

/// A failure of one exchange, with whether a retry on a fresh connection is right.
struct Failure {
    error: HttpError,
    /// Failed before any byte of a response (a kept connection the server closed).
    before_response: bool,
}

impl Http {
    /// [`get_into`](Http::get_into) on a connection kept in `kept` between calls: for `http://`
    /// URLs the exchange runs in the caller's task on hyper's connection-level client (see the
    /// module `http::kept`); other URLs, and answers this path does not handle (redirects),
    /// go through the reqwest client. Same outcome, errors and timeout as `get_into`.
    pub async fn get_into_kept(
        &self,
        url: &Url,
        raw: &str,
        body: &mut Vec<u8>,
        kept: &mut KeptConnection,
    ) -> Result<u16, HttpError> {
        if url.scheme() != "http" {
            kept.inner = None;
            return self.get_into(url, raw, body).await;
        }
        if kept.inner.as_ref().is_none_or(|k| k.url != url.as_str()) {
            match Kept::new(url) {
                Some(k) => kept.inner = Some(Box::new(k)),
                None => {
                    kept.inner = None;
                    return self.get_into(url, raw, body).await;
                }
            }
        }
        let Some(k) = kept.inner.as_deref_mut() else {
            return self.get_into(url, raw, body).await;
        };
        let start = tokio::time::Instant::now();
        let fast = k.get(self, url, raw, body);
        let outcome = match tokio::time::timeout(self.timeout, fast).await {
            Ok(outcome) => outcome,
            Err(_) => {
                k.conn = None;
                Err(self.timed_out(raw))
            }
        }?;
        match outcome {
            Outcome::Done(status) => Ok(status),
            Outcome::HandOver => {
                let left = self.timeout.saturating_sub(start.elapsed());
                self.get_into_within(url, raw, body, left).await
            }
        }
    }

    /// The error of an exchange that did not complete within the timeout.
    pub(super) fn timed_out(&self, raw: &str) -> HttpError {
        HttpError::new(
            HttpErrorKind::Down,
            raw,
            format!("no complete answer within {:?}", self.timeout),
        )
    }
}

impl Kept {
    /// The request prefix of `url`; `None` when its userinfo does not decode (reqwest's case).
    fn new(url: &Url) -> Option<Self> {
        let host = url.host_str()?;
        // As hyper-util's client writes it: the port only when not the scheme's default (which
        // `Url` has already dropped).
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let auth = if !url.username().is_empty() || url.password().is_some() {
            let user = percent_decode(url.username())?;
            let password = match url.password() {
                Some(p) => Some(percent_decode(p)?),
                None => None,
            };
            let mut text = format!("{user}:");
            if let Some(p) = password {
                text.push_str(&p);
            }
            let mut value = HeaderValue::try_from(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(text)
            ))
            .ok()?;
            value.set_sensitive(true);
            Some(value)
        } else {
            None
        };
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        Some(Kept {
            url: url.as_str().to_owned(),
            target,
            host: HeaderValue::try_from(host).ok()?,
            auth,
            conn: None,
        })
    }

    /// One `GET`, retried once on a fresh connection when a kept one failed before any response
    /// byte (the server closed it while idle).
    async fn get(
        &mut self,
        http: &Http,
        url: &Url,
        raw: &str,
        body: &mut Vec<u8>,
    ) -> Result<Outcome, HttpError> {
        let idle = http.keep_alive.as_ref().map(|b| b.idle_timeout());
        if let Some(c) = self.conn.as_mut() {
            let stale = idle.is_some_and(|idle| c.last_used.elapsed() >= idle);
            if stale || c.in_flight || !c.usable().await {
                self.conn = None;
            }
        }
        let reused = self.conn.is_some();
        match self.attempt(http, url, raw, body).await {
            Err(f) if reused && f.before_response => {
                debug!(url = %monitor_core::redact_url(raw), error = %f.error, "kept connection closed, retrying on a new one");
                self.conn = None;
                self.attempt(http, url, raw, body)
                    .await
                    .map_err(|f| f.error)
            }
            other => other.map_err(|f| f.error),
        }
    }

    /// One exchange on the kept connection, opened first if there is none, with a place of the
    /// keep-alive budget ([`KeepAliveBudget::kept_connection`]); without a place, a hand-over to
    /// the reqwest client.
    async fn attempt(
        &mut self,
        http: &Http,
        url: &Url,
        raw: &str,
        body: &mut Vec<u8>,
    ) -> Result<Outcome, Failure> {
        body.clear();
        if self.conn.is_none() {
            // The place first: without one (every place taken, or the host has its
            // `max_idle_per_host` kept connections) the pool's client does the request.
            let place = match &http.keep_alive {
                Some(budget) => KeepAliveBudget::kept_connection(budget, url),
                None => Some(ConnPlace::unbounded()),
            };
            let Some(place) = place else {
                return Ok(Outcome::HandOver);
            };
            self.conn = Some(connect(url, raw, place).await?);
        }
        let Some(c) = self.conn.as_mut() else {
            return Err(Failure::down(raw, "no connection".to_owned(), false));
        };
        let head = Head {
            target: &self.target,
            host: &self.host,
            auth: self.auth.as_ref(),
        };
        c.in_flight = true;
        let result = exchange(c, head, http, raw, body).await;
        c.in_flight = false;
        match &result {
            Ok(Outcome::Done(_)) if !c.ended && !c.send.is_closed() => {
                c.last_used = Instant::now();
            }
            _ => self.conn = None,
        }
        result
    }
}

/// What a request is made of.
struct Head<'a> {
    target: &'a str,
    host: &'a HeaderValue,
    auth: Option<&'a HeaderValue>,
}

/// Sends the request on `c` and reads the answer into `body`, polling the connection in this
/// task throughout.
async fn exchange(
    c: &mut Conn,
    k: Head<'_>,
    http: &Http,
    raw: &str,
    body: &mut Vec<u8>,
) -> Result<Outcome, Failure> {
    let mut request = hyper::Request::get(k.target);
    if let Some(headers) = request.headers_mut() {
        headers.insert(USER_AGENT, HeaderValue::from_static(OUR_USER_AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(auth) = k.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        headers.insert(HOST, k.host.clone());
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| Failure::new(HttpErrorKind::InvalidUrl, raw, error_chain(&e), false))?;
    let mut pending = Box::pin(c.send.send_request(request));
    let head = poll_fn(|cx| {
        let ended = c.drive(cx);
        match pending.as_mut().poll(cx) {
            Poll::Pending if ended => Poll::Ready(Err(None)),
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => Poll::Ready(r.map_err(Some)),
        }
    })
    .await;
    let response = match head {
        Ok(response) => response,
        Err(Some(e)) if e.is_parse_too_large() => return Ok(Outcome::HandOver),
        Err(Some(e)) => {
            // As reqwest classifies a failed send: refused, reset, closed, garbage: `Down`.
            let before = !e.is_parse() && !e.is_parse_status();
            return Err(Failure::down(
                raw,
                format!("error sending request: {}", error_chain(&e)),
                before,
            ));
        }
        Err(None) => {
            return Err(Failure::down(
                raw,
                "error sending request: connection closed before message completed".to_owned(),
                true,
            ))
        }
    };
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        return Ok(Outcome::HandOver);
    }
    let read_failure = |error| Failure {
        error,
        before_response: false,
    };
    let declared = hyper::body::Body::size_hint(response.body()).exact();
    http.start_body(raw, declared, body).map_err(read_failure)?;
    let mut incoming = response.into_body();
    poll_fn(|cx| loop {
        let ended = c.drive(cx);
        match Pin::new(&mut incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(e) = http.push_chunk(raw, data, body) {
                        return Poll::Ready(Err(read_failure(e)));
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Err(Failure::new(
                    HttpErrorKind::Read,
                    raw,
                    format!("error decoding response body: {}", error_chain(&e)),
                    false,
                )))
            }
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending if ended => {
                return Poll::Ready(Err(Failure::new(
                    HttpErrorKind::Read,
                    raw,
                    "error decoding response body: connection closed before the body ended"
                        .to_owned(),
                    false,
                )))
            }
            Poll::Pending => return Poll::Pending,
        }
    })
    .await?;
    debug!(url = %monitor_core::redact_url(raw), status, bytes = body.len(), "http response read");
    Ok(Outcome::Done(status))
}

/// A new connection to `url`'s host and port (a DNS name is resolved by tokio), keeping `place`.
async fn connect(url: &Url, raw: &str, place: ConnPlace) -> Result<Conn, Failure> {
    let port = url.port_or_known_default().unwrap_or(80);
    let refused = |e: std::io::Error| {
        Failure::down(
            raw,
            format!("error sending request: tcp connect error: {e}"),
            false,
        )
    };
    // An IPv6 literal without its brackets; tokio parses an IP first, else resolves the name.
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = TcpStream::connect((host, port)).await.map_err(refused)?;
    stream.set_nodelay(true).map_err(refused)?;
    let (send, conn) = http1::Builder::new()
        .max_buf_size(MAX_BUF)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::down(raw, error_chain(&e), false))?;
    Ok(Conn {
        send,
        conn,
        ended: false,
        in_flight: false,
        _place: place,
        last_used: Instant::now(),
    })
}

impl Failure {
    fn new(kind: HttpErrorKind, raw: &str, reason: String, before_response: bool) -> Self {
        Failure {
            error: HttpError::new(kind, raw, reason),
            before_response,
        }
    }

    fn down(raw: &str, reason: String, before_response: bool) -> Self {
        Failure::new(HttpErrorKind::Down, raw, reason, before_response)
    }
}

/// `%XX`-decoding of a URL's userinfo, as reqwest does before basic auth; `None` if not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_decoded_as_reqwest_does() {
        assert_eq!(percent_decode("a%20b%3Ac").as_deref(), Some("a b:c"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(percent_decode("%ff"), None);
        let k = Kept::new(&Url::parse("http://us%65r:p%40ss@[::1]:9100/m?x=1").unwrap()).unwrap();
        assert_eq!(k.target, "/m?x=1");
        assert_eq!(k.host, "[::1]:9100");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:p@ss")
        );
        assert_eq!(k.auth.unwrap(), expected.as_str());
        let k = Kept::new(&Url::parse("http://node.example:80/metrics").unwrap()).unwrap();
        assert_eq!(k.host, "node.example");
        assert!(k.auth.is_none());
        let shown = format!(
            "{:?}",
            Kept::new(&Url::parse("http://u:s3cret@h/").unwrap())
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
