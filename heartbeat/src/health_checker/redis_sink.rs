//! PANIC's heartbeat keys in Redis (feature `redis`).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{HeartbeatSink, SinkError};

/// Heartbeats in Redis at `<namespace>:c1_<component_name>` (plain `SET`, no TTL).
#[derive(Clone)]
pub struct RedisHeartbeatSink {
    conn: ConnectionManager,
    namespace: String,
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
        }
    }

    /// A sink with its own connection to `url`, connected lazily (so the health checker can start
    /// before Redis) and reconnecting after Redis goes away. Must be called inside a tokio runtime.
    pub fn open(url: &str, namespace: &str) -> Result<Self, SinkError> {
        let client = redis::Client::open(url).map_err(|e| {
            SinkError::Config(format!(
                "redis url `{}`: {e}",
                monitor_core::redact_url(url)
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            SinkError::Config(format!(
                "redis url `{}`: {e}",
                monitor_core::redact_url(url)
            ))
        })?;
        Ok(Self::new(conn, namespace))
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
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}
