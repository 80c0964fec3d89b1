//! [`MemoryStore`]: the in-memory store (the embedded default, and tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use monitor_core::envelope::MonitorableMessage;
use monitor_core::MonitorableKey;

use crate::document::{merge, Document};
use crate::store::{MonitorablesStore, StoreError};

/// Documents in a map behind a mutex; the merge runs under the lock, so it is atomic. Clones share
/// the same documents.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    docs: Arc<Mutex<HashMap<String, Document>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Document>> {
        // The merge never panics half-way in a way that matters more than losing the store.
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MonitorablesStore for MemoryStore {
    async fn apply(
        &self,
        key: &MonitorableKey,
        msg: &MonitorableMessage,
    ) -> Result<(), StoreError> {
        let mut docs = self.lock();
        let doc = docs.entry(key.base_chain.clone()).or_default();
        merge(doc, key.monitorable_type, msg);
        if doc.is_empty() {
            docs.remove(&key.base_chain);
        }
        Ok(())
    }

    async fn load(&self, base_chain: &str) -> Result<Document, StoreError> {
        Ok(self
            .lock()
            .get(&base_chain.to_lowercase())
            .cloned()
            .unwrap_or_default())
    }

    async fn base_chains(&self) -> Result<Vec<String>, StoreError> {
        let mut chains: Vec<String> = self.lock().keys().cloned().collect();
        chains.sort();
        Ok(chains)
    }
}
