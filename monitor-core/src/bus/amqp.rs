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
//! **Shutdown.** [`AmqpBus::close`] (or dropping the bus) stops the supervisor, which closes the
//! connection; pending operations return [`BusError::Closed`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Acker, Bus, BusError, Consumer, Delivery};
use crate::backoff::Backoff;

/// How often the supervisor checks the connection's state besides lapin's error events.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// How many times one publish is re-sent after its channel was closed by another publish's error.
const MAX_FOREIGN_RETRIES: u32 = 3;

/// Settings of the RabbitMQ bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (the vhost is URL-encoded).
    pub url: String,
    /// How many publishes may wait for the broker while it is away; more are dropped (counted).
    pub outbox_capacity: usize,
    /// First reconnection delay.
    pub min_backoff: Duration,
    /// Cap of the reconnection delay.
    pub max_backoff: Duration,
    /// Connection name shown by the broker (management UI, `rabbitmqctl list_connections`).
    pub connection_name: String,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            outbox_capacity: 10_000,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            connection_name: "panic-monitors".to_owned(),
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

/// One live connection and its generation (1 for the first, +1 per reconnection).
struct Link {
    generation: u64,
    conn: Connection,
}

impl Link {
    fn alive(&self) -> bool {
        self.conn.status().connected()
    }
}

/// A declaration, replayed on reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    DeclareExchange(String),
    CheckExchange(String),
    DeclareQueue(String),
    Bind {
        queue: String,
        exchange: String,
        key: String,
    },
    DeleteQueue(String),
    DeleteExchange(String),
}

impl Op {
    async fn run(&self, ch: &Channel) -> lapin::Result<()> {
        match self {
            Op::DeclareExchange(name) => {
                ch.exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            }
            Op::CheckExchange(name) => {
                ch.exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            }
            Op::DeclareQueue(name) => ch
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|_| ()),
            Op::Bind {
                queue,
                exchange,
                key,
            } => {
                ch.queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Op::DeleteQueue(name) => ch
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map(|_| ()),
            Op::DeleteExchange(name) => {
                ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                    .await
            }
        }
    }

    /// The caller's view of an error of this operation on a live connection.
    fn error(&self, e: &lapin::Error) -> BusError {
        if is_not_found(e) {
            match self {
                Op::DeclareExchange(x) | Op::CheckExchange(x) | Op::DeleteExchange(x) => {
                    return BusError::NoSuchExchange(x.clone());
                }
                Op::DeclareQueue(q) | Op::DeleteQueue(q) => {
                    return BusError::NoSuchQueue(q.clone())
                }
                Op::Bind {
                    queue, exchange, ..
                } => {
                    return if error_message(e).contains("no exchange") {
                        BusError::NoSuchExchange(exchange.clone())
                    } else {
                        BusError::NoSuchQueue(queue.clone())
                    };
                }
            }
        }
        BusError::Broker(format!("{self:?}: {e}"))
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(p)
        if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

fn error_message(e: &lapin::Error) -> String {
    match e.kind() {
        ErrorKind::ProtocolError(p) => p.get_message().to_string(),
        _ => e.to_string(),
    }
}

/// What was declared through this bus, to re-declare after a reconnection.
#[derive(Default)]
struct Topology {
    exchanges: Vec<String>,
    queues: Vec<String>,
    bindings: Vec<(String, String, String)>,
    /// Exchanges known to exist (declared here or checked), so publishes need no check.
    known_exchanges: HashSet<String>,
    /// Live consumers: id → (queue, cancellation).
    consumers: HashMap<u64, (String, CancellationToken)>,
}

impl Topology {
    fn replay(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .exchanges
            .iter()
            .map(|x| Op::DeclareExchange(x.clone()))
            .collect();
        ops.extend(self.queues.iter().map(|q| Op::DeclareQueue(q.clone())));
        ops.extend(self.bindings.iter().map(|(q, x, k)| Op::Bind {
            queue: q.clone(),
            exchange: x.clone(),
            key: k.clone(),
        }));
        ops
    }
}

struct Shared {
    settings: AmqpSettings,
    link: watch::Sender<Option<Arc<Link>>>,
    topology: Mutex<Topology>,
    /// The publishing channel (with the generation of the link it belongs to). Its lock is the FIFO
    /// that keeps publishes (and the outbox) in order.
    publisher: tokio::sync::Mutex<Option<(u64, Channel)>>,
    outbox: AtomicUsize,
    dropped: AtomicU64,
    reconnections: AtomicU64,
    next_id: AtomicU64,
    shutdown: CancellationToken,
}

fn lock(topology: &Mutex<Topology>) -> MutexGuard<'_, Topology> {
    topology.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn properties(&self) -> ConnectionProperties {
        ConnectionProperties::default()
            .with_connection_name(self.settings.connection_name.as_str().into())
    }

    fn is_connected(&self) -> bool {
        self.link.borrow().as_ref().is_some_and(|l| l.alive())
    }

    /// The current link once it is alive and at least of generation `min_gen`.
    async fn wait_link(&self, min_gen: u64) -> Result<Arc<Link>, BusError> {
        let mut rx = self.link.subscribe();
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(BusError::Closed),
            r = rx.wait_for(|l| l.as_ref().is_some_and(|l| l.generation >= min_gen && l.alive())) => {
                match r {
                    Ok(guard) => guard.as_ref().cloned().ok_or(BusError::Closed),
                    Err(_) => Err(BusError::Closed),
                }
            }
        }
    }

