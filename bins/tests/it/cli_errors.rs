//! Bad flags and environment values of every binary: a non-zero exit at once with a message naming
//! the flag or variable, never a panic or an endless retry. A well-formed URL of an unreachable
//! broker is retried (with logs) until SIGTERM, which the binary obeys.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::sigterm;

/// Run a binary with a deadline (killed past it, which fails the test: it hung).
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("AMQP_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > give_up {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{bin} {args:?} {env:?} hung: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_fails_naming(out: &Output, name: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(err.contains(name), "the message must name {name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

const MANAGER: &str = env!("CARGO_BIN_EXE_monitors-manager");
const STORE: &str = env!("CARGO_BIN_EXE_monitorables-store");
const CHECKER: &str = env!("CARGO_BIN_EXE_health-checker");
const CONFIG: &str = env!("CARGO_BIN_EXE_panic-config");
const REDIS: &str = "redis://127.0.0.1:6379";

#[test]
fn garbage_amqp_urls_are_errors_at_once() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    for url in ["garbage", "::::", "http://[::1", "ftp://host/", ""] {
        let out = run(MANAGER, &["--amqp-url", url], &[]);
        assert_fails_naming(&out, "AMQP_URL");
        let out = run(MANAGER, &[], &[("AMQP_URL", url)]);
        if !url.is_empty() {
            assert_fails_naming(&out, "AMQP_URL");
        } else {
            assert_ne!(out.status.code(), Some(0), "{out:?}");
        }
        let out = run(STORE, &["--redis-url", REDIS, "--amqp-url", url], &[]);
        assert_fails_naming(&out, "AMQP_URL");
        let out = run(CHECKER, &["--redis-url", REDIS, "--amqp-url", url], &[]);
        assert_fails_naming(&out, "AMQP_URL");
        let out = run(CONFIG, &["--config-dir", dir, "--amqp-url", url], &[]);
        assert_fails_naming(&out, "AMQP_URL");
    }
}

#[test]
fn garbage_redis_urls_and_durations_are_errors_at_once() {
    let amqp = "amqp://guest:guest@127.0.0.1:1/";
    let out = run(
        CHECKER,
        &["--amqp-url", amqp, "--redis-url", "notaurl"],
        &[],
    );
    assert_fails_naming(&out, "redis");
    let out = run(STORE, &["--amqp-url", amqp, "--redis-url", "notaurl"], &[]);
    assert_fails_naming(&out, "redis");
    for bad in ["-5", "0", "soon", "1y", "NaN"] {
        let flag = format!("--ping-interval={bad}");
        let out = run(
            CHECKER,
            &["--amqp-url", amqp, "--redis-url", REDIS, &flag],
            &[],
        );
        assert_fails_naming(&out, "ping-interval");
    }
    for bad in ["-1", "0", "soon"] {
        let out = run(
            MANAGER,
            &["--amqp-url", amqp],
            &[("SYSTEM_MONITOR_PERIOD_SECONDS", bad)],
        );
        assert_fails_naming(&out, "SYSTEM_MONITOR_PERIOD_SECONDS");
    }
}

/// An unreachable broker (well-formed URL) is retried with logs; SIGTERM stops the binary cleanly.
#[test]
fn unreachable_broker_is_retried_until_sigterm() {
    for (bin, args) in [
        (
            MANAGER,
            vec!["--amqp-url", "amqp://guest:guest@127.0.0.1:1/"],
        ),
        (
            CHECKER,
            vec!["--amqp-url", "amqp://127.0.0.1:1/", "--redis-url", REDIS],
        ),
        (
            STORE,
            vec!["--amqp-url", "amqp://127.0.0.1:1/", "--redis-url", REDIS],
        ),
    ] {
        let mut child = Command::new(bin)
            .args(&args)
            .env_remove("AMQP_URL")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the first retry log line, proof it is retrying rather than exiting.
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                lines.push(line.unwrap_or_default());
            }
            lines
        });
        let give_up = Instant::now() + Duration::from_secs(3);
        while Instant::now() < give_up {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{bin} exited on an unreachable broker"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sigterm(child.id());
        let give_up = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                panic!("{bin} ignored SIGTERM while the broker is unreachable");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines = reader.join().unwrap();
        assert!(status.success(), "{bin}: {status:?} {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("cannot connect to RabbitMQ")),
            "{bin}: {lines:?}"
        );
    }
}

/// Issue #16: no password in anything a binary prints, at every log level, on its failure paths:
/// an unreachable broker and Redis (retried until SIGTERM) and URLs that do not parse (exit 2).
#[test]
fn passwords_in_urls_are_never_printed() {
    const SECRET: &str = "S3cretPassw0rd";
    let amqp = format!("amqp://guest:{SECRET}@127.0.0.1:1/");
    let redis = format!("redis://:{SECRET}@127.0.0.1:1/");
    let bad_amqp = format!("amqp://guest:{SECRET}@127.0.0.1:notaport/");
    let bad_redis = format!("redis://:{SECRET}@127.0.0.1:notaport/");
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (MANAGER, vec!["--amqp-url", &amqp]),
        (MANAGER, vec!["--amqp-url", &bad_amqp]),
        (CONFIG, vec!["--amqp-url", &amqp, "--config-dir", dir]),
        (CONFIG, vec!["--amqp-url", &bad_amqp, "--config-dir", dir]),
        (CHECKER, vec!["--amqp-url", &amqp, "--redis-url", &redis]),
        (
            CHECKER,
            vec!["--amqp-url", &amqp, "--redis-url", &bad_redis],
        ),
        (
            CHECKER,
            vec!["--amqp-url", &bad_amqp, "--redis-url", &redis],
        ),
        (STORE, vec!["--amqp-url", &amqp, "--redis-url", &redis]),
        (STORE, vec!["--amqp-url", &amqp, "--redis-url", &bad_redis]),
        (STORE, vec!["--amqp-url", &bad_amqp, "--redis-url", &redis]),
    ];
    for (bin, args) in cases {
        for level in ["trace", "info", "warn"] {
            let child = Command::new(bin)
                .args(&args)
                .env_remove("AMQP_URL")
                .env_remove("REDIS_URL")
                .env("RUST_LOG", level)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Let it try (and retry) for a while, then stop it; read everything it printed.
            let pid = child.id();
            let give_up = Instant::now() + Duration::from_secs(2);
            let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
            while Instant::now() < give_up && !waiter.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !waiter.is_finished() {
                sigterm(pid);
            }
            let out = waiter.join().unwrap();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !printed.contains(SECRET),
                "{bin} {args:?} at {level} printed the password:\n{printed}"
            );
            assert!(!printed.contains("panicked"), "{printed}");
        }
    }
}
