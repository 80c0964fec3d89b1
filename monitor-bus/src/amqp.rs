//! The RabbitMQ bus, on lapin 4 (tokio runtime).
//!
//! # Design
//!
//! **One connection, a supervisor.** [`AmqpBus::connect`] opens one long-lived connection and
//! spawns a supervisor task. The current connection is published as a *link* (connection plus a
//! generation number) in a `watch` channel. The supervisor watches the connection (lapin's
//! connection events, plus a status poll as a fallback); when it is lost it withdraws the link,
//! reconnects with capped, jittered exponential backoff (`min_backoff · 2ⁿ` capped at
//! `max_backoff`, then a random delay in the upper half of that), re-declares every exchange,
//! queue and binding declared through this bus so far, and publishes the new link. Everything else
//! (publishers, consumers, declarations) waits on the `watch` channel for a live link.
//!
//! **Errors are classified by the connection's state.** When a lapin operation fails and the
//! connection is no longer connected, the failure is the outage's, not the operation's: the
//! operation waits for the next link and is retried. When the connection is still up, the error
//! belongs to the operation (missing queue, …) and is returned to the caller.
//!
//! **Declarations** each run on a short-lived channel of their own, so that a channel error (e.g.
//! `NOT_FOUND`) never kills the publishing channel or a consumer. They are recorded before they
//! run, so that a reconnection racing with them re-declares them too.
//!
//! **Publishing** uses one channel in confirm mode, opened lazily per link. Every publish is
//! persistent (`delivery_mode` 2) and mandatory; `publish` returns only once the broker's confirm
//! arrives: `Ack` without a returned message is success, `Ack` with a returned message (lapin 4
//! attaches the `basic.return` to the confirmation) is [`BusError::Unroutable`], `Nack` is
//! [`BusError::Nacked`]. Sending is serialised by a FIFO lock (the confirm is awaited outside it,
//! so concurrent publishes pipeline), which keeps publishes in call order. The first publish to an
//! exchange this bus did not declare checks it with a passive declare, on a side channel, so that a
//! missing exchange is [`BusError::NoSuchExchange`] instead of a dead publishing channel.
//!
//! **The outbox.** A publish that starts while there is no live connection enters the outbox: a
//! bounded count (`outbox_capacity`) of publishes waiting for the broker, queued in order behind
//! the FIFO lock. When the outbox is full the message is dropped, [`AmqpBus::dropped`] is
//! incremented, a warning is logged and [`BusError::OutboxFull`] is returned: never silent. A
//! publish whose confirm was lost because the connection died after sending (at-least-once) joins
//! the outbox regardless of its bound (it was already accepted) and is re-sent on the next
//! connection; success is reported only after a confirm, so a message may arrive twice, never
//! zero times after an `Ok`.
//!
//! **Consumers.** Each [`Consumer`] is fed by a task owning a channel with `basic_qos(prefetch)`
//! and manual acks. When the connection dies, the task waits for the next link, opens a new
//! channel and consumes again, feeding the same [`Consumer`]; the broker redelivers what was
//! unacked (marked `redelivered`). Deliveries received on a dead channel fail to ack with
//! [`BusError::AckFailed`]. Dropping the [`Consumer`] closes its channel, so its unacked
//! deliveries go back to the queue. A consumer ends (its `next` returns `None`) when its queue is
//! deleted or the bus is closed.
//!
//! **Nothing waits forever.** Every operation that waits for the broker (connecting, re-declaring,
//! opening a channel, subscribing, acking, closing) is bounded by `operation_timeout`; an ack that
//! does not complete in time is [`BusError::AckFailed`] (the delivery comes back when its channel
//! goes). A consumer task also checks that its link is alive (lapin's stream may not end when the
//! connection dies under it), and probes its queue when nothing came for `consumer_stall_after`:
//! messages ready, prefetch room, nothing delivered means the subscription is stuck, and it is
//! resubscribed (a warning, [`AmqpBus::consumer_restarts`]).
//!
//! **Shutdown.** [`AmqpBus::close`] (or dropping the bus) stops the supervisor, which closes the
//! connection; pending operations return [`BusError::Closed`].

