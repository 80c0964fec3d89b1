//! PANIC's health checker (spec §5.1): a **ping publisher** and a **heartbeat handler**.
//!
//! * The ping publisher publishes the raw body `ping` (not JSON) on `health_check` / `ping` every
//!   interval (30 s by default; an unroutable ping is logged), then stores its own heartbeat
//!   `{"component_name": "Ping Publisher", "timestamp": …}`.
//! * The heartbeat handler consumes `heartbeat_handler_heartbeat_queue` (bound `heartbeat.*`,
//!   prefetch 300, manual ack). Each `heartbeat.worker` / `heartbeat.manager` message is stored
//!   **verbatim** (the JSON text as received) under its `component_name`; a body that is not a JSON
//!   object with a string `component_name` is logged, acked and not stored. Writes that fail are
//!   kept in memory (the newest per component) and retried on the next message and on a capped
//!   backoff timer, never dropped. After each message it acks and stores its own heartbeat
//!   `{"component_name": "Heartbeat Handler", "timestamp": …}`.
//!
//! Heartbeats go to a [`HeartbeatSink`]: `RedisHeartbeatSink` (feature `redis`, on by default)
//! writes PANIC's keys `<namespace>:c1_<component_name>` (plain `SET`, no TTL; namespace default
//! `panic_alerter`), and [`MemoryHeartbeatSink`] keeps them in a map. [`run_health_checker`] runs
//! both halves until its [`CancellationToken`] is cancelled.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use monitor_bus::backoff::Backoff;
use monitor_bus::declare_bound_queue;
use monitor_bus::ratelimit::LogLimiter;
use monitor_bus::{Bus, BusError, Consumer, Delivery, StallWatch, Watched};
use monitor_core::envelope::now_unix;
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, HEARTBEAT_BINDING, HEARTBEAT_HANDLER_QUEUE,
    HEARTBEAT_MANAGER_ROUTING_KEY, HEARTBEAT_WORKER_ROUTING_KEY, PING_ROUTING_KEY,
};
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

#[cfg(feature = "redis")]
mod redis_sink;
mod sink;

#[cfg(feature = "redis")]
pub use redis_sink::RedisHeartbeatSink;
pub use sink::{HeartbeatSink, MemoryHeartbeatSink, SinkError};

/// PANIC's default Redis namespace (`UNIQUE_ALERTER_IDENTIFIER`).
pub const DEFAULT_NAMESPACE: &str = "panic_alerter";
/// PANIC's ping interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// The ping publisher's component name.
pub const PING_PUBLISHER_NAME: &str = "Ping Publisher";
/// The heartbeat handler's component name.
pub const HEARTBEAT_HANDLER_NAME: &str = "Heartbeat Handler";
/// The ping body: the raw bytes `ping`, not JSON.
pub const PING_BODY: &[u8] = b"ping";
/// PANIC's prefetch for the heartbeat handler.
pub const HEARTBEAT_HANDLER_PREFETCH: u16 = 300;
/// At most this many heartbeats wait for a failed store (one per component; beyond it the oldest
/// is dropped with an error log, which only happens with more components than this).
const MAX_PENDING: usize = 100_000;

