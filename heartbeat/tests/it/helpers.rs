//! Helpers shared by the health checker tests.

use std::time::Duration;

use heartbeat::health_checker::HealthCheckerSettings;
use monitor_bus::{Bus, MemoryBus};
use monitor_core::keys::HEALTH_CHECK_EXCHANGE;
use tokio::time::Instant;

/// The heartbeat handler's queue in tests.
pub(crate) const QUEUE: &str = "test_heartbeat_handler_queue";

pub(crate) fn settings(ping_interval: Duration) -> HealthCheckerSettings {
    HealthCheckerSettings {
        ping_interval,
        queue: QUEUE.to_owned(),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        ..HealthCheckerSettings::default()
    }
}

/// Wait (at most 30 s, of tokio's clock: virtual on paused time; a hang is a failure) until `cond`
/// holds.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn wait_queue(bus: &MemoryBus, queue: &str) {
    eventually("the handler's queue", || bus.queue_len(queue).is_some()).await;
}

pub(crate) async fn drained(bus: &MemoryBus) {
    eventually("the heartbeat queue to drain", || {
        bus.queue_len(QUEUE) == Some(0) && bus.unacked_len(QUEUE) == Some(0)
    })
    .await;
}

pub(crate) async fn publish(bus: &MemoryBus, key: &str, body: &str) {
    bus.publish(HEALTH_CHECK_EXCHANGE, key, body.as_bytes().to_vec().into())
        .await
        .unwrap();
}