mod connection;
mod consume;
mod publish;
mod topology;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lapin::tcp::RustlsConnector;
use lapin::ConnectionProperties;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::stall::Progress;
use crate::tls::{insecure_warning, TlsOptions};
use crate::{Bus, BusError, Consumer};
use connection::{connect_error, lock, open, supervise, Link, Shared};
use consume::ConsumerTask;
use topology::{push_unique, Op, Topology};

/// Settings of the RabbitMQ bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (the vhost is URL-encoded).
    pub url: String,
    /// How many publishes may wait for the broker while it is away; more are dropped (counted).
    pub outbox_capacity: usize,
    /// First reconnection delay.
    pub min_backoff: Duration,
    /// Cap of the reconnection delay (default 2 s: a lost broker is retried at most every 2 s, so
    /// every binary resumes within a few seconds of its return; an attempt against a broker that
    /// is down costs one refused TCP connect).
    pub max_backoff: Duration,
    /// Connection name shown by the broker (management UI, `rabbitmqctl list_connections`).
    pub connection_name: String,
    /// Bound of every broker operation that waits for the broker's answer or for a frame to be
    /// written (connecting, re-declaring, opening or closing a channel, subscribing, acking). An
    /// operation that takes longer is treated as failed, so nothing waits on a silent broker
    /// forever.
    pub operation_timeout: Duration,
    /// A subscription that delivered nothing for this long while its queue has messages ready and
    /// its prefetch window is not full is stuck: it is resubscribed (logged, counted in
    /// [`AmqpBus::consumer_restarts`]).
    pub consumer_stall_after: Duration,
    /// TLS settings of an `amqps://` URL (CA file, client certificate, no verification); ignored
    /// for `amqp://`.
    pub tls: TlsOptions,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            outbox_capacity: 10_000,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            connection_name: "panic-monitors".to_owned(),
            operation_timeout: Duration::from_secs(15),
            consumer_stall_after: Duration::from_secs(30),
            tls: TlsOptions::default(),
        }
    }
}

