//! The HTTP layer every strategy uses: one exchange with a timeout covering connect, headers and
//! body, the body read in chunks under a size cap, and transport failures classified the way PANIC
//! classified `requests`' exceptions:
//!
//! | [`HttpErrorKind`] | PANIC (`requests` / `urllib3`) | system monitor |
//! |---|---|---|
//! | [`Down`](HttpErrorKind::Down) | `ConnectionError` (refused, DNS, TLS, reset before a response, bad status line), `ReadTimeout`, `ConnectTimeout` | 5004 |
//! | [`Read`](HttpErrorKind::Read) | `IncompleteRead`, `ChunkedEncodingError`, `ProtocolError` while reading the body; here also a body over the cap | 5005 |
//! | [`InvalidUrl`](HttpErrorKind::InvalidUrl) | `InvalidURL`, `InvalidSchema`, `MissingSchema` | 5009 |
//!
//! Each strategy maps these to its own codes. A timeout while the body is streaming is `Down`, as
//! `requests` raised `ConnectionError` for it. The HTTP status is not an error here: PANIC parsed
//! whatever body came back, and callers that care look at [`HttpResponse::status`].
//!
//! Connections are kept alive and pooled (PANIC sent `Connection: close`): see
//! [`crate::settings`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use tracing::debug;

use crate::settings::{Hold, KeepAliveBudget};

mod kept;
pub use kept::KeptConnection;

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpErrorKind {
    /// The server could not be reached or did not answer in time.
    Down,
    /// The response could not be read completely (truncated, bad chunking, over the cap).
    Read,
    /// The URL is not a usable `http`/`https` URL.
    InvalidUrl,
}

impl std::fmt::Display for HttpErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpErrorKind::Down => "cannot reach",
            HttpErrorKind::Read => "cannot read the response of",
            HttpErrorKind::InvalidUrl => "invalid url",
        })
    }
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{}`: {reason}", monitor_core::redact_url(url))]
pub struct HttpError {
    /// The class of failure.
    pub kind: HttpErrorKind,
    /// The URL as given.
    pub url: String,
    /// What happened (the underlying error chain).
    pub reason: String,
}

impl HttpError {
    /// The refused redirect, when that is why the request failed: `redirect refused: HTTP 302 to
    /// `…`: why` (the target's password redacted).
    pub fn refused_redirect(&self) -> Option<&str> {
        let at = self.reason.find(REDIRECT_REFUSED)?;
        let rest = self.reason.get(at..)?;
        // The policy's message is the innermost error of the chain: it runs to the end, unless
        // reqwest repeats it.
        Some(rest)
    }

    fn new(kind: HttpErrorKind, url: &str, reason: impl Into<String>) -> Self {
        HttpError {
            kind,
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}

/// How a refused redirect's reason starts (see `settings::redirect_policy`).
pub(crate) const REDIRECT_REFUSED: &str = "redirect refused: ";

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body (at most the cap).
    pub body: Bytes,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

/// A shared client with the timeout and body cap of one strategy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: usize,
    /// Which hosts may keep their connection alive (see `settings::ConnectionLimits`).
    keep_alive: Option<Arc<KeepAliveBudget>>,
}

impl Http {
    /// A handle over `client`.
    pub fn new(client: reqwest::Client, timeout: Duration, max_body_bytes: usize) -> Self {
        Http {
            client,
            timeout,
            max_body_bytes,
            keep_alive: None,
        }
    }

    /// Requests to hosts `budget` gives no keep-alive place are sent with `Connection: close`.
    pub(crate) fn with_keep_alive_budget(mut self, budget: Arc<KeepAliveBudget>) -> Self {
        self.keep_alive = Some(budget);
        self
    }

