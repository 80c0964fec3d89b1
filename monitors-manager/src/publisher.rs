//! The manager's outbox and publisher: rounds hand their publications here and never wait for the
//! broker.
//!
//! * **Outbox.** A FIFO of *batches* (one per round: its raw-data publications in order, then the
//!   worker heartbeat), bounded in bytes ([`ManagerSettings::outbox_bytes`](crate::ManagerSettings::outbox_bytes);
//!   a batch weighs its bodies and routing keys plus a fixed per-message overhead). Pushing is
//!   synchronous: when a batch does not fit, the *oldest* batches are dropped until it does (a
//!   batch larger than the whole bound is dropped itself); every dropped message and byte is
//!   counted ([`ManagerStatus::outbox_dropped`](crate::ManagerStatus::outbox_dropped)) and logged,
//!   rate-limited. Batches being published still weigh in the bound.
//! * **Publisher.** One task owned by the manager drains the outbox in order into
//!   [`Bus::publish`], up to `MAX_BATCHES_IN_FLIGHT` (1,024) batches at once (the AMQP bus pipelines
//!   them) but never two batches of one monitor at once, so each monitor's messages keep their
//!   order. Within a batch: data in order, then the heartbeat; an unroutable message is not an
//!   error; any other failure skips the rest of the batch, heartbeat included.
//! * **Shutdown.** The manager first lets rounds in flight finish (they push here), then asks the
//!   publisher to flush; at the end of the grace period it stops it: batches in flight are
//!   aborted, and whatever was not published is counted
//!   ([`ManagerStatus::outbox_lost_at_shutdown`](crate::ManagerStatus::outbox_lost_at_shutdown))
//!   and logged.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use monitor_bus::{Bus, BusError};
use monitor_core::keys::RAW_DATA_EXCHANGE;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::liveness::TaskKey;
use crate::status::Counters;
use monitor_bus::ratelimit::LogLimiter;
use monitor_bus::warn_limited;

/// Batches published at once (each batch's messages one after another; at most one batch per
/// monitor). A confirm of a persistent message takes milliseconds (the broker syncs to disk in
/// batches), so throughput needs many publishes in flight: at 64, 500 monitors at a 1 s period
/// already outran the publisher.
pub(crate) const MAX_BATCHES_IN_FLIGHT: usize = 1024;
/// What one queued message weighs beyond its body and routing key (bookkeeping, buffers).
pub(crate) const MESSAGE_OVERHEAD_BYTES: usize = 64;
/// What a worker heartbeat weighs beyond its component name (its JSON and bookkeeping).
pub(crate) const HEARTBEAT_BYTES: usize = 128;

/// One round's publications: data in order, then the worker heartbeat of `component_name`.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) key: TaskKey,
    pub(crate) component_name: Arc<str>,
    pub(crate) data: Vec<(&'static str, Bytes)>,
    bytes: usize,
}

impl Batch {
    /// A batch of `data` followed by `component_name`'s worker heartbeat.
    pub(crate) fn new(
        key: TaskKey,
        component_name: Arc<str>,
        data: Vec<(&'static str, Bytes)>,
    ) -> Self {
        let bytes = data
            .iter()
            .map(|(rk, body)| rk.len() + body.len() + MESSAGE_OVERHEAD_BYTES)
            .sum::<usize>()
            + component_name.len()
            + HEARTBEAT_BYTES;
        Batch {
            key,
            component_name,
            data,
            bytes,
        }
    }

    /// Messages in the batch (data and the heartbeat).
    fn messages(&self) -> u64 {
        self.data.len() as u64 + 1
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Batch>,
}

/// The byte-bounded FIFO between rounds and the publisher.
#[derive(Debug)]
pub(crate) struct Outbox {
    max_bytes: usize,
    inner: Mutex<Inner>,
    notify: Notify,
    /// Bytes queued or being published.
    bytes: AtomicU64,
    /// Messages queued or being published.
    messages: AtomicU64,
    dropped: AtomicU64,
    dropped_bytes: AtomicU64,
    lost_at_shutdown: AtomicU64,
    limiter: LogLimiter,
}

/// What the outbox holds and lost, for the status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutboxCounts {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) dropped: u64,
    pub(crate) dropped_bytes: u64,
    pub(crate) lost_at_shutdown: u64,
}

impl Outbox {
    /// An empty outbox of at most `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Outbox {
            max_bytes,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            bytes: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
            lost_at_shutdown: AtomicU64::new(0),
            limiter: LogLimiter::per_minute(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn counts(&self) -> OutboxCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OutboxCounts {
            messages: get(&self.messages),
            bytes: get(&self.bytes),
            dropped: get(&self.dropped),
            dropped_bytes: get(&self.dropped_bytes),
            lost_at_shutdown: get(&self.lost_at_shutdown),
        }
    }

