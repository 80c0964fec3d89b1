//! The in-memory bus: RabbitMQ's topic semantics inside one process.
//!
//! Delivery is push-based under one lock: a publish, an ack and a new consumer each dispatch what
//! they can, so there are no background tasks and behaviour is deterministic (tests run it with
//! paused time). Queues are unbounded unless [`MemoryBus::with_queue_limit`] sets a length limit,
//! past which publishes are rejected ([`BusError::QueueFull`], like RabbitMQ's `reject-publish`).
//! Log queues keep the last message per routing key (what a compacting reader of a RabbitMQ
//! stream ends up with) and hand every reader those, oldest first, then what comes later.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Acker, Bus, BusError, Consumer, Delivery, LogRetention};
use monitor_core::keys::topic_matches;

#[derive(Clone)]
struct Stored {
    exchange: String,
    routing_key: String,
    body: Bytes,
    redelivered: bool,
}

struct Slot {
    id: u64,
    tx: mpsc::UnboundedSender<Delivery>,
    prefetch: usize,
    unacked: BTreeMap<u64, Stored>,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<Stored>,
    consumers: Vec<Slot>,
    next_rr: usize,
}

/// A log queue: the last message per routing key (in the order they came) and its readers.
/// Messages sent to it by name (default exchange) are kept per distinct body instead, since their
/// routing key is the log's own name.
#[derive(Default)]
struct Log {
    last: HashMap<(String, Option<Bytes>), (u64, Stored)>,
    seq: u64,
    readers: Vec<mpsc::UnboundedSender<Delivery>>,
}

impl Log {
    fn push(&mut self, stored: &Stored) {
        self.seq += 1;
        let by_body = stored.exchange.is_empty().then(|| stored.body.clone());
        self.last.insert(
            (stored.routing_key.clone(), by_body),
            (self.seq, stored.clone()),
        );
        self.readers
            .retain(|tx| tx.send(log_delivery(stored)).is_ok());
    }
}

fn log_delivery(m: &Stored) -> Delivery {
    Delivery::new(
        m.exchange.clone(),
        m.routing_key.clone(),
        m.body.clone(),
        false,
        Box::new(LogAcker),
    )
}

/// Acks of log deliveries remove nothing.
struct LogAcker;

#[async_trait]
impl Acker for LogAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }
    async fn nack(self: Box<Self>, _requeue: bool) -> Result<(), BusError> {
        Ok(())
    }
}

#[derive(Default)]
struct Inner {
    /// exchange → [(binding key, queue)]
    exchanges: HashMap<String, Vec<(String, String)>>,
    queues: HashMap<String, Queue>,
    /// Log queues (see [`Bus::declare_log_queue`]): the last message per routing key.
    logs: HashMap<String, Log>,
    next_id: u64,
}

/// The in-memory bus. Cheap to clone; clones share the same exchanges and queues.
#[derive(Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    queue_limit: Option<usize>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("queue_limit", &self.queue_limit)
            .finish_non_exhaustive()
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that matters more
    // than losing the bus, so recover the guard.
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryBus {
    /// An empty bus with unbounded queues.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus whose queues hold at most `limit` ready messages each.
    pub fn with_queue_limit(limit: usize) -> Self {
        MemoryBus {
            inner: Arc::default(),
            queue_limit: Some(limit),
        }
    }

    /// Number of ready (not yet delivered) messages in `queue`.
    pub fn queue_len(&self, queue: &str) -> Option<usize> {
        lock(&self.inner)
            .queues
            .get(queue)
            .map(|q| q.messages.len())
    }

    /// Number of delivered but unacked messages in `queue`.
    pub fn unacked_len(&self, queue: &str) -> Option<usize> {
        lock(&self.inner)
            .queues
            .get(queue)
            .map(|q| q.consumers.iter().map(|c| c.unacked.len()).sum())
    }
}

