//! Helpers shared by the bus test binaries.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

pub use monitor_bus::testing::Vhost;
use monitor_bus::{AmqpBus, AmqpSettings};
use monitor_bus::{Consumer, Delivery};
use rand::Rng;

/// How long a test waits for a delivery that must come before failing (never a hang).
pub const PATIENCE: Duration = Duration::from_secs(20);
/// How long a test watches for a delivery that must not come.
pub const QUIET: Duration = Duration::from_millis(400);

/// The broker the tests use: `PANIC_TEST_AMQP_URL`, else the local RabbitMQ.
pub fn amqp_url() -> String {
    std::env::var("PANIC_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A unique suffix for exchange, queue and vhost names.
pub fn unique() -> String {
    format!("{}-{:08x}", std::process::id(), rand::rng().random::<u32>())
}

/// Log to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A RabbitMQ bus on `url` with short backoffs.
pub async fn amqp_bus_at(url: &str, name: &str) -> AmqpBus {
    init_tracing();
    AmqpBus::connect(AmqpSettings {
        url: url.to_owned(),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        connection_name: name.to_owned(),
        ..AmqpSettings::default()
    })
    .await
    .expect("RabbitMQ must be running on 127.0.0.1:5672 (see DEVELOPERS.md)")
}

/// The next delivery, failing the test if none comes within [`PATIENCE`].
pub async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("no delivery in time")
        .expect("consumer ended")
}

/// Body of a delivery as text.
pub fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.body).into_owned()
}

/// Fails if a delivery arrives within [`QUIET`].
pub async fn assert_quiet(consumer: &mut Consumer, what: &str) {
    if let Ok(got) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("{what}: unexpected delivery {got:?}");
    }
}
