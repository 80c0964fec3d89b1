//! A node as the Substrate monitors read it: JSON-RPC calls with their answers checked, the
//! runtime metadata fetched at run time and again when the runtime version at the block read
//! changes (kept per `(specName, specVersion)`, so a runtime upgrade costs one metadata fetch),
//! and storage reads at one block ([`BlockView`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info};

use super::metadata::{parse_hex, DValue, DecodeError, KeyArg, Metadata};
use super::rpc::{WsError, WsRpc};

/// How long `system_properties` is kept (PANIC: 24 h).
const PROPERTIES_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The call failed (node down, timeout, JSON-RPC error); never [`WsError::Malformed`], which
    /// [`NodeClient::call`] turns into [`ChainError::Malformed`].
    #[error(transparent)]
    Call(#[from] WsError),
    /// The answer or a value could not be read (wrong JSON shape, SCALE that does not decode).
    #[error("malformed data from `{node}`: {problem}")]
    Malformed {
        /// The node name.
        node: String,
        /// What is wrong.
        problem: String,
    },
}

/// One node: its client, the runtimes it has shown, its cached properties.
#[derive(Debug)]
pub struct NodeClient {
    name: String,
    rpc: WsRpc,
    runtimes: Mutex<HashMap<(String, u64), Arc<Metadata>>>,
    properties: Mutex<Option<(Instant, Value)>>,
}