/// Requeue every unacked message of consumer `id` at the head of the queue, in delivery order.
fn drop_consumer(queue: &mut Queue, id: u64) {
    if let Some(pos) = queue.consumers.iter().position(|c| c.id == id) {
        let slot = queue.consumers.remove(pos);
        for (_, mut m) in slot.unacked.into_iter().rev() {
            m.redelivered = true;
            queue.messages.push_front(m);
        }
    }
}

fn dispatch(inner_arc: &Arc<Mutex<Inner>>, inner: &mut Inner, queue_name: &str) {
    let Some(queue) = inner.queues.get_mut(queue_name) else {
        return;
    };
    loop {
        if queue.messages.is_empty() || queue.consumers.is_empty() {
            return;
        }
        // Drop consumers whose receiving side is gone.
        let closed: Vec<u64> = queue
            .consumers
            .iter()
            .filter(|c| c.tx.is_closed())
            .map(|c| c.id)
            .collect();
        for id in closed {
            drop_consumer(queue, id);
        }
        let n = queue.consumers.len();
        if n == 0 {
            return;
        }
        let start = queue.next_rr % n;
        let Some(idx) = (0..n).map(|i| (start + i) % n).find(|&i| {
            let c = &queue.consumers[i];
            c.prefetch == 0 || c.unacked.len() < c.prefetch
        }) else {
            return;
        };
        queue.next_rr = idx + 1;
        let Some(msg) = queue.messages.pop_front() else {
            return;
        };
        inner.next_id += 1;
        let tag = inner.next_id;
        let slot = &mut queue.consumers[idx];
        let acker = MemoryAcker {
            inner: Arc::downgrade(inner_arc),
            queue: queue_name.to_owned(),
            consumer: slot.id,
            tag,
        };
        let delivery = Delivery::new(
            msg.exchange.clone(),
            msg.routing_key.clone(),
            msg.body.clone(),
            msg.redelivered,
            Box::new(acker),
        );
        slot.unacked.insert(tag, msg);
        if slot.tx.send(delivery).is_err() {
            // Receiver went away between the check and the send: requeue through drop_consumer.
            let id = slot.id;
            drop_consumer(queue, id);
        }
    }
}

struct MemoryAcker {
    inner: Weak<Mutex<Inner>>,
    queue: String,
    consumer: u64,
    tag: u64,
}

impl MemoryAcker {
    fn settle(self, requeue: Option<bool>) -> Result<(), BusError> {
        let arc = self.inner.upgrade().ok_or(BusError::Closed)?;
        let mut inner = lock(&arc);
        let queue = inner
            .queues
            .get_mut(&self.queue)
            .ok_or_else(|| BusError::AckFailed(format!("queue `{}` was deleted", self.queue)))?;
        let slot = queue
            .consumers
            .iter_mut()
            .find(|c| c.id == self.consumer)
            .ok_or_else(|| BusError::AckFailed("consumer was cancelled".to_owned()))?;
        let mut msg = slot
            .unacked
            .remove(&self.tag)
            .ok_or_else(|| BusError::AckFailed("delivery already settled".to_owned()))?;
        if requeue == Some(true) {
            msg.redelivered = true;
            queue.messages.push_front(msg);
        }
        dispatch(&arc, &mut inner, &self.queue);
        Ok(())
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.settle(None)
    }
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        self.settle(Some(requeue))
    }
}

/// Cancels a consumer when the [`Consumer`] is dropped.
struct ConsumerGuard {
    inner: Weak<Mutex<Inner>>,
    queue: String,
    id: u64,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        if let Some(arc) = self.inner.upgrade() {
            let mut inner = lock(&arc);
            if let Some(q) = inner.queues.get_mut(&self.queue) {
                drop_consumer(q, self.id);
            }
            dispatch(&arc, &mut inner, &self.queue);
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        lock(&self.inner)
            .exchanges
            .entry(exchange.to_owned())
            .or_default();
        Ok(())
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        lock(&self.inner)
            .queues
            .entry(queue.to_owned())
            .or_default();
        Ok(())
    }