impl AmqpSettings {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpSettings {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The reconnection backoff: `min_backoff · 2ⁿ` capped at `max_backoff`, then a random delay
    /// in the upper half of that.
    pub fn reconnect_backoff(&self) -> Backoff {
        Backoff {
            initial: self.min_backoff,
            max: self.max_backoff,
            jitter: 0.5,
        }
    }
}

/// The RabbitMQ implementation of [`Bus`]. See the module documentation for its design.
pub struct AmqpBus {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("connection_name", &self.shared.settings.connection_name)
            .field("connected", &self.is_connected())
            .field("outbox_len", &self.outbox_len())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl AmqpBus {
    /// Connect to the broker (one attempt: an unreachable broker at start-up is an error) and start
    /// the supervisor that keeps the connection. Must be called inside a tokio runtime.
    pub async fn connect(settings: AmqpSettings) -> Result<Self, BusError> {
        if settings.operation_timeout.is_zero() || settings.consumer_stall_after.is_zero() {
            return Err(BusError::Broker(
                "invalid settings: operation_timeout and consumer_stall_after must be positive"
                    .to_owned(),
            ));
        }
        if settings.min_backoff.is_zero() || settings.min_backoff > settings.max_backoff {
            return Err(BusError::Broker(format!(
                "invalid backoff: min_backoff ({:?}) must be positive and at most max_backoff ({:?})",
                settings.min_backoff, settings.max_backoff
            )));
        }
        let tls = if settings.url.starts_with("amqps:") {
            let config = settings
                .tls
                .client_config()
                .map_err(|e| BusError::Tls(e.to_string()))?;
            Some(RustlsConnector::from(config))
        } else {
            None
        };
        let props = ConnectionProperties::default()
            .with_connection_name(settings.connection_name.as_str().into());
        let conn = tokio::time::timeout(
            settings.operation_timeout,
            open(&settings.url, props, tls.as_ref()),
        )
        .await
        .map_err(|_| BusError::Broker("connecting to RabbitMQ: timed out".to_owned()))?
        .map_err(|e| connect_error(&settings, tls.as_ref(), &e))?;
        if tls.is_some() && settings.tls.accept_invalid_certs {
            warn!("{}", insecure_warning("RabbitMQ"));
        }
        let link = Arc::new(Link {
            generation: 1,
            conn,
        });
        let (tx, _) = watch::channel(Some(link.clone()));
        let shared = Arc::new(Shared {
            settings,
            tls,
            link: tx,
            topology: Mutex::default(),
            publisher: tokio::sync::Mutex::new(None),
            outbox: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            reconnections: AtomicU64::new(0),
            consumer_restarts: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            consumers: tokio_util::task::TaskTracker::new(),
        });
        // Owned: the handle is kept in `supervisor` and awaited by `close()`; dropping the bus
        // cancels the token the supervisor ends on.
        #[allow(clippy::disallowed_methods)]
        let supervisor = tokio::spawn(supervise(shared.clone(), link));
        info!(connection_name = %shared.settings.connection_name, "connected to RabbitMQ");
        Ok(AmqpBus {
            shared,
            supervisor: Mutex::new(Some(supervisor)),
        })
    }

    /// Messages dropped because the outbox was full while the broker was away.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Publishes currently waiting for the broker (outbox occupancy).
    pub fn outbox_len(&self) -> usize {
        self.shared.outbox.load(Ordering::SeqCst)
    }

    /// How many times the connection was re-established.
    pub fn reconnections(&self) -> u64 {
        self.shared.reconnections.load(Ordering::SeqCst)
    }

    /// How many times a consumer's subscription was found stuck (its queue had messages ready,
    /// its prefetch window room, and nothing came for `consumer_stall_after`) and was resubscribed.
    pub fn consumer_restarts(&self) -> u64 {
        self.shared.consumer_restarts.load(Ordering::SeqCst)
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Clean shutdown: stop reconnecting, end the consumers, close the connection. Pending and
    /// later operations return [`BusError::Closed`].
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        let handle = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                warn!(error = %e, "RabbitMQ supervisor task failed");
            }
        }
        // The consumer tasks end on the same token; wait for them so nothing outlives the bus.
        self.shared.consumers.close();
        self.shared.consumers.wait().await;
    }

    fn record(&self, f: impl FnOnce(&mut Topology)) {
        f(&mut lock(&self.shared.topology));
    }
}

impl Drop for AmqpBus {
    fn drop(&mut self) {
        // The supervisor closes the connection and the consumer tasks end.
        self.shared.shutdown.cancel();
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.record(|t| push_unique(&mut t.exchanges, exchange.to_owned()));
        match self
            .shared
            .admin(&Op::DeclareExchange(exchange.to_owned()))
            .await
        {
            Ok(()) => {
                self.record(|t| {
                    t.known_exchanges.insert(exchange.to_owned());
                });
                Ok(())
            }
            Err(e) => {
                self.record(|t| t.exchanges.retain(|x| x != exchange));
                Err(e)
            }
        }
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        self.record(|t| push_unique(&mut t.queues, queue.to_owned()));
        let r = self.shared.admin(&Op::DeclareQueue(queue.to_owned())).await;
        if r.is_err() {
            self.record(|t| t.queues.retain(|q| q != queue));
        }
        r
    }

