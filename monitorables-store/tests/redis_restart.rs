//! Redis goes away in the middle of a stream of monitorable messages and comes back: nothing is lost.
//!
//! NOTE: this test stops the machine's shared Redis (`redis-cli shutdown nosave`) and starts it again.
//! It lives alone in this test binary so no other test of this crate runs while Redis is down, and
//! a guard restarts Redis when the test ends, even if it fails. Redis runs with `--save ""`, so the
//! restart wipes every key: other tests must tolerate that (this one only uses its own namespace).
//! Because of the wipe, the final round of messages (one per manager, base chain and type) is
//! published while Redis is down: the
//! final documents can then only be right if those messages waited (unacked) and were written
//! once Redis came back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The helpers of the main test binary (`tests/it`), shared rather than copied.
#[path = "it/common.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{drained, eventually, msg, normalize, src, RedisNs};
use monitor_bus::publish_json;
use monitor_bus::{Bus, MemoryBus};
use monitor_core::envelope::MonitorableMessage;
use monitor_core::keys::MONITORABLE_EXCHANGE;
use monitor_core::{MonitorableKey, MonitorableType};
use monitorables_store::{
    merge, run_store_service, Document, MonitorablesStore, RedisStore, StoreError,
    StoreServiceSettings,
};
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "test_restart_monitorable_store_input_queue";

fn redis_up() -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        .unwrap_or(false)
}

fn wait_for(up: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if redis_up() == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    redis_up() == up
}

/// Start Redis the way this machine starts it, or with the minimal fallback.
fn start_redis() {
    let _ = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ])
        .status();
    if wait_for(true, Duration::from_secs(10)) {
        return;
    }
    let _ = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
        ])
        .status();
    wait_for(true, Duration::from_secs(10));
}

fn stop_redis() {
    let _ = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
        .status();
    assert!(
        wait_for(false, Duration::from_secs(10)),
        "redis did not stop"
    );
}

/// Restarts Redis on drop if it is down, so a failing test never leaves the machine without it.
struct RedisBack;

impl Drop for RedisBack {
    fn drop(&mut self) {
        if !redis_up() {
            start_redis();
        }
        if !redis_up() {
            eprintln!("WARNING: could not restart redis");
        }
    }
}

/// The Redis store, counting the errors it returned (to know the outage was noticed).
struct Counting {
    inner: RedisStore,
    errors: AtomicUsize,
}

#[async_trait]
impl MonitorablesStore for Counting {
    async fn apply(&self, key: &MonitorableKey, m: &MonitorableMessage) -> Result<(), StoreError> {
        let r = self.inner.apply(key, m).await;
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    async fn load(&self, base_chain: &str) -> Result<Document, StoreError> {
        self.inner.load(base_chain).await
    }
    async fn base_chains(&self) -> Result<Vec<String>, StoreError> {
        self.inner.base_chains().await
    }
}

const MANAGERS: usize = 3;
const LAST: usize = 10;
const TYPES: [MonitorableType; 2] = [MonitorableType::Systems, MonitorableType::Nodes];
const BASES: [&str; 2] = ["cosmos", "substrate"];

/// What manager `m` sends for (`base`, type `t`) in round `r`.
fn message(m: usize, base: &str, t: usize, r: usize) -> MonitorableMessage {
    let sources = (0..1 + (m + t + r) % 3)
        .map(|i| {
            let chain = format!("{base}_c{}", (i + r) % 3);
            src(
                &chain,
                &format!("{chain} name"),
                &format!("{base}_m{m}_t{t}_s{i}_r{}", r % 4),
                &format!("source {i} of manager {m}"),
            )
        })
        .collect();
    msg(&format!("Manager {m}"), sources)
}

fn round(r: usize) -> Vec<(MonitorableKey, MonitorableMessage)> {
    let mut out = Vec::new();
    for base in BASES {
        for (ti, t) in TYPES.iter().enumerate() {
            for m in 0..MANAGERS {
                out.push((MonitorableKey::new(base, *t), message(m, base, ti, r)));
            }
        }
    }
    out
}

async fn publish_round(bus: &MemoryBus, r: usize) {
    for (key, m) in round(r) {
        publish_json(bus, MONITORABLE_EXCHANGE, &key.routing_key(), &m)
            .await
            .unwrap();
    }
}

fn expected(base: &str, last_round: usize) -> Document {
    let mut doc = Document::new();
    for (key, m) in round(last_round) {
        if key.base_chain == base {
            merge(&mut doc, key.monitorable_type, &m);
        }
    }
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_no_monitorable() {
    let _back = RedisBack;
    assert!(redis_up(), "redis must be running before the test");
    let ns = RedisNs::new("restart");
    let store = Arc::new(Counting {
        inner: ns.store(),
        errors: AtomicUsize::new(0),
    });

    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let settings = StoreServiceSettings {
        queue: QUEUE.to_owned(),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        ..StoreServiceSettings::default()
    };
    // Owned by the test, which awaits `task` at the end.
    #[allow(clippy::disallowed_methods)]
    let task = tokio::spawn({
        let bus: Arc<dyn Bus> = Arc::new(bus.clone());
        let store: Arc<dyn MonitorablesStore> = store.clone();
        let shutdown = shutdown.clone();
        async move { run_store_service(bus, store, settings, shutdown).await }
    });
    eventually("the service's queue", || bus.queue_len(QUEUE).is_some()).await;

    // Warm up: rounds 0..5 written.
    for r in 0..5 {
        publish_round(&bus, r).await;
    }
    drained(&bus, QUEUE).await;
    for base in BASES {
        assert_eq!(
            normalize(&store.load(base).await.unwrap()),
            normalize(&expected(base, 4))
        );
    }

    // Rounds 5..10 in flight when Redis goes away; then one last round published while it is
    // down. Each (manager, base chain, type) gets exactly one message in that round, and the
    // restart wipes what was written before, so a single dropped message shows in the result.
    for r in 5..10 {
        publish_round(&bus, r).await;
    }
    tokio::task::spawn_blocking(stop_redis).await.unwrap();
    publish_round(&bus, LAST).await;
    let pending = bus.queue_len(QUEUE).unwrap_or(0) + bus.unacked_len(QUEUE).unwrap_or(0);
    assert!(
        pending >= round(LAST).len(),
        "messages published while Redis is down must wait, {pending} pending"
    );
    // Keep Redis down until the service has seen the store fail, then a few more failed retries:
    // nothing may be acked in between (a failed write is retried, never dropped).
    let wait_errors = |n: usize| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while store.errors.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "the outage was never noticed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let pending = || bus.queue_len(QUEUE).unwrap_or(0) + bus.unacked_len(QUEUE).unwrap_or(0);
    wait_errors(1).await;
    let pending_at_first_error = pending();
    assert!(pending_at_first_error >= round(LAST).len());
    wait_errors(4).await;
    assert_eq!(
        pending(),
        pending_at_first_error,
        "failed writes must not be acked"
    );
    tokio::task::spawn_blocking(start_redis).await.unwrap();
    assert!(redis_up(), "redis did not come back");

    drained(&bus, QUEUE).await;
    for base in BASES {
        assert_eq!(
            normalize(&store.load(base).await.unwrap()),
            normalize(&expected(base, LAST)),
            "base chain {base}"
        );
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("service did not stop")
        .unwrap()
        .unwrap();
}