    /// Queue a batch (never waits); drop the oldest batches if it does not fit.
    pub(crate) fn push(&self, batch: Batch) {
        let mut dropped_messages = 0u64;
        let mut dropped_bytes = 0u64;
        {
            let mut inner = self.lock();
            self.bytes.fetch_add(batch.bytes as u64, Ordering::Relaxed);
            self.messages.fetch_add(batch.messages(), Ordering::Relaxed);
            inner.queue.push_back(batch);
            while self.bytes.load(Ordering::Relaxed) > self.max_bytes as u64 {
                let Some(old) = inner.queue.pop_front() else {
                    break; // only batches in flight are left: they are on their way
                };
                self.release(&old);
                dropped_messages += old.messages();
                dropped_bytes += old.bytes as u64;
            }
        }
        if dropped_messages > 0 {
            let total =
                self.dropped.fetch_add(dropped_messages, Ordering::Relaxed) + dropped_messages;
            self.dropped_bytes
                .fetch_add(dropped_bytes, Ordering::Relaxed);
            warn_limited!(
                self.limiter,
                "outbox full",
                dropped = dropped_messages,
                dropped_total = total,
                max_bytes = self.max_bytes,
                "outbox full (the broker is slow or away): oldest messages dropped"
            );
        }
        self.notify.notify_one();
    }

    fn release(&self, batch: &Batch) {
        self.bytes.fetch_sub(batch.bytes as u64, Ordering::Relaxed);
        self.messages.fetch_sub(batch.messages(), Ordering::Relaxed);
    }

    /// The oldest batch, unless its monitor has a batch in flight (order per monitor).
    fn pop_unless_busy(&self, busy: &HashSet<TaskKey>) -> Option<Batch> {
        let mut inner = self.lock();
        if busy.contains(&inner.queue.front()?.key) {
            return None;
        }
        inner.queue.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Everything still queued, taken out (for the shutdown report).
    fn take_all(&self) -> Vec<Batch> {
        self.lock().queue.drain(..).collect()
    }
}

/// Publish one batch: data in order (unroutable is not an error), then the heartbeat; a failure
/// skips the rest. Each message leaves the outbox's gauges as it is done.
async fn publish_batch(
    bus: Arc<dyn Bus>,
    outbox: Arc<Outbox>,
    counters: Arc<Counters>,
    batch: Batch,
) -> TaskKey {
    let key = batch.key;
    let outcome = async {
        for (routing_key, body) in &batch.data {
            match bus
                .publish(RAW_DATA_EXCHANGE, routing_key, body.clone())
                .await
            {
                Ok(()) => Counters::bump(&counters.publishes_ok),
                Err(BusError::Unroutable { .. }) => {
                    Counters::bump(&counters.publishes_unroutable);
                    warn_limited!(
                        outbox.limiter,
                        routing_key,
                        exchange = RAW_DATA_EXCHANGE,
                        routing_key,
                        "raw data is unroutable: no queue is bound for this routing key; dropped"
                    );
                }
                Err(e) => return Err((*routing_key, e)),
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => match heartbeat::publish_worker_heartbeat(&*bus, &batch.component_name).await {
            Ok(_) => Counters::bump(&counters.worker_heartbeats),
            Err(e) => {
                Counters::bump(&counters.heartbeats_failed);
                warn_limited!(
                    outbox.limiter,
                    "worker heartbeat failed",
                    error = %e,
                    component = %batch.component_name,
                    "publishing the worker heartbeat failed"
                );
            }
        },
        Err((routing_key, e)) => {
            Counters::bump(&counters.publishes_failed);
            warn_limited!(
                outbox.limiter,
                "raw data publish failed",
                routing_key,
                error = %e,
                code = e.to_panic_error().code.code(),
                component = %batch.component_name,
                "publishing raw data failed: rest of the round and heartbeat skipped"
            );
        }
    }
    outbox.release(&batch);
    key
}

/// The publisher task: drain `outbox` into `bus` until `stop`, or until `finish` and the outbox is
/// empty.
pub(crate) async fn run(
    bus: Arc<dyn Bus>,
    outbox: Arc<Outbox>,
    counters: Arc<Counters>,
    finish: CancellationToken,
    stop: CancellationToken,
) {
    let mut in_flight: JoinSet<TaskKey> = JoinSet::new();
    let mut busy: HashSet<TaskKey> = HashSet::new();
    loop {
        while in_flight.len() < MAX_BATCHES_IN_FLIGHT {
            let Some(batch) = outbox.pop_unless_busy(&busy) else {
                break;
            };
            busy.insert(batch.key);
            in_flight.spawn(publish_batch(
                Arc::clone(&bus),
                Arc::clone(&outbox),
                Arc::clone(&counters),
                batch,
            ));
        }
        if finish.is_cancelled() && in_flight.is_empty() && outbox.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok(key) => {
                        busy.remove(&key);
                    }
                    Err(e) => {
                        // A panic in the bus: forget who was busy rather than stall a monitor.
                        tracing::error!(error = %e, "a publish task failed");
                        busy.clear();
                    }
                }
            }
            () = outbox.notify.notified() => {}
            () = finish.cancelled(), if !finish.is_cancelled() => {}
        }
    }
    // Stopped: abort what is in flight and count what was not published (messages of aborted
    // batches count as lost: they may or may not have reached the broker).
    in_flight.shutdown().await;
    drop(outbox.take_all());
    let lost = outbox.messages.swap(0, Ordering::Relaxed);
    outbox.bytes.store(0, Ordering::Relaxed);
    if lost > 0 {
        outbox.lost_at_shutdown.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(
            lost,
            "grace period over: messages still in the outbox were not published"
        );
    }
}