/// Errors that stop the health checker.
#[derive(Debug, thiserror::Error)]
pub enum HealthCheckerError {
    /// The bus was closed.
    #[error("bus closed: {0}")]
    Bus(#[from] BusError),
}

/// Settings of the health checker.
#[derive(Debug, Clone)]
pub struct HealthCheckerSettings {
    /// Time between pings (PANIC: 30 s).
    pub ping_interval: Duration,
    /// The heartbeat handler's queue (PANIC: `heartbeat_handler_heartbeat_queue`; override in
    /// tests).
    pub queue: String,
    /// The heartbeat handler's prefetch (PANIC: 300).
    pub prefetch: u16,
    /// First delay before retrying failed heartbeat writes or bus setup.
    pub retry_min: Duration,
    /// Retry delay cap.
    pub retry_max: Duration,
    /// The heartbeat handler's consumer is restarted (logged, counted in
    /// [`HealthCheckerSettings::stalls`]) when it has deliveries pending and no progress for this
    /// long, or when handling one message (ack and Redis writes) takes longer.
    pub stall_after: Duration,
    /// Counts the heartbeat handler's stalls (share it to expose it).
    pub stalls: Arc<AtomicU64>,
}

impl Default for HealthCheckerSettings {
    fn default() -> Self {
        HealthCheckerSettings {
            ping_interval: DEFAULT_PING_INTERVAL,
            queue: HEARTBEAT_HANDLER_QUEUE.to_owned(),
            prefetch: HEARTBEAT_HANDLER_PREFETCH,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            stall_after: Duration::from_secs(60),
            stalls: Arc::default(),
        }
    }
}

/// `{"component_name": name, "timestamp": now}`, the health checker's own heartbeat.
fn own_heartbeat(component_name: &str) -> String {
    serde_json::json!({ "component_name": component_name, "timestamp": now_unix() }).to_string()
}

/// Run the ping publisher and the heartbeat handler until `shutdown` is cancelled (`Ok`) or the
/// bus is closed (both halves are stopped, the error is returned).
pub async fn run_health_checker(
    bus: Arc<dyn Bus>,
    sink: Arc<dyn HeartbeatSink>,
    settings: HealthCheckerSettings,
    shutdown: CancellationToken,
) -> Result<(), HealthCheckerError> {
    let inner = shutdown.child_token();
    let publisher = async {
        let r =
            run_ping_publisher(bus.clone(), sink.clone(), settings.clone(), inner.clone()).await;
        inner.cancel();
        r
    };
    let handler = async {
        let r =
            run_heartbeat_handler(bus.clone(), sink.clone(), settings.clone(), inner.clone()).await;
        inner.cancel();
        r
    };
    let (p, h) = tokio::join!(publisher, handler);
    p.and(h)
}

/// Publish `ping` every `settings.ping_interval` (the first at once) and store the publisher's own
/// heartbeat after each ping that was published or found unroutable.
pub async fn run_ping_publisher(
    bus: Arc<dyn Bus>,
    sink: Arc<dyn HeartbeatSink>,
    settings: HealthCheckerSettings,
    shutdown: CancellationToken,
) -> Result<(), HealthCheckerError> {
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max).retry();
    loop {
        // Declaring waits for the broker while it is away: shutdown must not wait for it.
        let Some(declared) = shutdown
            .run_until_cancelled(bus.declare_exchange(HEALTH_CHECK_EXCHANGE))
            .await
        else {
            return Ok(());
        };
        match declared {
            Ok(()) => break,
            Err(BusError::Closed) => return Err(BusError::Closed.into()),
            Err(e) => {
                warn!(error = %e, "ping publisher cannot declare `health_check`; retrying");
                if !backoff.sleep(&shutdown).await {
                    return Ok(());
                }
            }
        }
    }
    let period = settings.ping_interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if shutdown.run_until_cancelled(ticker.tick()).await.is_none() {
            return Ok(());
        }
        // While the broker is away a publish waits in the bus's outbox for the reconnection:
        // shutdown must not wait for it (the ping is dropped, as any ping of a stopping checker).
        let publish = bus.publish(HEALTH_CHECK_EXCHANGE, PING_ROUTING_KEY, PING_BODY.into());
        let Some(published) = shutdown.run_until_cancelled(publish).await else {
            return Ok(());
        };
        match published {
            Ok(()) => debug!("ping published"),
            Err(e @ BusError::Unroutable { .. }) => {
                warn!(error = %e, "ping is unroutable: no component listens for pings");
            }
            Err(BusError::Closed) => return Err(BusError::Closed.into()),
            Err(e) => {
                error!(error = %e, "could not publish ping");
                continue;
            }
        }
        if let Err(e) = sink
            .store(PING_PUBLISHER_NAME, &own_heartbeat(PING_PUBLISHER_NAME))
            .await
        {
            warn!(error = %e, "could not store the ping publisher's heartbeat");
        }
    }
}