impl NodeClient {
    /// A client of node `name` over `rpc`.
    pub fn new(name: &str, rpc: WsRpc) -> Self {
        NodeClient {
            name: name.to_owned(),
            rpc,
            runtimes: Mutex::default(),
            properties: Mutex::default(),
        }
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn malformed(&self, problem: impl Into<String>) -> ChainError {
        ChainError::Malformed {
            node: self.name.clone(),
            problem: problem.into(),
        }
    }

    /// A raw call. A message from the node that is not a JSON-RPC answer while the call was in
    /// flight ([`WsError::Malformed`]) is malformed data, not a failed call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        match self.rpc.call(method, params).await {
            Ok(v) => Ok(v),
            Err(WsError::Malformed { method, reason, .. }) => {
                Err(self.malformed(format!("`{method}`: {reason}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `system_health.isSyncing`.
    pub async fn is_syncing(&self) -> Result<bool, ChainError> {
        let health = self.call("system_health", json!([])).await?;
        health
            .get("isSyncing")
            .and_then(Value::as_bool)
            .ok_or_else(|| self.malformed(format!("system_health without isSyncing: {health}")))
    }

    /// `system_syncState` (`currentBlock`, `highestBlock`).
    pub async fn sync_state(&self) -> Result<(u64, u64), ChainError> {
        let s = self.call("system_syncState", json!([])).await?;
        let n = |k: &str| {
            s.get(k)
                .and_then(number)
                .ok_or_else(|| self.malformed(format!("system_syncState without {k}: {s}")))
        };
        Ok((n("currentBlock")?, n("highestBlock")?))
    }

    /// The hash of the best block.
    pub async fn best_hash(&self) -> Result<String, ChainError> {
        let h = self.call("chain_getBlockHash", json!([])).await?;
        self.hash(&h)
    }

    /// The hash of the finalized head.
    pub async fn finalized_hash(&self) -> Result<String, ChainError> {
        let h = self.call("chain_getFinalizedHead", json!([])).await?;
        self.hash(&h)
    }

    /// The hash of block `n`, `None` when the node does not know it.
    pub async fn block_hash(&self, n: u64) -> Result<Option<String>, ChainError> {
        let h = self.call("chain_getBlockHash", json!([n])).await?;
        if h.is_null() {
            return Ok(None);
        }
        self.hash(&h).map(Some)
    }

    /// The number of block `hash`.
    pub async fn block_number(&self, hash: &str) -> Result<u64, ChainError> {
        let header = self.call("chain_getHeader", json!([hash])).await?;
        header
            .get("number")
            .and_then(number)
            .ok_or_else(|| self.malformed(format!("header without a number: {header}")))
    }

    fn hash(&self, v: &Value) -> Result<String, ChainError> {
        match v.as_str() {
            Some(s) if s.starts_with("0x") && s.len() == 66 => Ok(s.to_owned()),
            _ => Err(self.malformed(format!("not a block hash: {v}"))),
        }
    }

    /// `system_properties` with `tokenDecimals`/`tokenSymbol` as lists, cached 24 h.
    pub async fn properties(&self) -> Result<Value, ChainError> {
        if let Some((at, p)) = lock(&self.properties).as_ref() {
            if at.elapsed() < PROPERTIES_TTL {
                return Ok(p.clone());
            }
        }
        let p = self.call("system_properties", json!([])).await?;
        let list = |v: Option<&Value>| match v {
            None | Some(Value::Null) => Value::Array(Vec::new()),
            Some(Value::Array(a)) => Value::Array(a.clone()),
            Some(x) => Value::Array(vec![x.clone()]),
        };
        let out = json!({
            "ss58Format": p.get("ss58Format").cloned().unwrap_or(Value::Null),
            "tokenDecimals": list(p.get("tokenDecimals")),
            "tokenSymbol": list(p.get("tokenSymbol")),
        });
        *lock(&self.properties) = Some((Instant::now(), out.clone()));
        Ok(out)
    }

    /// The metadata of the runtime at block `hash`: re-fetched when that block's runtime version
    /// is one this client has not seen.
    pub async fn metadata_at(&self, hash: &str) -> Result<Arc<Metadata>, ChainError> {
        let version = self.call("state_getRuntimeVersion", json!([hash])).await?;
        let spec_name = version
            .get("specName")
            .and_then(Value::as_str)
            .ok_or_else(|| self.malformed(format!("runtime version without specName: {version}")))?
            .to_owned();
        let spec_version = version
            .get("specVersion")
            .and_then(number)
            .ok_or_else(|| self.malformed("runtime version without specVersion"))?;
        let key = (spec_name, spec_version);
        if let Some(m) = lock(&self.runtimes).get(&key) {
            return Ok(Arc::clone(m));
        }
        let raw = self.call("state_getMetadata", json!([hash])).await?;
        let hex = raw
            .as_str()
            .ok_or_else(|| self.malformed("state_getMetadata is not a string"))?;
        let metadata = Metadata::from_hex(hex)
            .map_err(|e| self.malformed(format!("runtime metadata: {e}")))?;
        info!(node = %self.name, spec_name = %key.0, spec_version = key.1,
            metadata_version = metadata.version(), "substrate runtime metadata read");
        let metadata = Arc::new(metadata);
        lock(&self.runtimes).insert(key, Arc::clone(&metadata));
        Ok(metadata)
    }

    /// How many runtimes this client has read metadata of.
    pub fn runtimes_seen(&self) -> usize {
        lock(&self.runtimes).len()
    }

    /// The raw value at `key` in block `hash`.
    pub async fn storage(&self, key: &[u8], hash: &str) -> Result<Option<Vec<u8>>, ChainError> {
        let key_hex = format!("0x{}", hex::encode(key));
        let v = self
            .call("state_getStorage", json!([key_hex, hash]))
            .await?;
        match v {
            Value::Null => Ok(None),
            Value::String(s) => parse_hex(&s)
                .map(Some)
                .map_err(|e| self.malformed(e.to_string())),
            other => Err(self.malformed(format!("storage value is not hex: {other}"))),
        }
    }

    /// Whether block `hash` holds at least one key under `prefix`.
    pub async fn holds_prefix(&self, prefix: &[u8], hash: &str) -> Result<bool, ChainError> {
        let p = format!("0x{}", hex::encode(prefix));
        let keys = self
            .call("state_getKeysPaged", json!([p, 1, Value::Null, hash]))
            .await?;
        match keys {
            Value::Array(a) => Ok(!a.is_empty()),
            other => Err(self.malformed(format!("keys are not a list: {other}"))),
        }
    }
}

/// A poisoned lock only means a thread panicked while holding it: the cache is still valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A JSON number or a hex string (as headers carry block numbers) as `u64`.
pub(crate) fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// One block of one node, with that block's runtime metadata; remembers which items it holds.
#[derive(Debug)]
pub struct BlockView<'a> {
    /// The node.
    pub node: &'a NodeClient,
    /// The block hash.
    pub hash: String,
    /// The runtime at that block.
    pub meta: Arc<Metadata>,
    holds: Mutex<HashMap<(String, String), bool>>,
}

impl<'a> BlockView<'a> {
    /// A view of block `hash` of `node` with its runtime `meta`.
    pub fn new(node: &'a NodeClient, hash: String, meta: Arc<Metadata>) -> Self {
        BlockView {
            node,
            hash,
            meta,
            holds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the runtime has the item.
    pub fn has(&self, pallet: &str, item: &str) -> bool {
        self.meta.storage(pallet, item).is_some()
    }

    /// Whether the runtime has the item and the block holds at least one key of it.
    pub async fn holds(&self, pallet: &str, item: &str) -> Result<bool, ChainError> {
        if !self.has(pallet, item) {
            return Ok(false);
        }
        let k = (pallet.to_owned(), item.to_owned());
        if let Some(h) = self.lock().get(&k) {
            return Ok(*h);
        }
        let prefix = self
            .meta
            .storage_key(pallet, item, &[])
            .map_err(|e| self.malformed(&e))?;
        let held = self.node.holds_prefix(&prefix, &self.hash).await?;
        debug!(node = %self.node.name, pallet, item, held, "storage item presence");
        self.lock().insert(k, held);
        Ok(held)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), bool>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn malformed(&self, e: &DecodeError) -> ChainError {
        self.node.malformed(e.to_string())
    }

    /// Whether the block holds a value at `pallet.item(args)` (not just a default).
    pub async fn exists(
        &self,
        pallet: &str,
        item: &str,
        args: &[KeyArg],
    ) -> Result<bool, ChainError> {
        let key = self
            .meta
            .key(pallet, item, args)
            .map_err(|e| self.malformed(&e))?;
        Ok(self.node.storage(&key, &self.hash).await?.is_some())
    }

    /// The decoded value of `pallet.item(args)`: unset ValueQuery items read as their default,
    /// unset OptionQuery items as `None`.
    pub async fn get(
        &self,
        pallet: &str,
        item: &str,
        args: &[KeyArg],
    ) -> Result<Option<DValue>, ChainError> {
        let key = self
            .meta
            .key(pallet, item, args)
            .map_err(|e| self.malformed(&e))?;
        let raw = self.node.storage(&key, &self.hash).await?;
        self.meta
            .decode_storage(pallet, item, raw.as_deref())
            .map_err(|e| {
                self.node
                    .malformed(format!("{pallet}.{item} at {}: {e}", self.hash))
            })
    }
}
