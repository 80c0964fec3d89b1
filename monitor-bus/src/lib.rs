//! `monitor-bus`: the message bus the services talk over, behind one trait, and the retry policy
//! their loops share. Strategies never depend on this crate (the build proves it: `monitor-strategies`
//! has no path to it), so they cannot name a bus.
//!
//! RabbitMQ's topic semantics behind [`Bus`], with an in-memory implementation ([`MemoryBus`], the
//! embedded default) and a RabbitMQ one ([`AmqpBus`], feature `amqp`, on by default).
//!
//! Semantics both implementations keep (checked by one conformance suite, `tests/it/conformance.rs`):
//! * exchanges are durable topic exchanges; queues are durable; bindings use `*` and `#`;
//! * [`Bus::publish`] is persistent and mandatory and returns only once the message is in every
//!   matching queue (RabbitMQ: publisher confirm); a message no queue is bound for is
//!   [`BusError::Unroutable`] (PANIC's 5001);
//! * publishing to the exchange `""` with a queue's name as routing key puts the message in that
//!   queue only (RabbitMQ's default exchange);
//! * log queues ([`Bus::declare_log_queue`], [`Bus::consume_log`]) keep what they are sent and are
//!   read from their start by every reader;
//! * consumption is manual-ack with a prefetch limit; a message left unacked when its consumer goes
//!   away is delivered again, marked `redelivered`; order within a queue is kept.
//!
//! The RabbitMQ bus additionally survives the loss of its connection (see [`AmqpBus`]); that is
//! checked against the real broker by `tests/it/amqp_fault.rs`.
//!
//! # Layout
//!
//! * this file: [`Bus`], [`Consumer`], [`Delivery`], [`BusError`] and two helpers
//!   ([`declare_bound_queue`], [`publish_json`]);
//! * `memory`: [`MemoryBus`];
//! * `amqp` (feature `amqp`): [`AmqpBus`] and [`AmqpSettings`], split by concern into connection
//!   supervision, topology, publishing (outbox and confirms) and consumers;
//! * `stall`: [`StallWatch`], the stall detection every consume loop shares (a consumer with
//!   deliveries pending and no progress for a bounded time is logged, counted and restarted);
//! * [`backoff`]: the capped, jittered exponential [`Backoff`] of every retry loop (the bus
//!   reconnecting, the manager restarting monitors, the store and the health checker);
//! * [`ratelimit`]: [`ratelimit::LogLimiter`] and [`warn_limited!`], the rate limiter of
//!   warnings that can repeat once per round or once per message, shared by every consume and
//!   publish loop (a count of what it suppressed);
//! * `stuck` (feature `testing`): [`StuckBus`], a bus whose calls never complete, for shutdown tests;
//! * [`testing`] (feature `testing`): a [`testing::Vhost`] per test on the local RabbitMQ and
//!   `rabbitmqctl`, shared by every crate's broker tests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use monitor_core::PanicError;

pub mod backoff;
mod memory;
pub mod ratelimit;
mod stall;
pub mod tls;
pub use backoff::{Backoff, Retry};
pub use memory::MemoryBus;
pub use stall::{StallWatch, Watched};
pub use tls::{closed_without_client_certificate, tls_failure, TlsError, TlsFailure, TlsOptions};

/// For [`warn_limited!`]: the `tracing` it logs through.
#[doc(hidden)]
pub use tracing as __tracing;

#[cfg(feature = "testing")]
mod stuck;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub use stuck::{StuckBus, StuckPublishes};

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "amqp")]
pub use amqp::{AmqpBus, AmqpSettings};

