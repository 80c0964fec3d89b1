//! Issue #13 (3): a broker outage kills nothing. The manager's publishes go through a gate that
//! can hold them (as an absent broker holds an AMQP publish): rounds go on, nothing is hung, the
//! outbox keeps what it can hold and delivers it in order when the gate opens, and what does not
//! fit is dropped oldest first and counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use monitor_bus::{Bus, BusError, Consumer, MemoryBus};
use monitor_core::keys::RAW_DATA_EXCHANGE;
use monitors_manager::ManagerSettings;
use serde_json::json;
use tokio::sync::watch;

use crate::harness::{test_settings, Capture, Captured, FakePlanner, Harness, Probe};

const GENERAL: &str = "general.systems_config";

/// A [`MemoryBus`] whose raw-data and worker-heartbeat publishes wait while the gate is closed.
#[derive(Clone)]
pub(crate) struct GateBus {
    pub(crate) inner: MemoryBus,
    open: watch::Sender<bool>,
}

impl GateBus {
    pub(crate) fn new(inner: MemoryBus) -> Self {
        GateBus {
            inner,
            open: watch::Sender::new(true),
        }
    }

    pub(crate) fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

#[async_trait]
impl Bus for GateBus {
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.inner.declare_exchange(exchange).await
    }
    async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        self.inner.declare_queue(queue).await
    }
    async fn bind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<(), BusError> {
        self.inner.bind_queue(queue, exchange, key).await
    }
    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        self.inner.delete_queue(queue).await
    }
    async fn publish(&self, exchange: &str, key: &str, body: Bytes) -> Result<(), BusError> {
        if exchange == RAW_DATA_EXCHANGE || key == "heartbeat.worker" {
            let mut rx = self.open.subscribe();
            let _ = rx.wait_for(|open| *open).await;
        }
        self.inner.publish(exchange, key, body).await
    }
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.inner.consume(queue, prefetch).await
    }
}

fn sections(n: usize) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    for i in 0..n {
        let id = format!("m{i:02}");
        body.insert(id.clone(), json!({"id": id, "name": id, "monitor": "true"}));
    }
    serde_json::Value::Object(body)
}

/// Per monitor id: the rounds of its raw data and the number of its heartbeats, in arrival order.
fn by_monitor(got: &[Captured]) -> BTreeMap<String, (Vec<u64>, usize)> {
    let mut out: BTreeMap<String, (Vec<u64>, usize)> = BTreeMap::new();
    for c in got {
        if c.routing_key == "heartbeat.worker" {
            let name = c.body["component_name"].as_str().unwrap();
            let id = name
                .trim_start_matches("Fake monitor (")
                .trim_end_matches(')');
            out.entry(id.to_owned()).or_default().1 += 1;
        } else {
            let data = &c.body["result"]["data"];
            let id = data["id"].as_str().unwrap().to_owned();
            out.entry(id)
                .or_default()
                .0
                .push(data["round"].as_u64().unwrap());
        }
    }
    out
}

async fn start(settings: ManagerSettings) -> (Harness, GateBus, Capture, Probe) {
    let probe = Probe::default();
    let inner = MemoryBus::new();
    let gate = GateBus::new(inner.clone());
    let h = Harness::start_through(
        inner,
        Arc::new(gate.clone()),
        vec![FakePlanner::systems(&probe)],
        settings,
    )
    .await;
    let cap = Capture::new(
        &h.bus,
        "everything",
        &[("raw_data", "#"), ("health_check", "heartbeat.worker")],
    )
    .await;
    (h, gate, cap, probe)
}

