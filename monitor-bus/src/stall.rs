//! Stall detection for consumers: every [`Consumer`](crate::Consumer) keeps a [`Progress`] record
//! (deliveries handed out and not yet settled, when it last moved), and [`StallWatch`] is the one
//! helper the services' consume loops share to notice a consumer that has work pending but makes
//! no progress, log it, count it and tell the loop to restart the consumer.
//!
//! A restart means: drop the [`Consumer`](crate::Consumer) (its unsettled deliveries go back to the
//! queue, marked `redelivered`) and consume again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::warn;

use crate::{Acker, BusError, Consumer, Delivery};

/// How a consumer moves: deliveries handed out and not settled, and when it last moved (a
/// delivery handed out or settled).
#[derive(Debug)]
pub(crate) struct Progress {
    outstanding: AtomicUsize,
    settled_total: AtomicU64,
    last: Mutex<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            outstanding: AtomicUsize::new(0),
            settled_total: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Progress {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub(crate) fn handed_out(&self) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.touch();
    }

    fn settled(&self) {
        // Saturating: a settle can never make the count wrap.
        let _ = self
            .outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.settled_total.fetch_add(1, Ordering::SeqCst);
        self.touch();
    }

    /// Deliveries settled (acked or nacked, successfully or not) since the consumer started.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn settled_total(&self) -> u64 {
        self.settled_total.load(Ordering::SeqCst)
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    pub(crate) fn idle_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// Wraps a delivery's acker so that settling it counts as progress.
pub(crate) struct TrackedAcker {
    pub(crate) inner: Box<dyn Acker>,
    pub(crate) progress: Arc<Progress>,
}

#[async_trait]
impl Acker for TrackedAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        let r = self.inner.ack().await;
        self.progress.settled();
        r
    }
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        let r = self.inner.nack(requeue).await;
        self.progress.settled();
        r
    }
}

/// What [`StallWatch::next`] returns.
#[derive(Debug)]
pub enum Watched {
    /// The next delivery.
    Delivery(Delivery),
    /// The consumer ended (queue deleted, bus closed): consume again or stop.
    Ended,
    /// The consumer had deliveries pending and made no progress for the watch's bound: it was
    /// logged and counted; drop it and consume again.
    Stalled,
}

/// Notices consumers that stall: one per consume loop (cheap to clone; clones share the counter).
///
/// A consumer is stalled when it has deliveries pending (handed out and never settled, or waiting
/// in it) and has made no progress (no delivery handed out or settled) for `after`; the handling
/// of one delivery is stalled when it takes longer than `after` ([`StallWatch::bound`]). Either is
/// logged once (`WARN consumer stalled; restarting it`) and counted ([`StallWatch::stalls`]).
#[derive(Debug, Clone)]
pub struct StallWatch {
    queue: String,
    after: Duration,
    stalls: Arc<AtomicU64>,
}

impl StallWatch {
    /// A watch of the consumer(s) of `queue` with the bound `after` (at least 1 ms).
    pub fn new(queue: impl Into<String>, after: Duration) -> Self {
        StallWatch {
            queue: queue.into(),
            after: after.max(Duration::from_millis(1)),
            stalls: Arc::default(),
        }
    }

    /// The same watch counting into `counter` (to share one counter between watches or expose it).
    pub fn with_counter(mut self, counter: Arc<AtomicU64>) -> Self {
        self.stalls = counter;
        self
    }

    /// How many stalls this watch detected.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::SeqCst)
    }

    /// The counter (shared with clones).
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.stalls)
    }

    /// The bound.
    pub fn after(&self) -> Duration {
        self.after
    }

    fn record(&self, what: &str, pending: usize) {
        let total = self.stalls.fetch_add(1, Ordering::SeqCst) + 1;
        warn!(queue = %self.queue, what, pending, bound = ?self.after, stalls_total = total,
            "consumer stalled; restarting it");
    }

    /// The next delivery of `consumer`, or [`Watched::Stalled`] once it is stalled.
    pub async fn next(&self, consumer: &mut Consumer) -> Watched {
        let check = (self.after / 4).max(Duration::from_millis(1));
        loop {
            // `Consumer::next` is cancel-safe (a channel receive), so racing it loses nothing.
            match tokio::time::timeout(check, consumer.next()).await {
                Ok(Some(d)) => return Watched::Delivery(d),
                Ok(None) => return Watched::Ended,
                Err(_) => {
                    if consumer.stalled(self.after) {
                        self.record("no progress with deliveries pending", consumer.pending());
                        return Watched::Stalled;
                    }
                }
            }
        }
    }

    /// Run the handling of one delivery (`work`) within the bound: `None` (logged, counted) when it
    /// took longer; the caller then restarts the consumer (the delivery, if unsettled, comes back).
    pub async fn bound<F: Future>(&self, work: F) -> Option<F::Output> {
        match tokio::time::timeout(self.after, work).await {
            Ok(out) => Some(out),
            Err(_) => {
                self.record("handling a delivery took longer than the bound", 1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{declare_bound_queue, Bus, MemoryBus};

    /// A delivery taken and never settled holds the consumer (prefetch 1): the watch reports the
    /// stall once, counts it, and a new consumer gets the message again.
    #[tokio::test(start_paused = true)]
    async fn a_held_delivery_is_a_stall_and_a_restart_redelivers_it() {
        let bus = MemoryBus::new();
        declare_bound_queue(&bus, "q", "x", &["#"]).await.unwrap();
        let watch = StallWatch::new("q", Duration::from_secs(5));
        let mut consumer = bus.consume("q", 1).await.unwrap();
        bus.publish("x", "a", "one".into()).await.unwrap();
        bus.publish("x", "a", "two".into()).await.unwrap();
        let Watched::Delivery(held) = watch.next(&mut consumer).await else {
            panic!("expected a delivery");
        };
        assert_eq!(consumer.pending(), 1);
        assert!(matches!(watch.next(&mut consumer).await, Watched::Stalled));
        assert_eq!(watch.stalls(), 1);
        drop(held);
        drop(consumer);
        let mut consumer = bus.consume("q", 1).await.unwrap();
        let Watched::Delivery(again) = watch.next(&mut consumer).await else {
            panic!("expected the redelivery");
        };
        assert_eq!(&again.body[..], b"one");
        assert!(again.redelivered);
        again.ack().await.unwrap();
        let Watched::Delivery(two) = watch.next(&mut consumer).await else {
            panic!("expected the second message");
        };
        two.ack().await.unwrap();
        assert_eq!(consumer.pending(), 0);
        assert_eq!(watch.stalls(), 1);
    }

    /// An idle consumer is not stalled; slow work past the bound is.
    #[tokio::test(start_paused = true)]
    async fn idle_is_no_stall_and_slow_work_is() {
        let bus = MemoryBus::new();
        declare_bound_queue(&bus, "q", "x", &["#"]).await.unwrap();
        let watch = StallWatch::new("q", Duration::from_secs(5));
        let mut consumer = bus.consume("q", 0).await.unwrap();
        let idle = tokio::time::timeout(Duration::from_secs(60), watch.next(&mut consumer)).await;
        assert!(idle.is_err(), "an idle consumer waits");
        assert_eq!(watch.stalls(), 0);
        assert_eq!(watch.bound(async { 7 }).await, Some(7));
        let slow = watch
            .bound(tokio::time::sleep(Duration::from_secs(6)))
            .await;
        assert!(slow.is_none());
        assert_eq!(watch.stalls(), 1);
    }
}
