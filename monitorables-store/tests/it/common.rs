//! Helpers shared by the test binaries (`tests/it` and `tests/redis_restart.rs`).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_bus::MemoryBus;
use monitor_core::envelope::{MonitorableMessage, MonitorableSource};
use monitor_core::MonitorableType;
use monitorables_store::{Document, RedisStore};
use tokio::time::Instant;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";

pub fn src(chain_id: &str, chain_name: &str, id: &str, name: &str) -> MonitorableSource {
    MonitorableSource {
        chain_id: chain_id.into(),
        chain_name: chain_name.into(),
        source_id: id.into(),
        source_name: name.into(),
    }
}

pub fn msg(manager: &str, sources: Vec<MonitorableSource>) -> MonitorableMessage {
    MonitorableMessage {
        manager_name: manager.into(),
        sources,
    }
}

/// A namespace no other test (or test run) uses.
pub fn unique_namespace(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "test_mstore_{tag}_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique Redis namespace whose keys are deleted when dropped (even if the test failed).
pub struct RedisNs {
    pub namespace: String,
}

impl RedisNs {
    pub fn new(tag: &str) -> Self {
        RedisNs {
            namespace: unique_namespace(tag),
        }
    }

    /// A store with its own connection.
    pub fn store(&self) -> RedisStore {
        RedisStore::open(REDIS_URL, &self.namespace).unwrap()
    }

    fn cleanup(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(REDIS_URL)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.namespace))
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(keys).query::<i64>(&mut conn)?;
        }
        Ok(())
    }
}

impl Drop for RedisNs {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("could not clean up namespace {}: {e}", self.namespace);
        }
    }
}

/// Order-insensitive view of a document: chain id → (chain name, type → source id → (name,
/// managers)).
pub type Normal = BTreeMap<
    String,
    (
        String,
        BTreeMap<&'static str, BTreeMap<String, (String, BTreeSet<String>)>>,
    ),
>;

pub fn normalize(doc: &Document) -> Normal {
    doc.0
        .iter()
        .map(|(id, chain)| {
            let types = MonitorableType::ALL
                .iter()
                .map(|t| {
                    let sources = chain
                        .sources(*t)
                        .iter()
                        .map(|(sid, s)| {
                            (
                                sid.clone(),
                                (s.name.clone(), s.manager_names.iter().cloned().collect()),
                            )
                        })
                        .collect();
                    (t.as_str(), sources)
                })
                .collect();
            (id.clone(), (chain.chain_name.clone(), types))
        })
        .collect()
}

/// Wait until `cond` holds, polling (panics after 60 s of tokio's clock, virtual on paused time: a
/// hang is a failure).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until `queue` has no ready and no unacked message (panics after 60 s of tokio's clock: a
/// hang is a failure).
pub async fn drained(bus: &MemoryBus, queue: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = bus.queue_len(queue).unwrap_or(0);
        let unacked = bus.unacked_len(queue).unwrap_or(0);
        if ready == 0 && unacked == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue {queue} not drained: {ready} ready, {unacked} unacked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