    /// Run a declaration on a channel of its own, retrying it on the next connection when the
    /// current one dies under it.
    async fn admin(&self, op: &Op) -> Result<(), BusError> {
        let mut min_gen = 0;
        loop {
            let link = self.wait_link(min_gen).await?;
            let result = match link.conn.create_channel().await {
                Ok(ch) => {
                    let r = op.run(&ch).await;
                    if ch.status().connected() {
                        let _ = ch.close(200, "OK".into()).await;
                    }
                    r
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if !link.alive() => {
                    debug!(?op, error = %e, "connection lost during a declaration; retrying after reconnection");
                    min_gen = link.generation + 1;
                }
                Err(e) => return Err(op.error(&e)),
            }
        }
    }

    /// Make sure `exchange` exists before publishing to it (passive declare on a side channel).
    async fn ensure_exchange(&self, exchange: &str) -> Result<(), BusError> {
        if exchange.is_empty() || lock(&self.topology).known_exchanges.contains(exchange) {
            return Ok(());
        }
        self.admin(&Op::CheckExchange(exchange.to_owned())).await?;
        lock(&self.topology)
            .known_exchanges
            .insert(exchange.to_owned());
        Ok(())
    }

    fn enter_outbox(
        &self,
        bounded: bool,
        exchange: &str,
        routing_key: &str,
    ) -> Result<OutboxSlot<'_>, BusError> {
        let capacity = self.settings.outbox_capacity;
        let before = self.outbox.fetch_add(1, Ordering::SeqCst);
        if bounded && before >= capacity {
            self.outbox.fetch_sub(1, Ordering::SeqCst);
            let dropped = self.dropped.fetch_add(1, Ordering::SeqCst) + 1;
            warn!(
                exchange,
                routing_key,
                capacity,
                dropped_total = dropped,
                "broker unavailable and outbox full: message dropped"
            );
            return Err(BusError::OutboxFull);
        }
        Ok(OutboxSlot(&self.outbox))
    }

