//! Where rounds publish: a bus (in-memory, or RabbitMQ in a private vhost) whose `raw_data` and
//! `health_check` messages are consumed by drain tasks that ack and count them, as the data
//! transformers and the health checker would.

use std::sync::Arc;

use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings};
use monitor_bus::{Bus, MemoryBus};
use monitor_core::keys::{HEALTH_CHECK_EXCHANGE, RAW_DATA_EXCHANGE};
use monitor_core::Publication;
use tokio::task::JoinSet;

use super::record::Recorder;
use super::BenchError;

/// Queue the raw-data drain consumes.
pub(crate) const RAW_QUEUE: &str = "bench_raw_data";
/// Queue the heartbeat drain consumes.
pub(crate) const HEARTBEAT_QUEUE: &str = "bench_heartbeats";

/// A bus with its drains.
pub(crate) struct Sink {
    /// The bus rounds publish to.
    pub(crate) bus: Arc<dyn Bus>,
    drains: JoinSet<()>,
    amqp: Option<Arc<AmqpBus>>,
}

impl Sink {
    /// The in-memory bus, or RabbitMQ at `amqp_url`; declares the exchanges and drain queues and
    /// starts the drains (which count into `recorder`).
    pub(crate) async fn open(
        amqp_url: Option<&str>,
        recorder: Arc<Recorder>,
    ) -> Result<Sink, BenchError> {
        let (bus, amqp): (Arc<dyn Bus>, Option<Arc<AmqpBus>>) = match amqp_url {
            None => (Arc::new(MemoryBus::new()), None),
            Some(url) => {
                let mut settings = AmqpSettings::new(url);
                settings.connection_name = format!("panic-bench-{}", std::process::id());
                let bus = Arc::new(AmqpBus::connect(settings).await?);
                (Arc::clone(&bus) as Arc<dyn Bus>, Some(bus))
            }
        };
        declare_bound_queue(&*bus, RAW_QUEUE, RAW_DATA_EXCHANGE, &["#"]).await?;
        declare_bound_queue(&*bus, HEARTBEAT_QUEUE, HEALTH_CHECK_EXCHANGE, &["#"]).await?;
        let mut drains = JoinSet::new();
        for (queue, heartbeat) in [(RAW_QUEUE, false), (HEARTBEAT_QUEUE, true)] {
            let mut consumer = bus.consume(queue, 2000).await?;
            let recorder = Arc::clone(&recorder);
            drains.spawn(async move {
                while let Some(delivery) = consumer.next().await {
                    recorder.received(heartbeat);
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(queue, error = %e, "ack failed");
                    }
                }
            });
        }
        Ok(Sink { bus, drains, amqp })
    }

    /// Stop the drains and delete the drain queues; closes the RabbitMQ connection.
    pub(crate) async fn close(mut self) {
        for queue in [RAW_QUEUE, HEARTBEAT_QUEUE] {
            if let Err(e) = self.bus.delete_queue(queue).await {
                tracing::debug!(queue, error = %e, "deleting a drain queue failed");
            }
        }
        self.drains.abort_all();
        while self.drains.join_next().await.is_some() {}
        if let Some(amqp) = self.amqp {
            amqp.close().await;
        }
    }
}

/// Publish a round's publications to `raw_data`, in order; counts failures.
pub(crate) async fn publish_round(
    bus: &dyn Bus,
    publications: &[Publication],
    recorder: &Recorder,
) {
    for p in publications {
        if let Err(e) =
            monitor_bus::publish_json(bus, RAW_DATA_EXCHANGE, p.routing_key.as_str(), &p.body).await
        {
            recorder
                .publish_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "publish failed");
            return;
        }
    }
}
