//! The [`MonitorablesStore`] trait and its errors.

use async_trait::async_trait;
use monitor_core::envelope::MonitorableMessage;
use monitor_core::MonitorableKey;

use crate::document::Document;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer (transient: retry later).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored document of `base_chain` is not a monitorables document (permanent until someone
    /// fixes or deletes it).
    #[error("stored monitorables document for base chain `{base_chain}` is corrupt: {reason}")]
    Corrupt {
        /// The base chain whose document is unreadable.
        base_chain: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The TLS handshake with the backend failed (its certificate did not verify, it refused
    /// ours): the message explains. Transient, as an outage is (the server's certificate may be
    /// fixed), but it will not pass by itself.
    #[error("store unavailable: {0}")]
    Tls(String),
    /// The URL or another setting is invalid.
    #[error("invalid store setting: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Tls(_))
    }
}

/// Where monitorables are kept: one [`Document`] per base chain.
///
/// Implementations apply [`crate::document::merge`] atomically: concurrent `apply` calls (from this
/// value, its clones, or other processes sharing the backend) never lose each other's updates.
#[async_trait]
pub trait MonitorablesStore: Send + Sync {
    /// Merge one monitorable message (spec §6.2 steps 1–5) for `key`'s base chain and type.
    async fn apply(&self, key: &MonitorableKey, msg: &MonitorableMessage)
        -> Result<(), StoreError>;

    /// The document of `base_chain` (lower-cased); empty when nothing is stored.
    async fn load(&self, base_chain: &str) -> Result<Document, StoreError>;

    /// Base chains that have a non-empty document, sorted.
    async fn base_chains(&self) -> Result<Vec<String>, StoreError>;
}