    /// The confirm-mode publishing channel of `link`, opened if needed.
    async fn publish_channel(
        slot: &mut Option<(u64, Channel)>,
        link: &Link,
    ) -> lapin::Result<Channel> {
        if let Some((generation, ch)) = slot.as_ref() {
            if *generation == link.generation && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = link.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some((link.generation, ch.clone()));
        Ok(ch)
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        if self.shutdown.is_cancelled() {
            return Err(BusError::Closed);
        }
        let mut outbox = if self.is_connected() {
            None
        } else {
            Some(self.enter_outbox(true, exchange, routing_key)?)
        };
        self.ensure_exchange(exchange).await?;
        let mut min_gen = 0;
        let mut attempts_on_foreign_errors = 0;
        loop {
            let mut slot = tokio::select! {
                _ = self.shutdown.cancelled() => return Err(BusError::Closed),
                slot = self.publisher.lock() => slot,
            };
            let link = self.wait_link(min_gen).await?;
            let sent = match Self::publish_channel(&mut slot, &link).await {
                Ok(ch) => {
                    ch.basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            drop(slot);
            let outcome = match sent {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Confirmation::Ack(None)) => return Ok(()),
                Ok(Confirmation::Ack(Some(_))) => {
                    return Err(BusError::Unroutable {
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                    })
                }
                Ok(Confirmation::Nack(_)) => {
                    return Err(BusError::Nacked {
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                    })
                }
                Ok(Confirmation::NotRequested) => {
                    return Err(BusError::Broker(
                        "publisher confirms are not enabled on the publishing channel".to_owned(),
                    ))
                }
                Err(e) if !link.alive() => {
                    debug!(exchange, routing_key, error = %e,
                        "connection lost before the publisher confirm; re-sending after reconnection");
                    if outbox.is_none() {
                        outbox = Some(self.enter_outbox(false, exchange, routing_key)?);
                    }
                    min_gen = link.generation + 1;
                }
                Err(e)
                    if is_not_found(&e)
                        && !error_message(&e).contains(&format!("'{exchange}'")) =>
                {
                    // The publishing channel was closed by another publish's error (an exchange
                    // deleted behind our back): this message was not the cause, send it again on
                    // a fresh channel.
                    debug!(exchange, routing_key, error = %e, "publishing channel closed by another publish; re-sending");
                    if attempts_on_foreign_errors >= MAX_FOREIGN_RETRIES {
                        return Err(BusError::Broker(format!(
                            "publish to `{exchange}` with routing key `{routing_key}`: {e}"
                        )));
                    }
                    attempts_on_foreign_errors += 1;
                }
                Err(e) => {
                    if is_not_found(&e) {
                        lock(&self.topology).known_exchanges.remove(exchange);
                        return Err(BusError::NoSuchExchange(exchange.to_owned()));
                    }
                    return Err(BusError::Broker(format!(
                        "publish to `{exchange}` with routing key `{routing_key}`: {e}"
                    )));
                }
            }
        }
    }
}

/// One place in the outbox, freed when the publish completes (or is abandoned).
struct OutboxSlot<'a>(&'a AtomicUsize);

impl Drop for OutboxSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps the connection: detects its loss, reconnects, re-declares, publishes the new link.
async fn supervise(shared: Arc<Shared>, first: Arc<Link>) {
    let mut link = first;
    loop {
        // Watch the current connection.
        let mut events = link.conn.events_listener();
        loop {
            tokio::select! {
                _ = shared.shutdown.cancelled() => {
                    shared.link.send_replace(None);
                    if link.alive() {
                        if let Err(e) = link.conn.close(200, "OK".into()).await {
                            debug!(error = %e, "closing the connection");
                        }
                    }
                    info!("RabbitMQ bus closed");
                    return;
                }
                event = events.next() => {
                    if let Some(lapin::Event::Error(e)) = event {
                        debug!(error = %e, "connection event");
                    }
                }
                () = tokio::time::sleep(STATUS_POLL) => {}
            }
            if !link.alive() {
                break;
            }
        }
        warn!(
            generation = link.generation,
            "RabbitMQ connection lost; reconnecting"
        );
        shared.link.send_replace(None);

        // Reconnect with backoff and re-declare the topology.
        let mut attempt: u32 = 0;
        let conn = loop {
            let delay = shared.settings.reconnect_backoff().delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            let conn = match Connection::connect(&shared.settings.url, shared.properties()).await {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(attempt, error = %e, next_delay_max = ?shared.settings.max_backoff, "reconnection failed");
                    continue;
                }
            };
            let ops = lock(&shared.topology).replay();
            match redeclare(&conn, &ops).await {
                Ok(()) => break conn,
                Err(e) => {
                    warn!(attempt, error = %e, "connection lost while re-declaring; retrying");
                }
            }
        };
        let generation = link.generation + 1;
        link = Arc::new(Link { generation, conn });
        shared.reconnections.fetch_add(1, Ordering::SeqCst);
        shared.link.send_replace(Some(link.clone()));
        info!(generation, "RabbitMQ connection re-established");
    }
}

/// Replay `ops` on `conn`. A failing declaration is logged and skipped (its channel replaced);
/// only the loss of the connection is an error.
async fn redeclare(conn: &Connection, ops: &[Op]) -> lapin::Result<()> {
    let mut ch = conn.create_channel().await?;
    for op in ops {
        if let Err(e) = op.run(&ch).await {
            if !conn.status().connected() {
                return Err(e);
            }
            warn!(?op, error = %e, "re-declaration failed");
            ch = conn.create_channel().await?;
        }
    }
    let _ = ch.close(200, "OK".into()).await;
    Ok(())
}

struct AmqpAcker {
    acker: lapin::Acker,
}

impl AmqpAcker {
    fn settled(r: lapin::Result<bool>) -> Result<(), BusError> {
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(BusError::AckFailed(
                "the delivery's channel is closed (it will be redelivered)".to_owned(),
            )),
            Err(e) => Err(BusError::AckFailed(e.to_string())),
        }
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Self::settled(self.acker.ack(BasicAckOptions::default()).await)
    }
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        Self::settled(
            self.acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue,
                })
                .await,
        )
    }
}

struct ConsumerTask {
    shared: Arc<Shared>,
    id: u64,
    queue: String,
    prefetch: u16,
    tx: mpsc::UnboundedSender<Delivery>,
    cancel: CancellationToken,
}

