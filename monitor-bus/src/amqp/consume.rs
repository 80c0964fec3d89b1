//! Consumers: one task per [`Consumer`] owning a channel with a prefetch limit and manual acks,
//! resubscribing on every new link.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use std::sync::atomic::Ordering;

use tokio::time::{Instant, MissedTickBehavior};

use super::connection::{lock, Link, Shared, STATUS_POLL};
use super::topology::is_not_found;
use crate::stall::Progress;
use crate::{Acker, BusError, Delivery};

pub(super) struct AmqpAcker {
    pub(super) acker: lapin::Acker,
    /// Bound of the ack (an ack whose frame is never written must not hold its caller forever).
    pub(super) timeout: std::time::Duration,
}

impl AmqpAcker {
    pub(super) fn settled(r: lapin::Result<bool>) -> Result<(), BusError> {
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(BusError::AckFailed(
                "the delivery's channel is closed (it will be redelivered)".to_owned(),
            )),
            Err(e) => Err(BusError::AckFailed(e.to_string())),
        }
    }

    async fn bounded(
        &self,
        settle: impl std::future::Future<Output = lapin::Result<bool>>,
    ) -> Result<(), BusError> {
        if self.acker.poisoned() {
            return Err(BusError::AckFailed(
                "the delivery's channel is closed (it will be redelivered)".to_owned(),
            ));
        }
        match tokio::time::timeout(self.timeout, settle).await {
            Ok(r) => Self::settled(r),
            Err(_) => Err(BusError::AckFailed(
                "timed out (the delivery comes back when its channel goes)".to_owned(),
            )),
        }
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.bounded(self.acker.ack(BasicAckOptions::default()))
            .await
    }
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        self.bounded(self.acker.nack(BasicNackOptions {
            multiple: false,
            requeue,
        }))
        .await
    }
}

pub(super) struct ConsumerTask {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) queue: String,
    pub(super) prefetch: u16,
    /// A stream (log queue) read from its first offset (on every subscription).
    pub(super) from_start: bool,
    pub(super) tx: mpsc::UnboundedSender<Delivery>,
    pub(super) cancel: CancellationToken,
    /// The progress of the [`crate::Consumer`] this task feeds (settled deliveries).
    pub(super) progress: Arc<Progress>,
}

/// Why a subscription's loop ended.
enum End {
    /// Cancelled, or the [`crate::Consumer`] was dropped.
    ByUs,
    /// The stream ended or its link died: resubscribe.
    Lost,
    /// Found stuck by the probe: close the channel and resubscribe on the same link.
    Stuck,
}

pub(super) type Subscription = (Arc<Link>, Channel, lapin::Consumer);

impl ConsumerTask {
    pub(super) async fn open(&self, link: &Link) -> lapin::Result<(Channel, lapin::Consumer)> {
        let ch = link.conn.create_channel().await?;
        if self.prefetch > 0 {
            ch.basic_qos(self.prefetch, BasicQosOptions::default())
                .await?;
        }
        let tag = format!(
            "{}.{}.{}",
            self.shared.settings.connection_name, self.id, link.generation
        );
        let mut args = FieldTable::default();
        if self.from_start {
            args.insert(
                "x-stream-offset".into(),
                lapin::types::AMQPValue::LongString("first".into()),
            );
        }
        let consumer = ch
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await?;
        Ok((ch, consumer))
    }

