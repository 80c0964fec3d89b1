//! The store service: consume monitorable messages, merge them into a store, heartbeat.
//!
//! Per message (spec §6.2, §2.6):
//! * the routing key must be `<base_chain>.<type>` and the body a monitorable message; otherwise
//!   the message is logged, acked and not written;
//! * the message is merged with [`MonitorablesStore::apply`]; while the store is unavailable the
//!   same message is retried with capped exponential backoff and stays unacked (so nothing is lost
//!   even if this process dies); on shutdown it is nacked with requeue;
//! * a store that reports a corrupt document gets the PANIC treatment: logged, acked, no heartbeat;
//! * after a successful write the message is acked and a worker heartbeat
//!   `{component_name: "Monitorable Store", is_alive: true, timestamp}` is published on
//!   `health_check` / `heartbeat.worker` by [`heartbeat::publish_worker_heartbeat`], as the
//!   manager's monitors do (unroutable is logged at debug level);
//! * a consumer with deliveries pending and no progress for `stall_after` is dropped (its unacked
//!   messages go back to the queue) and consumed again, with a warning and a count
//!   ([`monitor_bus::StallWatch`]); acks never wait for the broker longer than the bus's
//!   operation timeout.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use monitor_bus::backoff::Backoff;
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, BusError, Delivery, StallWatch, Watched};
use monitor_core::envelope::MonitorableMessage;
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, MONITORABLE_BINDING, MONITORABLE_EXCHANGE, MONITORABLE_STORE_INPUT_QUEUE,
};
use monitor_core::MonitorableKey;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::store::MonitorablesStore;

/// The store's component name in heartbeats.
pub const COMPONENT_NAME: &str = "Monitorable Store";

/// Settings of [`run_store_service`].
#[derive(Debug, Clone)]
pub struct StoreServiceSettings {
    /// Input queue (PANIC: `monitorable_store_input_queue`; override in tests).
    pub queue: String,
    /// Prefetch limit (0 = unlimited, as PANIC).
    pub prefetch: u16,
    /// Component name in heartbeats.
    pub component_name: String,
    /// First retry delay while the store is unavailable.
    pub retry_min: Duration,
    /// Retry delay cap.
    pub retry_max: Duration,
    /// The consumer is restarted (logged, counted in [`StoreServiceSettings::stalls`]) when it has
    /// deliveries pending and no progress for this long ([`monitor_bus::StallWatch`]).
    pub stall_after: Duration,
    /// Counts the consumer's stalls (share it to expose it).
    pub stalls: Arc<AtomicU64>,
}

impl Default for StoreServiceSettings {
    fn default() -> Self {
        StoreServiceSettings {
            queue: MONITORABLE_STORE_INPUT_QUEUE.to_owned(),
            prefetch: 0,
            component_name: COMPONENT_NAME.to_owned(),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            stall_after: Duration::from_secs(60),
            stalls: Arc::default(),
        }
    }
}

/// Why the service stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The bus was closed.
    #[error("bus closed: {0}")]
    Bus(#[from] BusError),
}

/// What became of one delivery.
enum Outcome {
    /// Handled (acked or left for redelivery); go on.
    Next,
    /// Shutdown arrived while retrying; the delivery was handed back.
    Stopped,
}

