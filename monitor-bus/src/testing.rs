//! Test support for the tests of every crate that talks to the machine's RabbitMQ (feature
//! `testing`): one [`Vhost`] per test, created with guest's permissions and deleted when dropped
//! (also when the test fails), so that force-closing "all connections" or revoking permissions
//! touches only that test; [`rabbitmqctl`] to drive the broker; and a TCP [`Proxy`] to it that
//! passes, blackholes or refuses connections, for outage tests. It panics on a broker that is
//! not there: it is for tests only.

#![allow(clippy::disallowed_methods)] // test support: reads RABBITMQCTL, runs rabbitmqctl off the runtime

use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{AmqpBus, AmqpSettings};

mod proxy;
pub mod tls;
pub use proxy::{Proxy, ProxyMode};

/// The `rabbitmqctl` the tests use: `RABBITMQCTL`, else Debian's path.
fn rabbitmqctl_bin() -> String {
    std::env::var("RABBITMQCTL").unwrap_or_else(|_| "/usr/sbin/rabbitmqctl".to_owned())
}

/// Runs `rabbitmqctl` with `args` and returns its output, whatever its exit status.
pub fn rabbitmqctl_output(args: &[&str]) -> Output {
    let bin = rabbitmqctl_bin();
    std::process::Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("running {bin} {args:?} (scripts/ensure-services.sh installs it): {e}")
        })
}

/// Runs `rabbitmqctl` with `args`, failing the test with its output unless it succeeds; its stdout.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = rabbitmqctl_output(args);
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`rabbitmqctl`] off the async runtime (it takes a second or more).
pub async fn rabbitmqctl_async(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rabbitmqctl(&args)
    })
    .await
    .unwrap_or_else(|e| panic!("rabbitmqctl task: {e}"))
}

/// A suffix unique to this process and call, for vhost, exchange and queue names.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:08x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A RabbitMQ vhost for one test on the local broker, deleted when dropped.
#[derive(Debug)]
pub struct Vhost {
    name: String,
}

impl Vhost {
    /// Create `<prefix>-<unique>` and give guest every permission on it.
    pub fn create(prefix: &str) -> Vhost {
        let vhost = Vhost {
            name: format!("{prefix}-{}", unique()),
        };
        rabbitmqctl(&["add_vhost", &vhost.name]);
        vhost.allow();
        vhost
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its AMQP URL on the local broker (names are URL-safe).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Give guest every permission (again).
    pub fn allow(&self) {
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
    }

    /// A RabbitMQ bus on this vhost with short reconnection backoffs (100 ms to `max_backoff`).
    pub async fn bus_with(&self, connection_name: &str, max_backoff: Duration) -> AmqpBus {
        AmqpBus::connect(AmqpSettings {
            url: self.url(),
            min_backoff: Duration::from_millis(100),
            max_backoff,
            connection_name: connection_name.to_owned(),
            ..AmqpSettings::default()
        })
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ must run on 127.0.0.1:5672 (DEVELOPERS.md): {e}"))
    }

    /// [`Vhost::bus_with`] a backoff capped at 2 s.
    pub async fn bus(&self, connection_name: &str) -> AmqpBus {
        self.bus_with(connection_name, Duration::from_secs(2)).await
    }

    /// Force-close every client connection of this vhost (and only this vhost).
    pub async fn close_connections(&self) -> String {
        rabbitmqctl_async(&["close_all_connections", "-p", &self.name, "fault test"]).await
    }

    /// The broker refuses this vhost (guest loses its permissions, its connections are closed,
    /// reconnections fail) until [`Vhost::up`].
    pub async fn down(&self) {
        rabbitmqctl_async(&["clear_permissions", "-p", &self.name, "guest"]).await;
        self.close_connections().await;
    }

    /// Undo [`Vhost::down`].
    pub async fn up(&self) {
        rabbitmqctl_async(&[
            "set_permissions",
            "-p",
            &self.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ])
        .await;
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl_output(&["delete_vhost", &self.name]);
    }
}
