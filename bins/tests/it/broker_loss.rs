//! SIGTERM while the broker is unreachable: each service was connected, then the broker closed its
//! connection and refuses it back (the test's vhost loses guest's permissions); the service retries
//! and, on SIGTERM, still exits cleanly within its grace period (the deadline below only avoids a
//! hang, it is not a timing assertion).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{rabbitmqctl_ok as rabbitmqctl, sigterm, unique, write_systems};
use crate::common::{TempDir, Vhost, REDIS_URL};

/// Wait until the vhost has `n` connections.
fn wait_connections(vhost: &str, n: usize) {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let out = rabbitmqctl(&[
            "list_connections",
            "-q",
            "--no-table-headers",
            "-p",
            vhost,
            "pid",
        ]);
        if out.lines().filter(|l| !l.trim().is_empty()).count() >= n {
            return;
        }
        assert!(Instant::now() < give_up, "{n} connections never came");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_while_the_broker_is_unreachable_exits_cleanly() {
    let vhost = Vhost::create("panic-bins");
    let amqp = vhost.url();
    let ns = format!("panic-broker-loss-{}:", unique());
    let cfg = TempDir::new("panic-broker-loss");
    // A system on a closed port: its monitor publishes error envelopes every second, so the manager
    // has publishes waiting when the broker goes away.
    write_systems(
        &cfg.0.join("general/systems_config.ini"),
        &[("s1", "dead", "http://127.0.0.1:1/metrics")],
    );
    let spawn = |bin: &str, args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env_remove("AMQP_URL")
            .env("SYSTEM_MONITOR_PERIOD_SECONDS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}"))
    };
    let mut children = vec![
        (
            "monitors-manager",
            spawn(
                env!("CARGO_BIN_EXE_monitors-manager"),
                &["--amqp-url", &amqp],
            ),
        ),
        (
            "monitorables-store",
            spawn(
                env!("CARGO_BIN_EXE_monitorables-store"),
                &[
                    "--amqp-url",
                    &amqp,
                    "--redis-url",
                    REDIS_URL,
                    "--namespace",
                    &ns,
                ],
            ),
        ),
        (
            "health-checker",
            spawn(
                env!("CARGO_BIN_EXE_health-checker"),
                &[
                    "--amqp-url",
                    &amqp,
                    "--redis-url",
                    REDIS_URL,
                    "--namespace",
                    &ns,
                    "--ping-interval",
                    "1s",
                ],
            ),
        ),
    ];
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_panic-config"))
        .args(["--amqp-url", &amqp, "--config-dir", cfg.0.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    wait_connections(vhost.name(), 3);
    std::thread::sleep(Duration::from_secs(2));

    // The broker goes away for these services: connections closed, reconnections refused.
    rabbitmqctl(&["clear_permissions", "-p", vhost.name(), "guest"]);
    rabbitmqctl(&[
        "close_all_connections",
        "-p",
        vhost.name(),
        "broker-loss test",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    for (name, child) in &mut children {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name} exited on broker loss"
        );
        sigterm(child.id());
    }
    for (name, mut child) in children {
        let give_up = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{name} did not stop on SIGTERM while the broker is unreachable:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(status.success(), "{name}: {status:?}\n{err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    // Clean the Redis namespace (the vhost is deleted by its guard).
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query(&mut conn).unwrap();
    }
}