/// Run the store service until `shutdown` is cancelled (returns `Ok`) or the bus is closed.
///
/// Declares the `monitorable` and `health_check` exchanges and the input queue bound `*.*`, then
/// consumes with manual ack. If the consumer ends (queue deleted, broker connection lost), the
/// topology is declared again and consumption resumes after a backoff.
pub async fn run_store_service(
    bus: Arc<dyn Bus>,
    store: Arc<dyn MonitorablesStore>,
    settings: StoreServiceSettings,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max).retry();
    let watch = StallWatch::new(settings.queue.clone(), settings.stall_after)
        .with_counter(settings.stalls.clone());
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Declaring waits for the broker while it is away: shutdown must not wait for it.
        let Some(set_up) = shutdown
            .run_until_cancelled(setup(bus.as_ref(), &settings))
            .await
        else {
            return Ok(());
        };
        let mut consumer = match set_up {
            Ok(c) => {
                backoff.reset();
                c
            }
            Err(BusError::Closed) => return Err(ServiceError::Bus(BusError::Closed)),
            Err(e) => {
                warn!(error = %e, queue = %settings.queue, "cannot consume monitorables; retrying");
                if !backoff.sleep(&shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        info!(queue = %settings.queue, "monitorable store consuming");
        loop {
            let Some(delivery) = shutdown
                .run_until_cancelled(watch.next(&mut consumer))
                .await
            else {
                return Ok(());
            };
            let delivery = match delivery {
                Watched::Delivery(d) => d,
                Watched::Ended => {
                    warn!(queue = %settings.queue, "monitorable consumer ended; consuming again");
                    break;
                }
                // Logged and counted by the watch; dropping the consumer hands its unacked
                // deliveries back to the queue.
                Watched::Stalled => break,
            };
            match handle(bus.as_ref(), store.as_ref(), &settings, delivery, &shutdown).await {
                Outcome::Next => {}
                Outcome::Stopped => return Ok(()),
            }
        }
        drop(consumer);
        if !backoff.sleep(&shutdown).await {
            return Ok(());
        }
    }
}

async fn setup(
    bus: &dyn Bus,
    settings: &StoreServiceSettings,
) -> Result<monitor_bus::Consumer, BusError> {
    bus.declare_exchange(HEALTH_CHECK_EXCHANGE).await?;
    declare_bound_queue(
        bus,
        &settings.queue,
        MONITORABLE_EXCHANGE,
        &[MONITORABLE_BINDING],
    )
    .await?;
    bus.consume(&settings.queue, settings.prefetch).await
}

/// The service's per-message warnings: at most 5 lines per kind per minute, each saying how many
/// were suppressed since the last.
static WARNINGS: std::sync::LazyLock<monitor_bus::ratelimit::LogLimiter> =
    std::sync::LazyLock::new(|| monitor_bus::ratelimit::LogLimiter::per_minute(5));

async fn ack(delivery: Delivery) {
    let key = delivery.routing_key.clone();
    if let Err(e) = delivery.ack().await {
        // It will be delivered again; applying a message twice gives the same document.
        monitor_bus::warn_limited!(WARNINGS, "ack", routing_key = %key, error = %e,
            "could not ack monitorable message");
    }
}

async fn handle(
    bus: &dyn Bus,
    store: &dyn MonitorablesStore,
    settings: &StoreServiceSettings,
    delivery: Delivery,
    shutdown: &CancellationToken,
) -> Outcome {
    let key = match MonitorableKey::parse(&delivery.routing_key) {
        Ok(k) => k,
        Err(e) => {
            monitor_bus::warn_limited!(WARNINGS, "bad key", routing_key = %delivery.routing_key,
                error = %e, "invalid monitorable routing key; message dropped");
            ack(delivery).await;
            return Outcome::Next;
        }
    };
    let msg: MonitorableMessage = match serde_json::from_slice(&delivery.body) {
        Ok(m) => m,
        Err(e) => {
            // The body's size only: no payload bytes in logs.
            monitor_bus::warn_limited!(WARNINGS, "bad message", routing_key = %delivery.routing_key,
                error = %e, bytes = delivery.body.len(),
                "invalid monitorable message; message dropped");
            ack(delivery).await;
            return Outcome::Next;
        }
    };
    debug!(routing_key = %key, manager = %msg.manager_name, sources = msg.sources.len(),
        "applying monitorable message");

    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max).retry();
    loop {
        match store.apply(&key, &msg).await {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                warn!(routing_key = %key, error = %e, retry_in = ?backoff.current(),
                    "monitorables store unavailable; retrying the same message");
                if !backoff.sleep(shutdown).await {
                    if let Err(e) = delivery.nack(true).await {
                        warn!(routing_key = %key, error = %e, "could not requeue on shutdown");
                    }
                    return Outcome::Stopped;
                }
            }
            Err(e) => {
                error!(routing_key = %key, error = %e, "monitorable message not stored");
                ack(delivery).await;
                return Outcome::Next;
            }
        }
    }
    ack(delivery).await;

    // The publish waits in the bus's outbox while the broker is away: shutdown does not wait for
    // it (the message is applied and acked; only this heartbeat is lost).
    let publish = heartbeat::publish_worker_heartbeat(bus, &settings.component_name);
    match shutdown.run_until_cancelled(publish).await {
        None => Outcome::Stopped,
        Some(Ok(_published)) => Outcome::Next,
        Some(Err(e)) => {
            warn!(error = %e, "could not publish heartbeat");
            Outcome::Next
        }
    }
}