/// What can go wrong on the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// No queue is bound for this message (mandatory publish returned it).
    #[error("message to exchange `{exchange}` with routing key `{routing_key}` is unroutable")]
    Unroutable {
        /// Exchange published to.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The exchange was never declared.
    #[error("exchange `{0}` does not exist")]
    NoSuchExchange(String),
    /// The queue was never declared.
    #[error("queue `{0}` does not exist")]
    NoSuchQueue(String),
    /// The queue is at its length limit and rejects publishes.
    #[error("queue `{0}` is full")]
    QueueFull(String),
    /// The broker negatively acknowledged the publish.
    #[error("publish to `{exchange}` with routing key `{routing_key}` was nacked by the broker")]
    Nacked {
        /// Exchange published to.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The outbox was full while the broker was away: this message was dropped (and counted).
    #[error("broker unavailable and outbox full: message dropped")]
    OutboxFull,
    /// The delivery can no longer be acked (its consumer or channel is gone; it will be redelivered).
    #[error("delivery can no longer be acknowledged: {0}")]
    AckFailed(String),
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
    /// The TLS handshake with the broker failed (its certificate did not verify, it refused ours,
    /// …) or the TLS settings cannot be used; the message says which, with the URL (password
    /// redacted) and what is trusted.
    #[error("{0}")]
    Tls(String),
    /// Any other broker error.
    #[error("broker error: {0}")]
    Broker(String),
}

impl BusError {
    /// PANIC's error for a message that could not be delivered (5001).
    pub fn to_panic_error(&self) -> PanicError {
        PanicError::message_was_not_delivered(&self.to_string())
    }
}

/// Acknowledges one delivery; implemented by each bus.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Positive acknowledgement.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// Negative acknowledgement; `requeue` puts the message back at the head of its queue.
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError>;
}

/// One message received from a queue; ack or nack it exactly once (dropping it unacked leaves it
/// unacked until its consumer goes away, then it is redelivered).
pub struct Delivery {
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// The body.
    pub body: Bytes,
    /// Whether it was delivered before and not acked.
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Delivery {
    /// A delivery (for bus implementations).
    pub fn new(
        exchange: String,
        routing_key: String,
        body: Bytes,
        redelivered: bool,
        acker: Box<dyn Acker>,
    ) -> Self {
        Delivery {
            exchange,
            routing_key,
            body,
            redelivered,
            acker,
        }
    }

    /// Acknowledge.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Negative acknowledgement.
    pub async fn nack(self, requeue: bool) -> Result<(), BusError> {
        self.acker.nack(requeue).await
    }
}

/// A stream of deliveries from one queue. Dropping it cancels the consumer: its unacked messages
/// are delivered again to other (or later) consumers.
///
/// It keeps track of its progress (deliveries handed out and not yet settled, when it last moved)
/// for [`StallWatch`].
pub struct Consumer {
    rx: mpsc::UnboundedReceiver<Delivery>,
    progress: Arc<stall::Progress>,
    _guard: Option<Box<dyn Send + Sync>>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer reading `rx`; `guard` is dropped with it (cancels the subscription).
    pub fn new(rx: mpsc::UnboundedReceiver<Delivery>, guard: Option<Box<dyn Send + Sync>>) -> Self {
        Self::with_progress(rx, guard, Arc::default())
    }

    pub(crate) fn with_progress(
        rx: mpsc::UnboundedReceiver<Delivery>,
        guard: Option<Box<dyn Send + Sync>>,
        progress: Arc<stall::Progress>,
    ) -> Self {
        Consumer {
            rx,
            progress,
            _guard: guard,
        }
    }

    /// The next delivery; `None` once the queue is deleted or the bus closed. Cancel-safe.
    pub async fn next(&mut self) -> Option<Delivery> {
        let mut d = self.rx.recv().await?;
        self.progress.handed_out();
        d.acker = Box::new(stall::TrackedAcker {
            inner: d.acker,
            progress: Arc::clone(&self.progress),
        });
        Some(d)
    }

    /// Deliveries pending: handed out by [`Consumer::next`] and not settled (acked or nacked), plus
    /// those waiting in this consumer.
    pub fn pending(&self) -> usize {
        self.progress.outstanding() + self.rx.len()
    }

