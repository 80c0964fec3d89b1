//! The health checker with memory sinks, on paused time: these tests only wait for time to pass.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use heartbeat::health_checker::{
    run_health_checker, run_heartbeat_handler, run_ping_publisher, HeartbeatSink,
    MemoryHeartbeatSink, SinkError, HEARTBEAT_HANDLER_NAME, PING_PUBLISHER_NAME,
};
use monitor_bus::{Bus, MemoryBus};
use monitor_bus::{StuckBus, StuckPublishes};
use tokio_util::sync::CancellationToken;

use crate::helpers::{drained, eventually, publish, settings, wait_queue, QUEUE};

/// A sink that fails while `down` is set.
#[derive(Default)]
struct Switchable {
    inner: MemoryHeartbeatSink,
    down: AtomicBool,
    failures: AtomicU64,
}

#[async_trait]
impl HeartbeatSink for Switchable {
    async fn store(&self, component: &str, json: &str) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::Unavailable("test: down".into()));
        }
        self.inner.store(component, json).await
    }
}

#[tokio::test(start_paused = true)]
async fn failed_writes_are_kept_and_retried() {
    let sink = Arc::new(Switchable::default());
    sink.down.store(true, Ordering::SeqCst);
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_heartbeat_handler(
        Arc::new(bus.clone()),
        sink.clone(),
        settings(Duration::from_secs(3600)),
        shutdown.clone(),
    ));
    wait_queue(&bus, QUEUE).await;
    let bodies: Vec<String> = (0..5)
        .map(|i| {
            format!(r#"{{"component_name": "Worker {i}", "is_alive": true, "timestamp": {i}.5}}"#)
        })
        .collect();
    for b in &bodies {
        publish(&bus, "heartbeat.worker", b).await;
    }
    // Acked although not stored (PANIC acks always), and kept.
    drained(&bus).await;
    eventually("failed writes", || {
        sink.failures.load(Ordering::SeqCst) >= 5
    })
    .await;
    assert!(sink.inner.all().is_empty());

    // The store comes back; no new message is needed for the kept heartbeats to be written.
    sink.down.store(false, Ordering::SeqCst);
    eventually("kept heartbeats to be written", || {
        sink.inner.all().len() == 6
    })
    .await;
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(
            sink.inner.get(&format!("Worker {i}")).as_deref(),
            Some(b.as_str())
        );
    }
    assert!(sink.inner.get(HEARTBEAT_HANDLER_NAME).is_some());

    // Down again: the next message's write fails; back up, the next message also flushes the
    // kept one.
    sink.down.store(true, Ordering::SeqCst);
    let failures = sink.failures.load(Ordering::SeqCst);
    publish(
        &bus,
        "heartbeat.worker",
        r#"{"component_name": "Late", "timestamp": 9.0}"#,
    )
    .await;
    eventually("a failed write", || {
        sink.failures.load(Ordering::SeqCst) > failures
    })
    .await;
    sink.down.store(false, Ordering::SeqCst);
    publish(
        &bus,
        "heartbeat.worker",
        r#"{"component_name": "Later", "timestamp": 10.0}"#,
    )
    .await;
    eventually("both written", || {
        sink.inner.get("Late").is_some() && sink.inner.get("Later").is_some()
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn unroutable_ping_still_heartbeats() {
    let sink = Arc::new(MemoryHeartbeatSink::new());
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_ping_publisher(
        Arc::new(bus.clone()),
        sink.clone(),
        settings(Duration::from_millis(20)),
        shutdown.clone(),
    ));
    eventually("the ping publisher's heartbeat", || {
        sink.get(PING_PUBLISHER_NAME).is_some()
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Shutdown while the health checker waits for an absent broker (declaring at start, or publishing
/// a ping): it still returns.
#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_an_absent_broker() {
    for stuck_declare in [true, false] {
        let bus: Arc<dyn Bus> = Arc::new(
            StuckBus::new(MemoryBus::new())
                .with_stuck_declarations(stuck_declare)
                .with_stuck_publishes(StuckPublishes::All),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_health_checker(
            bus,
            Arc::new(MemoryHeartbeatSink::new()),
            settings(Duration::from_millis(10)),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("the checker hung (stuck_declare: {stuck_declare})"))
            .unwrap()
            .unwrap();
    }
}

/// A sink whose writes do not return while `hang` is set.
#[derive(Default)]
struct Hanging {
    inner: MemoryHeartbeatSink,
    hang: AtomicBool,
}

#[async_trait]
impl HeartbeatSink for Hanging {
    async fn store(&self, component: &str, json: &str) -> Result<(), SinkError> {
        while self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.store(component, json).await
    }
}

/// A write that never returns stalls the handler: it is detected (counted), the consumer is
/// restarted, and once the store answers again heartbeats are stored; shutdown returns while a
/// write hangs.
#[tokio::test(start_paused = true)]
async fn a_hanging_store_is_a_stall_detected_and_restarted() {
    let sink = Arc::new(Hanging::default());
    sink.hang.store(true, Ordering::SeqCst);
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let mut s = settings(Duration::from_secs(3600));
    s.stall_after = Duration::from_secs(2);
    let stalls = s.stalls.clone();
    let task = tokio::spawn(run_heartbeat_handler(
        Arc::new(bus.clone()),
        sink.clone(),
        s,
        shutdown.clone(),
    ));
    wait_queue(&bus, QUEUE).await;
    let first = r#"{"component_name": "Worker A", "is_alive": true, "timestamp": 1.5}"#;
    publish(&bus, "heartbeat.worker", first).await;
    eventually("the stall to be detected", || {
        stalls.load(Ordering::SeqCst) >= 1
    })
    .await;
    // The consumer was restarted: a new one consumes the queue.
    sink.hang.store(false, Ordering::SeqCst);
    let second = r#"{"component_name": "Worker B", "is_alive": true, "timestamp": 2.5}"#;
    publish(&bus, "heartbeat.worker", second).await;
    eventually("both heartbeats stored", || {
        sink.inner.get("Worker A").as_deref() == Some(first)
            && sink.inner.get("Worker B").as_deref() == Some(second)
    })
    .await;

    // Shutdown while a write hangs returns.
    sink.hang.store(true, Ordering::SeqCst);
    publish(&bus, "heartbeat.worker", first).await;
    eventually("the message to be taken", || {
        bus.queue_len(QUEUE) == Some(0)
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("shutdown must not wait for a hanging store")
        .unwrap()
        .unwrap();
}