    /// The timeout of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The body cap.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<HttpResponse, HttpError> {
        self.request(Method::GET, url, &[], None).await
    }

    /// `GET url` with extra headers.
    pub async fn get_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, HttpError> {
        self.request(Method::GET, url, headers, None).await
    }

    /// `POST url` with a JSON body (JSON-RPC).
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<HttpResponse, HttpError> {
        self.post_json_with(url, body, false).await
    }

    /// `POST url` with a JSON body; `keep_open`: leave the connection open for the next request
    /// of the round even if the host has no keep-alive place (the caller holds a [`Hold`]).
    pub(crate) async fn post_json_with(
        &self,
        url: &str,
        body: &serde_json::Value,
        keep_open: bool,
    ) -> Result<HttpResponse, HttpError> {
        let bytes = body.to_string().into_bytes();
        self.exchange_with(
            Method::POST,
            url,
            &[("content-type", "application/json")],
            Some(bytes),
            keep_open,
        )
        .await
    }

    /// A place to hold the connection to `url` between the requests of one round (see
    /// [`ConnectionLimits`](crate::ConnectionLimits)): `None` when the host keeps its connections
    /// anyway, every place is taken, or the URL does not parse.
    pub(crate) fn hold(&self, url: &str) -> Option<Hold> {
        let budget = self.keep_alive.as_ref()?;
        budget.hold(&parse_url(url).ok()?)
    }

    /// One exchange: the whole of it (connect, headers, body) within the timeout.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, HttpError> {
        self.exchange_with(method, url, headers, body, false).await
    }

    async fn exchange_with(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        keep_open: bool,
    ) -> Result<HttpResponse, HttpError> {
        let parsed = parse_url(url)?;
        let close = !keep_open
            && self
                .keep_alive
                .as_ref()
                .is_some_and(|budget| !budget.keep_alive(&parsed));
        let mut builder = self.client.request(method, parsed).timeout(self.timeout);
        if close {
            builder = builder.header(reqwest::header::CONNECTION, "close");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        match tokio::time::timeout(self.timeout, self.exchange(builder, url)).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(url)),
        }
    }

    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<HttpResponse, HttpError> {
        let mut response = builder.send().await.map_err(|e| classify_send(&e, url))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        self.read_body(&mut response, url, &mut body).await?;
        Ok(HttpResponse {
            status,
            headers,
            body: Bytes::from(body),
        })
    }

    /// `GET url` (parsed beforehand with [`parse_url`]; `raw` is the URL as configured, for
    /// errors), the body read into `body` (cleared first; its capacity is kept, so a caller that
    /// keeps the buffer across rounds allocates nothing for it in steady state). Returns the
    /// status.
    pub async fn get_into(
        &self,
        url: &Url,
        raw: &str,
        body: &mut Vec<u8>,
    ) -> Result<u16, HttpError> {
        self.get_into_within(url, raw, body, self.timeout).await
    }

    /// [`get_into`](Http::get_into) within `limit` (the part of the timeout left).
    async fn get_into_within(
        &self,
        url: &Url,
        raw: &str,
        body: &mut Vec<u8>,
        limit: Duration,
    ) -> Result<u16, HttpError> {
        body.clear();
        let mut builder = self.client.get(url.clone());
        if self
            .keep_alive
            .as_ref()
            .is_some_and(|budget| !budget.keep_alive(url))
        {
            builder = builder.header(reqwest::header::CONNECTION, "close");
        }
        let exchange = async {
            let mut response = builder.send().await.map_err(|e| classify_send(&e, raw))?;
            let status = response.status().as_u16();
            self.read_body(&mut response, raw, body).await?;
            Ok(status)
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(raw)),
        }
    }

    /// Reads the body in chunks into `body`, under the cap.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        url: &str,
        body: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        self.start_body(url, response.content_length(), body)?;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => self.push_chunk(url, &chunk, body)?,
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(HttpError::new(HttpErrorKind::Down, url, error_chain(&e)));
                }
                Err(e) => return Err(HttpError::new(HttpErrorKind::Read, url, error_chain(&e))),
            }
        }
        debug!(url = %monitor_core::redact_url(url), status = response.status().as_u16(), bytes = body.len(), "http response read");
        Ok(())
    }

    /// Before a body is read: a declared length over the cap is refused, and room is reserved
    /// for the body (8 KiB when no length is declared), at most the cap.
    pub(crate) fn start_body(
        &self,
        url: &str,
        declared: Option<u64>,
        body: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if let Some(len) = declared {
            if len > self.max_body_bytes as u64 {
                return Err(self.over_cap(url, usize::try_from(len).unwrap_or(usize::MAX)));
            }
        }
        let capacity = declared.map_or(8 * 1024, |l| usize::try_from(l).unwrap_or(0));
        body.reserve(capacity.min(self.max_body_bytes));
        Ok(())
    }

    /// Appends one chunk of a body, under the cap.
    pub(crate) fn push_chunk(
        &self,
        url: &str,
        chunk: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if body.len() + chunk.len() > self.max_body_bytes {
            return Err(self.over_cap(url, body.len() + chunk.len()));
        }
        body.extend_from_slice(chunk);
        Ok(())
    }

    fn over_cap(&self, url: &str, len: usize) -> HttpError {
        HttpError::new(
            HttpErrorKind::Read,
            url,
            format!(
                "body of {len} bytes or more is over the cap of {} bytes",
                self.max_body_bytes
            ),
        )
    }
}

/// `requests`' URL checks: a scheme (`MissingSchema`), `http` or `https` (`InvalidSchema`), a host
/// and a valid port (`InvalidURL`).
pub(crate) fn parse_url(url: &str) -> Result<Url, HttpError> {
    let invalid = |reason: String| HttpError::new(HttpErrorKind::InvalidUrl, url, reason);
    let parsed = Url::parse(url.trim()).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(invalid(format!("unsupported scheme `{other}`"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    Ok(parsed)
}

/// Classifies an error of `send()` (before the response head was complete).
fn classify_send(err: &reqwest::Error, url: &str) -> HttpError {
    let kind = if err.is_builder() {
        HttpErrorKind::InvalidUrl
    } else if err.is_redirect() {
        // A redirect refused (another host or port, too many, a POST turned GET): the exchange
        // went wrong after the server answered. The reason names the redirect.
        HttpErrorKind::Read
    } else {
        // Connect errors, timeouts, a connection closed or garbage before a response head:
        // `requests` raised `ConnectionError` for all of these.
        HttpErrorKind::Down
    };
    HttpError::new(kind, url, error_chain(err))
}

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// How a JSON value is described in error messages (`a list`, `an object`, …).
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_checks() {
        for bad in [
            "",
            "localhost:9100/metrics",
            "ftp://host/metrics",
            "http://",
            "http://host:99999/",
            "not a url",
            "file:///etc/passwd",
        ] {
            let err = parse_url(bad).unwrap_err();
            assert_eq!(err.kind, HttpErrorKind::InvalidUrl, "{bad}");
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid url `{bad}`: ")),
                "{err}"
            );
        }
        assert!(parse_url("http://127.0.0.1:9100/metrics").is_ok());
        assert!(parse_url("https://node.example:9100/metrics").is_ok());
    }
}