type Subscription = (Arc<Link>, Channel, lapin::Consumer);

impl ConsumerTask {
    async fn open(&self, link: &Link) -> lapin::Result<(Channel, lapin::Consumer)> {
        let ch = link.conn.create_channel().await?;
        if self.prefetch > 0 {
            ch.basic_qos(self.prefetch, BasicQosOptions::default())
                .await?;
        }
        let tag = format!(
            "{}.{}.{}",
            self.shared.settings.connection_name, self.id, link.generation
        );
        let consumer = ch
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((ch, consumer))
    }

    /// Subscribe on the first live link from generation `min_gen`, retrying across outages.
    async fn subscribe(&self, mut min_gen: u64) -> Result<Subscription, BusError> {
        loop {
            let link = tokio::select! {
                _ = self.cancel.cancelled() => return Err(BusError::Closed),
                l = self.shared.wait_link(min_gen) => l?,
            };
            match self.open(&link).await {
                Ok((ch, consumer)) => return Ok((link, ch, consumer)),
                Err(e) if !link.alive() => {
                    debug!(queue = %self.queue, error = %e, "connection lost while subscribing");
                    min_gen = link.generation + 1;
                }
                Err(e) if is_not_found(&e) => {
                    return Err(BusError::NoSuchQueue(self.queue.clone()));
                }
                Err(e) => return Err(BusError::Broker(format!("consume `{}`: {e}", self.queue))),
            }
        }
    }

    async fn run(self, first: Subscription) {
        let mut sub = first;
        loop {
            let (link, ch, mut stream) = sub;
            let ended_by_us = loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => break true,
                    () = self.tx.closed() => break true,
                    item = stream.next() => match item {
                        Some(Ok(d)) => {
                            let delivery = Delivery::new(
                                d.exchange.to_string(),
                                d.routing_key.to_string(),
                                Bytes::from(d.data),
                                d.redelivered,
                                Box::new(AmqpAcker { acker: d.acker }),
                            );
                            if self.tx.send(delivery).is_err() {
                                break true;
                            }
                        }
                        Some(Err(e)) => debug!(queue = %self.queue, error = %e, "consumer error"),
                        None => break false,
                    },
                }
            };
            if ended_by_us {
                if ch.status().connected() {
                    let _ = ch.close(200, "OK".into()).await;
                }
                break;
            }
            // The subscription ended: connection lost, or cancelled by the broker (queue deleted).
            let min_gen = if link.alive() {
                // Give the broker a moment (and avoid spinning), then try again on this connection;
                // a deleted queue ends the consumer with NOT_FOUND.
                tokio::select! {
                    _ = self.cancel.cancelled() => break,
                    () = tokio::time::sleep(self.shared.settings.min_backoff) => {}
                }
                link.generation
            } else {
                link.generation + 1
            };
            match self.subscribe(min_gen).await {
                Ok(next) => {
                    debug!(queue = %self.queue, "consumer resumed");
                    sub = next;
                }
                Err(BusError::Closed) => break,
                Err(e) => {
                    warn!(queue = %self.queue, error = %e, "consumer ended");
                    break;
                }
            }
        }
        lock(&self.shared.topology).consumers.remove(&self.id);
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
        if settings.min_backoff.is_zero() || settings.min_backoff > settings.max_backoff {
            return Err(BusError::Broker(format!(
                "invalid backoff: min_backoff ({:?}) must be positive and at most max_backoff ({:?})",
                settings.min_backoff, settings.max_backoff
            )));
        }
        let props = ConnectionProperties::default()
            .with_connection_name(settings.connection_name.as_str().into());
        let conn = Connection::connect(&settings.url, props)
            .await
            .map_err(|e| BusError::Broker(format!("connecting to RabbitMQ: {e}")))?;
        let link = Arc::new(Link {
            generation: 1,
            conn,
        });
        let (tx, _) = watch::channel(Some(link.clone()));
        let shared = Arc::new(Shared {
            settings,
            link: tx,
            topology: Mutex::default(),
            publisher: tokio::sync::Mutex::new(None),
            outbox: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            reconnections: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
        });
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

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
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
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let cancel = self.shared.shutdown.child_token();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = ConsumerTask {
            shared: self.shared.clone(),
            id,
            queue: queue.to_owned(),
            prefetch,
            tx,
            cancel: cancel.clone(),
        };
        self.record(|t| {
            t.consumers.insert(id, (queue.to_owned(), cancel.clone()));
        });
        match task.subscribe(0).await {
            Ok(first) => {
                tokio::spawn(task.run(first));
                Ok(Consumer::new(rx, Some(Box::new(cancel.drop_guard()))))
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
