//! [`RedisStore`]: documents as JSON strings at `<namespace>:monitorables:<base_chain>`.
//!
//! The read-merge-write is an optimistic compare-and-set: read the document, merge in Rust with
//! [`crate::document::merge`], then write it with a five-line Lua script that replaces the value
//! only if it is still exactly what was read (byte for byte); on a conflict, start again. The script
//! never decodes JSON, so key order is whatever Rust wrote. Unlike `WATCH`/`MULTI`/`EXEC`, it keeps
//! no state on the connection, which matters because a [`ConnectionManager`] is one multiplexed
//! connection shared by every task and silently replaced after a reconnect (see `docs/STORE.md`).
//!
//! A document that becomes empty is deleted, so a base chain with nothing monitored has no key.
use async_trait::async_trait;
use monitor_bus::{tls_failure, TlsOptions};
use monitor_core::envelope::MonitorableMessage;
use monitor_core::redact_url;
use monitor_core::MonitorableKey;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError, Script};
use tracing::debug;

use crate::document::{merge, Document};
use crate::store::{MonitorablesStore, StoreError};

/// PANIC's default Redis namespace (`UNIQUE_ALERTER_IDENTIFIER`).
pub const DEFAULT_NAMESPACE: &str = "panic_alerter";

/// How many compare-and-set conflicts in a row before `apply` gives up with a transient error
/// (the caller retries later). Each conflict means another writer made progress.
const MAX_CAS_ATTEMPTS: usize = 1000;

/// `KEYS[1]` = document key; `ARGV` = had-value flag, expected value, new-value flag, new value.
/// Replaces (or deletes) the value only if it is still the expected one; returns 1 if written.
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4]) else redis.call('DEL', KEYS[1]) end
return 1
";

/// A [`ConnectionManager`] for `url` that connects lazily (so a service can start before Redis),
/// reconnects with capped exponential backoff, and bounds every command with a timeout.
pub fn connection_manager(url: &str) -> Result<ConnectionManager, StoreError> {
    connection_manager_with_tls(url, &TlsOptions::default())
}

/// [`connection_manager`] with the TLS settings of a `rediss://` URL (CA file, client certificate,
/// no verification: `#insecure`); `tls` is ignored for `redis://`.
pub fn connection_manager_with_tls(
    url: &str,
    tls: &TlsOptions,
) -> Result<ConnectionManager, StoreError> {
    heartbeat::redis_connection::connection_manager(url, tls).map_err(StoreError::Config)
}

/// The Redis store. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    namespace: String,
    cas: Script,
    /// The URL (password redacted) and TLS settings, to explain a TLS failure.
    tls: Option<(String, TlsOptions)>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on an existing connection, keys under `namespace`.
    pub fn new(conn: ConnectionManager, namespace: &str) -> Self {
        RedisStore {
            conn,
            namespace: namespace.to_owned(),
            cas: Script::new(CAS_SCRIPT),
            tls: None,
        }
    }

    /// A store on its own (lazily connected) connection to `url`.
    pub fn open(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Self::open_with_tls(url, namespace, &TlsOptions::default())
    }

    /// [`RedisStore::open`] with the TLS settings of a `rediss://` URL.
    pub fn open_with_tls(url: &str, namespace: &str, tls: &TlsOptions) -> Result<Self, StoreError> {
        let mut store = Self::new(connection_manager_with_tls(url, tls)?, namespace);
        store.tls = Some((redact_url(url).into_owned(), tls.clone()));
        Ok(store)
    }

    /// A failed command: [`StoreError::Tls`] when the TLS handshake failed (explained: the URL,
    /// what is trusted, what to change), else [`StoreError::Unavailable`].
    fn unavailable(&self, e: &RedisError) -> StoreError {
        match (tls_failure(e), &self.tls) {
            (Some(failure), Some((url, tls))) => StoreError::Tls(failure.explain(url, tls)),
            (Some(failure), None) => {
                StoreError::Tls(failure.explain("Redis", &TlsOptions::default()))
            }
            (None, _) => StoreError::Unavailable(e.to_string()),
        }
    }

    /// Ask Redis for a `PING` (connecting first if need be): how a binary finds out at start that
    /// Redis's certificate does not verify.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Redis key of `base_chain`'s document.
    pub fn key(&self, base_chain: &str) -> String {
        format!(
            "{}:monitorables:{}",
            self.namespace,
            base_chain.to_lowercase()
        )
    }

    /// Delete `base_chain`'s document.
    pub async fn delete(&self, base_chain: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn
            .del(self.key(base_chain))
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(())
    }

    /// Read the raw stored text of `base_chain`'s document.
    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get(key).await.map_err(|e| {
            if e.code() == Some("WRONGTYPE") {
                StoreError::Corrupt {
                    base_chain: key.to_owned(),
                    reason: "the key does not hold a string".to_owned(),
                }
            } else {
                self.unavailable(&e)
            }
        })
    }

    fn parse(base_chain: &str, text: Option<&str>) -> Result<Document, StoreError> {
        match text {
            None => Ok(Document::new()),
            Some(t) => Document::from_json(t).map_err(|e| StoreError::Corrupt {
                base_chain: base_chain.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

#[async_trait]
impl MonitorablesStore for RedisStore {
    async fn apply(
        &self,
        key: &MonitorableKey,
        msg: &MonitorableMessage,
    ) -> Result<(), StoreError> {
        let redis_key = self.key(&key.base_chain);
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let current = self.read(&redis_key).await?;
            let mut doc = Self::parse(&key.base_chain, current.as_deref())?;
            merge(&mut doc, key.monitorable_type, msg);
            let new = (!doc.is_empty()).then(|| doc.to_json());
            if new == current {
                return Ok(());
            }
            let mut conn = self.conn.clone();
            let written: i64 = self
                .cas
                .key(&redis_key)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.as_deref().unwrap_or(""))
                .arg(if new.is_some() { "1" } else { "0" })
                .arg(new.as_deref().unwrap_or(""))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if written == 1 {
                debug!(key = %redis_key, attempt, "monitorables document written");
                return Ok(());
            }
            debug!(key = %redis_key, attempt, "concurrent write, merging again");
            tokio::task::yield_now().await;
        }
        Err(StoreError::Unavailable(format!(
            "{redis_key}: gave up after {MAX_CAS_ATTEMPTS} conflicting concurrent writes"
        )))
    }

    async fn load(&self, base_chain: &str) -> Result<Document, StoreError> {
        let text = self.read(&self.key(base_chain)).await?;
        Self::parse(base_chain, text.as_deref())
    }

    async fn base_chains(&self) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}:monitorables:", self.namespace);
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut chains = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            chains.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(str::to_owned),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        chains.sort();
        chains.dedup();
        Ok(chains)
    }
}

/// Escape Redis glob metacharacters so `s` matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_globs() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("panic_alerter:"), "panic_alerter:");
    }

    #[test]
    fn bad_url_is_a_config_error() {
        assert!(matches!(
            RedisStore::open("not a url", "ns"),
            Err(StoreError::Config(_))
        ));
    }
}
