//! Building and publishing heartbeats on the `health_check` exchange: the one implementation the
//! monitors manager and the monitorables store both use.
//!
//! * Worker heartbeats (`heartbeat.worker`, `{component_name, is_alive: true, timestamp}`): a
//!   monitor sends one after each round whose data was all published; the store after each
//!   message it wrote.
//! * Manager heartbeats (`heartbeat.manager`, `{component_name, running_processes,
//!   dead_processes, timestamp}`, built by [`manager_heartbeat`]): a manager sends one in reply to
//!   each ping.
//!
//! A heartbeat nobody is bound for is not an error (in the embedded mode no health checker
//! listens): it is logged at debug level and reported as [`Published::Unroutable`]. Other bus
//! errors are returned.

use monitor_bus::publish_json;
use monitor_bus::{Bus, BusError};
use monitor_core::envelope::{now_unix, ManagerHeartbeat};
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, HEARTBEAT_MANAGER_ROUTING_KEY, HEARTBEAT_WORKER_ROUTING_KEY,
};
use monitor_core::WorkerHeartbeat;

/// What became of a heartbeat that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// It is in every bound queue.
    Delivered,
    /// No queue is bound for it; dropped.
    Unroutable,
}

/// The manager heartbeat of `component_name` now, with the component names of its running and dead
/// processes, each list sorted.
pub fn manager_heartbeat(
    component_name: &str,
    mut running_processes: Vec<String>,
    mut dead_processes: Vec<String>,
) -> ManagerHeartbeat {
    running_processes.sort();
    dead_processes.sort();
    ManagerHeartbeat {
        component_name: component_name.to_owned(),
        running_processes,
        dead_processes,
        timestamp: now_unix(),
    }
}

/// The worker heartbeat of `component_name`: alive, now.
pub fn worker_heartbeat(component_name: &str) -> WorkerHeartbeat {
    WorkerHeartbeat::alive(component_name)
}

async fn publish_heartbeat(
    bus: &dyn Bus,
    routing_key: &str,
    component_name: &str,
    value: &impl serde::Serialize,
) -> Result<Published, BusError> {
    match publish_json(bus, HEALTH_CHECK_EXCHANGE, routing_key, value).await {
        Ok(()) => Ok(Published::Delivered),
        Err(BusError::Unroutable { .. }) => {
            tracing::debug!(
                component = component_name,
                routing_key,
                "heartbeat unroutable (no health checker bound), dropped"
            );
            Ok(Published::Unroutable)
        }
        Err(e) => Err(e),
    }
}

/// Publish a worker heartbeat for `component_name` (alive, now).
pub async fn publish_worker_heartbeat(
    bus: &dyn Bus,
    component_name: &str,
) -> Result<Published, BusError> {
    let hb = worker_heartbeat(component_name);
    publish_heartbeat(bus, HEARTBEAT_WORKER_ROUTING_KEY, component_name, &hb).await
}

/// Publish a manager heartbeat.
pub async fn publish_manager_heartbeat(
    bus: &dyn Bus,
    heartbeat: &ManagerHeartbeat,
) -> Result<Published, BusError> {
    publish_heartbeat(
        bus,
        HEARTBEAT_MANAGER_ROUTING_KEY,
        &heartbeat.component_name,
        heartbeat,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_bus::declare_bound_queue;
    use monitor_bus::MemoryBus;

    #[tokio::test]
    async fn worker_and_manager_heartbeats() {
        let bus = MemoryBus::new();
        bus.declare_exchange(HEALTH_CHECK_EXCHANGE).await.unwrap();
        assert_eq!(
            publish_worker_heartbeat(&bus, "System monitor (a)")
                .await
                .unwrap(),
            Published::Unroutable
        );
        declare_bound_queue(&bus, "hb", HEALTH_CHECK_EXCHANGE, &["heartbeat.*"])
            .await
            .unwrap();
        let mut c = bus.consume("hb", 0).await.unwrap();
        assert_eq!(
            publish_worker_heartbeat(&bus, "System monitor (a)")
                .await
                .unwrap(),
            Published::Delivered
        );
        let d = c.next().await.unwrap();
        assert_eq!(d.routing_key, "heartbeat.worker");
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["component_name"], "System monitor (a)");
        assert_eq!(v["is_alive"], true);
        assert!(v["timestamp"].as_f64().unwrap() > 0.0);
        d.ack().await.unwrap();

        let hb = ManagerHeartbeat {
            component_name: "Monitors Manager".to_owned(),
            running_processes: vec!["a".to_owned()],
            dead_processes: vec![],
            timestamp: 1.5,
        };
        publish_manager_heartbeat(&bus, &hb).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.routing_key, "heartbeat.manager");
        let back: ManagerHeartbeat = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(back, hb);
    }

    #[tokio::test]
    async fn other_bus_errors_are_errors() {
        let bus = MemoryBus::new();
        let err = publish_worker_heartbeat(&bus, "x").await.unwrap_err();
        assert!(matches!(err, BusError::NoSuchExchange(_)), "{err}");
    }
}
