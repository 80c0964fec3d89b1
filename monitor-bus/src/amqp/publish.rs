//! Publishing: the confirm-mode channel, the FIFO lock that keeps publishes in call order, and the
//! bounded outbox that holds publishes while the broker is away.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation};
use tracing::{debug, warn};

use super::connection::{lock, Link, Shared};
use super::topology::{error_message, is_not_found};
use crate::BusError;

/// How many times one publish is re-sent after its channel was closed by another publish's error.
pub(super) const MAX_FOREIGN_RETRIES: u32 = 3;

impl Shared {
    pub(super) fn enter_outbox(
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
    pub(super) async fn publish_channel(
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

    pub(super) async fn publish(
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
            let Some(mut slot) = self
                .shutdown
                .run_until_cancelled(self.publisher.lock())
                .await
            else {
                return Err(BusError::Closed);
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
pub(super) struct OutboxSlot<'a>(&'a AtomicUsize);

impl Drop for OutboxSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
