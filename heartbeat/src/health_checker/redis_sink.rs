//! PANIC's heartbeat keys in Redis (feature `redis`).

use async_trait::async_trait;
use monitor_bus::{tls_failure, TlsOptions};
use monitor_core::redact_url;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};

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
        let conn =
            crate::redis_connection::connection_manager(url, tls).map_err(SinkError::Config)?;
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