    /// Subscribe on the first live link from generation `min_gen`, retrying across outages.
    pub(super) async fn subscribe(&self, mut min_gen: u64) -> Result<Subscription, BusError> {
        loop {
            let Some(link) = self
                .cancel
                .run_until_cancelled(self.shared.wait_link(min_gen))
                .await
            else {
                return Err(BusError::Closed);
            };
            let link = link?;
            // Bounded and cut short by shutdown: a subscription the broker never answers must
            // neither hold this consumer nor keep the bus from closing.
            let Some(opened) = self
                .cancel
                .run_until_cancelled(tokio::time::timeout(
                    self.shared.settings.operation_timeout,
                    self.open(&link),
                ))
                .await
            else {
                return Err(BusError::Closed);
            };
            let Ok(opened) = opened else {
                warn!(queue = %self.queue, "subscribing timed out; retrying");
                if link.alive() {
                    // Do not spin on a live link that does not answer.
                    let pause = tokio::time::sleep(self.shared.settings.min_backoff);
                    if self.cancel.run_until_cancelled(pause).await.is_none() {
                        return Err(BusError::Closed);
                    }
                    min_gen = link.generation;
                } else {
                    min_gen = link.generation + 1;
                }
                continue;
            };
            match opened {
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

    /// Whether the subscription on `link` is stuck: its queue has messages ready and its prefetch
    /// window room, yet nothing came for `consumer_stall_after` (`sent` deliveries so far).
    async fn stuck(&self, link: &Link, sent: u64) -> bool {
        let in_flight = sent.saturating_sub(self.progress.settled_total());
        if self.from_start {
            // A stream's ready count is its length: the probe means nothing there.
            return false;
        }
        if self.prefetch > 0 && in_flight >= u64::from(self.prefetch) {
            // The window is full of deliveries the application holds: its stall, not ours.
            return false;
        }
        matches!(self.shared.ready_count(link, &self.queue).await, Some(n) if n > 0)
    }

    pub(super) async fn run(self, first: Subscription) {
        let stall_after = self.shared.settings.consumer_stall_after;
        let mut sub = first;
        // Deliveries sent to the Consumer (compared with those settled for the probe).
        let mut sent: u64 = 0;
        loop {
            let (link, ch, mut stream) = sub;
            let mut alive_check = tokio::time::interval(STATUS_POLL);
            alive_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last_delivery = Instant::now();
            let end = loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => break End::ByUs,
                    () = self.tx.closed() => break End::ByUs,
                    _ = alive_check.tick() => {
                        // lapin's stream may not end when the connection dies under it.
                        if !link.alive() || !ch.status().connected() {
                            break End::Lost;
                        }
                        if last_delivery.elapsed() >= stall_after {
                            last_delivery = Instant::now();
                            let probe = self.stuck(&link, sent);
                            match self.cancel.run_until_cancelled(probe).await {
                                None => break End::ByUs,
                                Some(true) => break End::Stuck,
                                Some(false) => {}
                            }
                        }
                    }
                    item = stream.next() => match item {
                        Some(Ok(d)) => {
                            last_delivery = Instant::now();
                            let delivery = Delivery::new(
                                d.exchange.to_string(),
                                d.routing_key.to_string(),
                                Bytes::from(d.data),
                                d.redelivered,
                                Box::new(AmqpAcker {
                                    acker: d.acker,
                                    timeout: self.shared.settings.operation_timeout,
                                }),
                            );
                            if self.tx.send(delivery).is_err() {
                                break End::ByUs;
                            }
                            sent += 1;
                        }
                        Some(Err(e)) => debug!(queue = %self.queue, error = %e, "consumer error"),
                        None => break End::Lost,
                    },
                }
            };
            if !matches!(end, End::Lost) && ch.status().connected() {
                // Closing hands the channel's unacked deliveries back to the queue.
                let close = ch.close(200, "OK".into());
                let _ = tokio::time::timeout(self.shared.settings.operation_timeout, close).await;
            }
            let min_gen = match end {
                End::ByUs => break,
                End::Stuck => {
                    let total = self.shared.consumer_restarts.fetch_add(1, Ordering::SeqCst) + 1;
                    warn!(queue = %self.queue, ?stall_after, restarts_total = total,
                        "consumer stalled: messages ready, none delivered; resubscribing");
                    link.generation
                }
                // The subscription ended: connection lost, or cancelled by the broker (queue
                // deleted).
                End::Lost if link.alive() => {
                    // Give the broker a moment (and avoid spinning), then try again on this
                    // connection; a deleted queue ends the consumer with NOT_FOUND.
                    let pause = tokio::time::sleep(self.shared.settings.min_backoff);
                    if self.cancel.run_until_cancelled(pause).await.is_none() {
                        break;
                    }
                    link.generation
                }
                End::Lost => link.generation + 1,
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