#[tokio::test(start_paused = true)]
async fn an_outage_kills_nothing_and_the_outbox_delivers_everything_in_order() {
    let (mut h, gate, mut cap, probe) = start(test_settings()).await;
    h.config(GENERAL, &sections(20).to_string()).await;
    h.advance(Duration::from_secs(30)).await;
    let before = cap.drain().await;
    assert!(!before.is_empty());

    // The broker goes away for 200 s: five times what makes a monitor hung (3 × 10 s + 10 s).
    gate.set_open(false);
    let ok_at_close = h.status().rounds_ok;
    h.advance(Duration::from_secs(200)).await;
    let status = h.status();
    assert_eq!(status.deaths, 0, "waiting for the broker is not hung");
    assert!(
        status.rounds_ok >= ok_at_close + 20 * 19,
        "rounds go on: {} then {}",
        ok_at_close,
        status.rounds_ok
    );
    assert!(
        cap.drain().await.is_empty(),
        "nothing passes the closed gate"
    );
    assert!(status.outbox_messages >= 2 * 20 * 19, "{status:?}");
    assert_eq!(status.outbox_dropped, 0);
    for i in 0..20 {
        assert!(probe.stats(&format!("m{i:02}")).rounds_finished >= 22);
    }

    gate.set_open(true);
    let s = h.status.clone();
    h.wait_for("the outbox to drain", || s.status().outbox_messages == 0)
        .await;
    let status = h.status();
    let mut got = before;
    got.extend(cap.drain().await);
    assert_eq!(got.len() as u64, 2 * status.rounds_ok, "{status:?}");
    assert_eq!(status.publishes_ok, status.rounds_ok);
    assert_eq!(status.worker_heartbeats, status.rounds_ok);
    assert_eq!(status.outbox_bytes, 0);
    for (id, (rounds, heartbeats)) in by_monitor(&got) {
        let n = rounds.len() as u64;
        assert_eq!(
            rounds,
            (1..=n).collect::<Vec<_>>(),
            "{id}: in order, none lost"
        );
        assert_eq!(heartbeats as u64, n, "{id}");
    }
    assert_eq!(status.deaths, 0);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_outbox_drops_the_oldest_rounds_and_counts_them() {
    // About ten rounds of one fake monitor (~300 bytes each with its heartbeat).
    let settings = ManagerSettings {
        outbox_bytes: 3_000,
        ..test_settings()
    };
    let (mut h, gate, mut cap, _probe) = start(settings).await;
    gate.set_open(false);
    h.config(GENERAL, &sections(1).to_string()).await;
    h.advance(Duration::from_secs(300)).await;
    let status = h.status();
    let rounds = status.rounds_ok;
    assert!(rounds >= 29, "{rounds}");
    assert!(status.outbox_dropped > 0, "{status:?}");
    assert!(status.outbox_bytes <= 3_000, "{status:?}");
    assert_eq!(status.deaths, 0);

    gate.set_open(true);
    let s = h.status.clone();
    h.wait_for("the outbox to drain", || s.status().outbox_messages == 0)
        .await;
    let status = h.status();
    let got = by_monitor(&cap.drain().await);
    let (delivered, heartbeats) = &got["m00"];
    let kept = delivered.len() as u64;
    assert_eq!(*heartbeats as u64, kept);
    // The first round was already on its way when the gate closed; then the newest ones.
    assert_eq!(delivered[0], 1);
    assert_eq!(
        delivered[1..],
        (rounds - kept + 2..=rounds).collect::<Vec<_>>()[..],
        "the oldest were dropped: {delivered:?}"
    );
    assert_eq!(status.outbox_dropped, 2 * (rounds - kept), "{status:?}");
    assert!(status.outbox_dropped_bytes > 0);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_an_outage_counts_what_it_could_not_publish() {
    let settings = ManagerSettings {
        shutdown_grace: Duration::from_secs(2),
        ..test_settings()
    };
    let (mut h, gate, _cap, _probe) = start(settings).await;
    h.config(GENERAL, &sections(5).to_string()).await;
    gate.set_open(false);
    h.advance(Duration::from_secs(50)).await;
    let queued = h.status().outbox_messages;
    assert!(queued >= 2 * 5 * 4, "{queued}");
    h.stop().await.unwrap();
    let status = h.status();
    assert_eq!(status.outbox_lost_at_shutdown, queued);
    assert_eq!(status.outbox_messages, 0);
}