    async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        binding_key: &str,
    ) -> Result<(), BusError> {
        let mut inner = lock(&self.inner);
        if !inner.queues.contains_key(queue) && !inner.logs.contains_key(queue) {
            return Err(BusError::NoSuchQueue(queue.to_owned()));
        }
        let bindings = inner
            .exchanges
            .get_mut(exchange)
            .ok_or_else(|| BusError::NoSuchExchange(exchange.to_owned()))?;
        let b = (binding_key.to_owned(), queue.to_owned());
        if !bindings.contains(&b) {
            bindings.push(b);
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let mut inner = lock(&self.inner);
        inner.queues.remove(queue);
        inner.logs.remove(queue);
        for bindings in inner.exchanges.values_mut() {
            bindings.retain(|(_, q)| q != queue);
        }
        Ok(())
    }

    async fn delete_exchange(&self, exchange: &str) -> Result<(), BusError> {
        lock(&self.inner).exchanges.remove(exchange);
        Ok(())
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        let mut inner = lock(&self.inner);
        let mut targets: Vec<String> = if exchange.is_empty() {
            // The default exchange: the queue named by the routing key.
            let exists =
                inner.queues.contains_key(routing_key) || inner.logs.contains_key(routing_key);
            if exists {
                vec![routing_key.to_owned()]
            } else {
                Vec::new()
            }
        } else {
            let bindings = inner
                .exchanges
                .get(exchange)
                .ok_or_else(|| BusError::NoSuchExchange(exchange.to_owned()))?;
            bindings
                .iter()
                .filter(|(key, _)| topic_matches(key, routing_key))
                .map(|(_, q)| q.clone())
                .collect()
        };
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err(BusError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            });
        }
        if let Some(limit) = self.queue_limit {
            if let Some(full) = targets.iter().find(|q| {
                inner
                    .queues
                    .get(*q)
                    .is_some_and(|q| q.messages.len() >= limit)
            }) {
                return Err(BusError::QueueFull(full.clone()));
            }
        }
        let stored = Stored {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            body,
            redelivered: false,
        };
        for q in &targets {
            if let Some(log) = inner.logs.get_mut(q) {
                log.push(&stored);
                continue;
            }
            if let Some(queue) = inner.queues.get_mut(q) {
                queue.messages.push_back(stored.clone());
            }
            dispatch(&self.inner, &mut inner, q);
        }
        Ok(())
    }

    async fn declare_log_queue(
        &self,
        queue: &str,
        retention: LogRetention,
    ) -> Result<(), BusError> {
        let _ = retention;
        let mut inner = lock(&self.inner);
        if inner.queues.contains_key(queue) {
            return Err(BusError::Broker(format!(
                "queue `{queue}` exists and is not a log queue"
            )));
        }
        inner.logs.entry(queue.to_owned()).or_default();
        Ok(())
    }

    async fn consume_log(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        let _ = prefetch;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = lock(&self.inner);
        let log = inner
            .logs
            .get_mut(queue)
            .ok_or_else(|| BusError::NoSuchQueue(queue.to_owned()))?;
        let mut retained: Vec<&(u64, Stored)> = log.last.values().collect();
        retained.sort_by_key(|(seq, _)| *seq);
        for (_, m) in retained {
            // The receiver is ours, alive: sending cannot fail.
            let _ = tx.send(log_delivery(m));
        }
        log.readers.push(tx);
        Ok(Consumer::new(rx, None))
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        let q = inner
            .queues
            .get_mut(queue)
            .ok_or_else(|| BusError::NoSuchQueue(queue.to_owned()))?;
        q.consumers.push(Slot {
            id,
            tx,
            prefetch: usize::from(prefetch),
            unacked: BTreeMap::new(),
        });
        dispatch(&self.inner, &mut inner, queue);
        let guard = ConsumerGuard {
            inner: Arc::downgrade(&self.inner),
            queue: queue.to_owned(),
            id,
        };
        Ok(Consumer::new(rx, Some(Box::new(guard))))
    }
}
