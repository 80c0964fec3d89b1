//! PANIC's heartbeat keys in Redis (feature `redis`).

use std::time::Duration;

use async_trait::async_trait;
use monitor_bus::{tls_failure, TlsOptions};
use monitor_core::redact_url;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ClientTlsConfig, RedisError, TlsCertificates};

use super::{HeartbeatSink, SinkError};

/// Heartbeats in Redis at `<namespace>:c1_<component_name>` (plain `SET`, no TTL).
#[derive(Clone)]
pub struct RedisHeartbeatSink {
    conn: ConnectionManager,
    namespace: String,
    /// The URL (password redacted) and TLS settings, to explain a TLS failure.
    tls: Option<(String, TlsOptions)>,
}

impl std::fmt::Debug for RedisHeartbeatSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHeartbeatSink")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisHeartbeatSink {
    /// A sink on an existing connection.
    pub fn new(conn: ConnectionManager, namespace: &str) -> Self {
        RedisHeartbeatSink {
            conn,
            namespace: namespace.to_owned(),
            tls: None,
        }
    }

    /// A sink with its own connection to `url`, connected lazily (so the health checker can start
    /// before Redis) and reconnecting after Redis goes away. Must be called inside a tokio runtime.
    pub fn open(url: &str, namespace: &str) -> Result<Self, SinkError> {
        Self::open_with_tls(url, namespace, &TlsOptions::default())
    }

    /// [`RedisHeartbeatSink::open`] with the TLS settings of a `rediss://` URL (CA file, client
    /// certificate, no verification: `#insecure`); `tls` is ignored for `redis://`.
    pub fn open_with_tls(url: &str, namespace: &str, tls: &TlsOptions) -> Result<Self, SinkError> {
        let config_error = |e: &dyn std::fmt::Display| {
            SinkError::Config(format!("redis url `{}`: {e}", redact_url(url)))
        };
        let client = redis_client(url, tls).map_err(|e| config_error(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| config_error(&e))?;
        let mut sink = Self::new(conn, namespace);
        sink.tls = Some((redact_url(url).into_owned(), tls.clone()));
        Ok(sink)
    }

    /// A failed command: [`SinkError::Tls`] when the TLS handshake failed (explained), else
    /// [`SinkError::Unavailable`].
    fn unavailable(&self, e: &RedisError) -> SinkError {
        match (tls_failure(e), &self.tls) {
            (Some(failure), Some((url, tls))) => SinkError::Tls(failure.explain(url, tls)),
            (Some(failure), None) => {
                SinkError::Tls(failure.explain("Redis", &TlsOptions::default()))
            }
            (None, _) => SinkError::Unavailable(e.to_string()),
        }
    }

    /// Ask Redis for a `PING` (connecting first if need be): how a binary finds out at start that
    /// Redis's certificate does not verify.
    pub async fn ping(&self) -> Result<(), SinkError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))
    }

    /// The Redis key of `component_name`'s heartbeat.
    pub fn key(&self, component_name: &str) -> String {
        format!("{}:c1_{component_name}", self.namespace)
    }
}

#[async_trait]
impl HeartbeatSink for RedisHeartbeatSink {
    async fn store(&self, component_name: &str, heartbeat_json: &str) -> Result<(), SinkError> {
        let mut conn = self.conn.clone();
        conn.set::<_, _, ()>(self.key(component_name), heartbeat_json)
            .await
            .map_err(|e| self.unavailable(&e))
    }
}

/// The client for `url`: for `rediss://`, with `tls`'s CA and client certificate, and `#insecure`
/// appended when verification is off.
fn redis_client(url: &str, tls: &TlsOptions) -> Result<redis::Client, String> {
    if !url.starts_with("rediss:") {
        return redis::Client::open(url).map_err(|e| e.to_string());
    }
    let url = if tls.accept_invalid_certs && !url.contains('#') {
        format!("{url}#insecure")
    } else {
        url.to_owned()
    };
    let pem = tls.read_pem().map_err(|e| e.to_string())?;
    if pem.ca.is_none() && pem.client.is_none() {
        return redis::Client::open(url).map_err(|e| e.to_string());
    }
    let certificates = TlsCertificates {
        client_tls: pem.client.map(|(client_cert, client_key)| ClientTlsConfig {
            client_cert,
            client_key,
        }),
        root_cert: pem.ca,
    };
    redis::Client::build_with_tls(url, certificates).map_err(|e| e.to_string())
}