    async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        binding_key: &str,
    ) -> Result<(), BusError> {
        let binding = (
            queue.to_owned(),
            exchange.to_owned(),
            binding_key.to_owned(),
        );
        self.record(|t| push_unique(&mut t.bindings, binding.clone()));
        let r = self
            .shared
            .admin(&Op::Bind {
                queue: queue.to_owned(),
                exchange: exchange.to_owned(),
                key: binding_key.to_owned(),
            })
            .await;
        if r.is_err() {
            self.record(|t| t.bindings.retain(|b| *b != binding));
        }
        r
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let cancelled: Vec<CancellationToken> = {
            let mut t = lock(&self.shared.topology);
            t.queues.retain(|q| q != queue);
            t.streams.retain(|(q, _)| q != queue);
            t.bindings.retain(|(q, _, _)| q != queue);
            t.consumers
                .values()
                .filter(|(q, _)| q == queue)
                .map(|(_, c)| c.clone())
                .collect()
        };
        for c in cancelled {
            c.cancel();
        }
        self.shared.admin(&Op::DeleteQueue(queue.to_owned())).await
    }

    async fn delete_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.record(|t| {
            t.exchanges.retain(|x| x != exchange);
            t.bindings.retain(|(_, x, _)| x != exchange);
            t.known_exchanges.remove(exchange);
        });
        self.shared
            .admin(&Op::DeleteExchange(exchange.to_owned()))
            .await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        self.shared.publish(exchange, routing_key, body).await
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.start_consumer(queue, prefetch, false).await
    }

    async fn declare_log_queue(
        &self,
        queue: &str,
        retention: crate::LogRetention,
    ) -> Result<(), BusError> {
        let entry = (queue.to_owned(), retention);
        self.record(|t| push_unique(&mut t.streams, entry.clone()));
        let r = self
            .shared
            .admin(&Op::DeclareStream(queue.to_owned(), retention))
            .await;
        if r.is_err() {
            self.record(|t| t.streams.retain(|s| *s != entry));
        }
        r
    }

    async fn consume_log(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        // A stream consumer needs a prefetch (basic.qos) of at least 1.
        self.start_consumer(queue, prefetch.max(1), true).await
    }
}

impl AmqpBus {
    async fn start_consumer(
        &self,
        queue: &str,
        prefetch: u16,
        from_start: bool,
    ) -> Result<Consumer, BusError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let cancel = self.shared.shutdown.child_token();
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(Progress::default());
        let task = ConsumerTask {
            shared: self.shared.clone(),
            id,
            queue: queue.to_owned(),
            prefetch,
            from_start,
            tx,
            cancel: cancel.clone(),
            progress: progress.clone(),
        };
        self.record(|t| {
            t.consumers.insert(id, (queue.to_owned(), cancel.clone()));
        });
        match task.subscribe(0).await {
            Ok(first) => {
                self.shared.consumers.spawn(task.run(first));
                Ok(Consumer::with_progress(
                    rx,
                    Some(Box::new(cancel.drop_guard())),
                    progress,
                ))
            }
            Err(e) => {
                self.record(|t| {
                    t.consumers.remove(&id);
                });
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let settings = AmqpSettings {
            min_backoff: min,
            max_backoff: max,
            ..AmqpSettings::default()
        };
        let backoff = settings.reconnect_backoff();
        for attempt in 0..40 {
            let d = backoff.delay(attempt);
            assert!(d <= max, "attempt {attempt}: {d:?}");
            let ceiling = min
                .saturating_mul(2u32.saturating_pow(attempt.min(24)))
                .min(max);
            assert!(d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
        assert!(backoff.delay(0) <= min);
    }

    #[tokio::test]
    async fn unreachable_broker_is_an_error() {
        let settings = AmqpSettings::new("amqp://guest:guest@127.0.0.1:1/%2f");
        let err = AmqpBus::connect(settings).await.unwrap_err();
        assert!(matches!(err, BusError::Broker(_)), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_backoff_is_an_error() {
        let settings = AmqpSettings {
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(1),
            ..AmqpSettings::default()
        };
        let err = AmqpBus::connect(settings).await.unwrap_err();
        assert!(matches!(err, BusError::Broker(_)), "{err:?}");
    }
}
