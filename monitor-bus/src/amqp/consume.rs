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

use super::connection::{lock, Link, Shared};
use super::topology::is_not_found;
use crate::{Acker, BusError, Delivery};

pub(super) struct AmqpAcker {
    pub(super) acker: lapin::Acker,
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

pub(super) struct ConsumerTask {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) queue: String,
    pub(super) prefetch: u16,
    pub(super) tx: mpsc::UnboundedSender<Delivery>,
    pub(super) cancel: CancellationToken,
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

    pub(super) async fn run(self, first: Subscription) {
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
                let pause = tokio::time::sleep(self.shared.settings.min_backoff);
                if self.cancel.run_until_cancelled(pause).await.is_none() {
                    break;
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
