//! Where the heartbeat handler keeps heartbeats: the [`HeartbeatSink`] trait and the in-memory
//! sink.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

/// Errors of a heartbeat sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The backend cannot be reached or did not answer (retry later).
    #[error("heartbeat store unavailable: {0}")]
    Unavailable(String),
    /// The TLS handshake with the backend failed (its certificate did not verify, it refused
    /// ours): the message explains.
    #[error("heartbeat store unavailable: {0}")]
    Tls(String),
    /// A setting (such as the Redis URL) is invalid.
    #[error("invalid heartbeat store setting: {0}")]
    Config(String),
}

/// Where heartbeats are kept, by component name.
#[async_trait]
pub trait HeartbeatSink: Send + Sync {
    /// Store `heartbeat_json` (kept exactly as given) as the latest heartbeat of `component_name`.
    async fn store(&self, component_name: &str, heartbeat_json: &str) -> Result<(), SinkError>;
}

/// Heartbeats in memory (embedding and tests). Clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryHeartbeatSink {
    map: Arc<Mutex<HashMap<String, String>>>,
}

impl MemoryHeartbeatSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored heartbeat of `component_name`.
    pub fn get(&self, component_name: &str) -> Option<String> {
        self.lock().get(component_name).cloned()
    }

    /// Every stored heartbeat, by component name.
    pub fn all(&self) -> HashMap<String, String> {
        self.lock().clone()
    }
}

#[async_trait]
impl HeartbeatSink for MemoryHeartbeatSink {
    async fn store(&self, component_name: &str, heartbeat_json: &str) -> Result<(), SinkError> {
        self.lock()
            .insert(component_name.to_owned(), heartbeat_json.to_owned());
        Ok(())
    }
}