/// The heartbeat handler's per-message warnings: at most 5 lines per kind per minute, each saying
/// how many were suppressed since the last (an outage can fail hundreds of acks at once).
static WARNINGS: std::sync::LazyLock<LogLimiter> =
    std::sync::LazyLock::new(|| LogLimiter::per_minute(5));

/// Heartbeats whose write failed, newest per component, in arrival order.
#[derive(Debug, Default)]
struct Pending {
    items: Vec<(String, String)>,
}

impl Pending {
    fn put(&mut self, component: String, body: String) {
        if let Some(slot) = self.items.iter_mut().find(|(c, _)| *c == component) {
            slot.1 = body;
            return;
        }
        if self.items.len() >= MAX_PENDING {
            let (dropped, _) = self.items.remove(0);
            monitor_bus::warn_limited!(WARNINGS, "pending full", component = %dropped,
                "too many heartbeats waiting for the store; oldest dropped");
        }
        self.items.push((component, body));
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Store pending heartbeats in order; stop at the first failure. `true` if all were stored.
    async fn flush(&mut self, sink: &dyn HeartbeatSink) -> bool {
        while let Some((component, body)) = self.items.first() {
            match sink.store(component, body).await {
                Ok(()) => {
                    debug!(component = %component, "heartbeat stored");
                    self.items.remove(0);
                }
                Err(e) => {
                    warn!(error = %e, waiting = self.items.len(),
                        "could not store heartbeats; kept for a retry");
                    return false;
                }
            }
        }
        true
    }
}

/// Consume heartbeats and store them verbatim (see the module documentation).
pub async fn run_heartbeat_handler(
    bus: Arc<dyn Bus>,
    sink: Arc<dyn HeartbeatSink>,
    settings: HealthCheckerSettings,
    shutdown: CancellationToken,
) -> Result<(), HealthCheckerError> {
    let mut setup_backoff = Backoff::new(settings.retry_min, settings.retry_max).retry();
    let mut store_backoff = Backoff::new(settings.retry_min, settings.retry_max).retry();
    let mut pending = Pending::default();
    let mut retry_at: Option<Instant> = None;
    let watch = StallWatch::new(settings.queue.clone(), settings.stall_after)
        .with_counter(settings.stalls.clone());
    loop {
        let Some(set_up) = shutdown
            .run_until_cancelled(setup(bus.as_ref(), &settings))
            .await
        else {
            return Ok(());
        };
        let mut consumer = match set_up {
            Ok(c) => {
                setup_backoff.reset();
                c
            }
            Err(BusError::Closed) => return Err(BusError::Closed.into()),
            Err(e) => {
                warn!(error = %e, queue = %settings.queue, "cannot consume heartbeats; retrying");
                if !setup_backoff.sleep(&shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        info!(queue = %settings.queue, "heartbeat handler consuming");
        let ended = loop {
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let delivery = tokio::select! {
                () = shutdown.cancelled() => {
                    // Bounded: a store that does not answer must not hold the shutdown.
                    let flushed = pending.is_empty()
                        || tokio::time::timeout(settings.retry_max, pending.flush(sink.as_ref()))
                            .await
                            .unwrap_or(false);
                    if !flushed {
                        error!(lost = pending.items.len(),
                            "shutting down with heartbeats that could not be stored");
                    }
                    return Ok(());
                }
                () = retry => None,
                d = watch.next(&mut consumer) => match d {
                    Watched::Delivery(d) => Some(d),
                    Watched::Ended => break "ended",
                    Watched::Stalled => break "stalled",
                },
            };
            // Ack and store what is pending (the message's heartbeat, our own, earlier failures),
            // within the stall bound and cut short by shutdown (an unacked message comes back).
            let work = async {
                if let Some(delivery) = delivery {
                    handle(delivery, &mut pending).await;
                }
                pending.flush(sink.as_ref()).await
            };
            let Some(done) = shutdown.run_until_cancelled(watch.bound(work)).await else {
                return Ok(());
            };
            match done {
                Some(true) => {
                    store_backoff.reset();
                    retry_at = None;
                }
                Some(false) => {
                    let delay = store_backoff.next_delay();
                    retry_at = Some(Instant::now() + delay);
                }
                None => break "stalled",
            }
        };
        // Dropping the consumer hands its unacked deliveries back to the queue.
        drop(consumer);
        warn!(queue = %settings.queue, why = ended, "heartbeat consumer ended; consuming again");
        if !setup_backoff.sleep(&shutdown).await {
            return Ok(());
        }
    }
}

async fn setup(bus: &dyn Bus, settings: &HealthCheckerSettings) -> Result<Consumer, BusError> {
    declare_bound_queue(
        bus,
        &settings.queue,
        HEALTH_CHECK_EXCHANGE,
        &[HEARTBEAT_BINDING],
    )
    .await?;
    bus.consume(&settings.queue, settings.prefetch).await
}

/// Why a heartbeat message is not stored.
fn component_of(routing_key: &str, body: &[u8]) -> Result<(String, String), String> {
    if routing_key != HEARTBEAT_WORKER_ROUTING_KEY && routing_key != HEARTBEAT_MANAGER_ROUTING_KEY {
        return Err(format!("unexpected routing key `{routing_key}`"));
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("body is not JSON: {e}"))?;
    match value.get("component_name") {
        Some(Value::String(name)) => Ok((name.clone(), text.to_owned())),
        Some(_) => Err("`component_name` is not a string".to_owned()),
        None => Err("no `component_name`".to_owned()),
    }
}

async fn handle(delivery: Delivery, pending: &mut Pending) {
    match component_of(&delivery.routing_key, &delivery.body) {
        Ok((component, body)) => {
            debug!(component = %component, "heartbeat received");
            pending.put(component, body);
        }
        Err(reason) => {
            // The body's size only: no payload bytes in logs.
            monitor_bus::warn_limited!(WARNINGS, "not stored", routing_key = %delivery.routing_key,
                reason = %reason, bytes = delivery.body.len(), "heartbeat not stored");
        }
    }
    // Stored or kept in memory: either way the message is done with (PANIC acks always).
    if let Err(e) = delivery.ack().await {
        monitor_bus::warn_limited!(WARNINGS, "ack", error = %e, "could not ack heartbeat");
    }
    pending.put(
        HEARTBEAT_HANDLER_NAME.to_owned(),
        own_heartbeat(HEARTBEAT_HANDLER_NAME),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names() {
        let body =
            br#"{"component_name": "System monitor (x)", "is_alive": true, "timestamp": 1.5}"#;
        assert_eq!(
            component_of("heartbeat.worker", body).unwrap(),
            (
                "System monitor (x)".to_owned(),
                String::from_utf8(body.to_vec()).unwrap()
            )
        );
        assert!(component_of("heartbeat.manager", br#"{"component_name": "M"}"#).is_ok());
        assert!(component_of("heartbeat.other", br#"{"component_name": "M"}"#).is_err());
        assert!(component_of("heartbeat.worker", b"not json").is_err());
        assert!(component_of("heartbeat.worker", br#"{"component_name": 3}"#).is_err());
        assert!(component_of("heartbeat.worker", br#"{"name": "x"}"#).is_err());
        assert!(component_of("heartbeat.worker", br#"["component_name"]"#).is_err());
        assert!(component_of("heartbeat.worker", &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn pending_keeps_newest_per_component_in_order() {
        let mut p = Pending::default();
        p.put("a".into(), "1".into());
        p.put("b".into(), "2".into());
        p.put("a".into(), "3".into());
        assert_eq!(
            p.items,
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn own_heartbeat_shape() {
        let v: Value = serde_json::from_str(&own_heartbeat("Ping Publisher")).unwrap();
        assert_eq!(v["component_name"], "Ping Publisher");
        assert!(v["timestamp"].as_f64().unwrap() > 0.0);
        assert_eq!(v.as_object().unwrap().len(), 2);
    }
}