    /// Whether deliveries are pending and nothing moved (no delivery handed out or settled) for
    /// `after`.
    pub fn stalled(&self, after: Duration) -> bool {
        self.pending() > 0 && self.progress.idle_for() >= after
    }
}

/// How a log queue ([`Bus::declare_log_queue`]) is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// The log keeps at least its newest `max_bytes` (RabbitMQ: `x-max-length-bytes`; older
    /// segments are deleted whole). There is no age limit: a message is only ever removed because
    /// newer ones filled the log.
    pub max_bytes: u64,
    /// Size of one segment (RabbitMQ: `x-stream-max-segment-size-bytes`), the unit retention deletes.
    pub segment_bytes: u64,
}

/// A topic message bus with RabbitMQ's semantics.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Declare a durable topic exchange (idempotent).
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError>;
    /// Declare a durable queue (idempotent).
    async fn declare_queue(&self, queue: &str) -> Result<(), BusError>;
    /// Bind `queue` to `exchange` with a topic `binding_key` (idempotent).
    async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        binding_key: &str,
    ) -> Result<(), BusError>;
    /// Delete a queue and its bindings; its consumers end.
    async fn delete_queue(&self, queue: &str) -> Result<(), BusError>;
    /// Delete an exchange and the bindings to it (idempotent). The default does nothing, for buses
    /// whose exchanges need no cleanup.
    async fn delete_exchange(&self, exchange: &str) -> Result<(), BusError> {
        let _ = exchange;
        Ok(())
    }
    /// Publish persistently and mandatorily; returns once every matching queue has it.
    async fn publish(&self, exchange: &str, routing_key: &str, body: Bytes)
        -> Result<(), BusError>;
    /// Consume `queue` with manual ack and at most `prefetch` unacked deliveries (0 = unlimited).
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError>;

    /// Declare a durable **log queue** (idempotent): it keeps the messages routed to it (bounded by
    /// `retention`), and every consumer of [`Bus::consume_log`] reads it from its start. RabbitMQ:
    /// a stream queue (`x-queue-type: stream`, `x-max-length-bytes`); the in-memory bus keeps the
    /// last message per routing key, so a reader that applies only the last message per key sees
    /// the same. The default reports the bus cannot ([`BusError::Broker`]).
    async fn declare_log_queue(
        &self,
        queue: &str,
        retention: LogRetention,
    ) -> Result<(), BusError> {
        let _ = retention;
        Err(BusError::Broker(format!(
            "log queue `{queue}`: this bus has no log queues"
        )))
    }

    /// Read the log queue `queue` from its start, then what is routed to it later (RabbitMQ:
    /// `x-stream-offset: first`, at most `prefetch` unacked, at least 1). Acking only paces the
    /// reading: nothing is removed from the log.
    async fn consume_log(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        let _ = prefetch;
        Err(BusError::Broker(format!(
            "log queue `{queue}`: this bus has no log queues"
        )))
    }
}

/// Declare a queue and bind it to `exchange` with each of `binding_keys`.
pub async fn declare_bound_queue(
    bus: &dyn Bus,
    queue: &str,
    exchange: &str,
    binding_keys: &[&str],
) -> Result<(), BusError> {
    bus.declare_exchange(exchange).await?;
    bus.declare_queue(queue).await?;
    for key in binding_keys {
        bus.bind_queue(queue, exchange, key).await?;
    }
    Ok(())
}

/// Publish a JSON value (compact encoding).
pub async fn publish_json(
    bus: &dyn Bus,
    exchange: &str,
    routing_key: &str,
    value: &impl serde::Serialize,
) -> Result<(), BusError> {
    let body = serde_json::to_vec(value).map_err(|e| BusError::Broker(format!("encoding: {e}")))?;
    bus.publish(exchange, routing_key, Bytes::from(body)).await
}
