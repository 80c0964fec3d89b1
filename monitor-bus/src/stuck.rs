//! A test double (feature `testing`): a [`MemoryBus`] whose declarations and/or publishes never
//! complete, as an [`AmqpBus`](super::AmqpBus)'s calls wait while the broker is away. Services use
//! it to prove that shutdown never waits for an absent broker.

use async_trait::async_trait;
use bytes::Bytes;

use super::{Bus, BusError, Consumer, MemoryBus};

/// Which publishes hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StuckPublishes {
    /// None: publishes go through.
    None,
    /// Every publish.
    All,
    /// Publishes to this exchange.
    To(String),
}

/// A [`MemoryBus`] with stuck calls.
#[derive(Debug, Clone)]
pub struct StuckBus {
    /// The bus that does the work when a call is not stuck.
    pub inner: MemoryBus,
    /// Exchange and queue declarations never complete.
    pub stuck_declarations: bool,
    /// Which publishes never complete.
    pub stuck_publishes: StuckPublishes,
}

impl StuckBus {
    /// A bus over `inner` with nothing stuck yet.
    pub fn new(inner: MemoryBus) -> Self {
        StuckBus {
            inner,
            stuck_declarations: false,
            stuck_publishes: StuckPublishes::None,
        }
    }

    /// Declarations hang (or not).
    pub fn with_stuck_declarations(mut self, stuck: bool) -> Self {
        self.stuck_declarations = stuck;
        self
    }

    /// These publishes hang.
    pub fn with_stuck_publishes(mut self, stuck: StuckPublishes) -> Self {
        self.stuck_publishes = stuck;
        self
    }

    async fn maybe_hang_declaration(&self) {
        if self.stuck_declarations {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Bus for StuckBus {
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.maybe_hang_declaration().await;
        self.inner.declare_exchange(exchange).await
    }

    async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        self.maybe_hang_declaration().await;
        self.inner.declare_queue(queue).await
    }

    async fn bind_queue(&self, queue: &str, exchange: &str, key: &str) -> Result<(), BusError> {
        self.inner.bind_queue(queue, exchange, key).await
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        self.inner.delete_queue(queue).await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        let stuck = match &self.stuck_publishes {
            StuckPublishes::None => false,
            StuckPublishes::All => true,
            StuckPublishes::To(e) => e == exchange,
        };
        if stuck {
            std::future::pending::<()>().await;
        }
        self.inner.publish(exchange, routing_key, body).await
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.inner.consume(queue, prefetch).await
    }

    async fn declare_log_queue(
        &self,
        queue: &str,
        retention: crate::LogRetention,
    ) -> Result<(), BusError> {
        self.maybe_hang_declaration().await;
        self.inner.declare_log_queue(queue, retention).await
    }

    async fn consume_log(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.inner.consume_log(queue, prefetch).await
    }
}
