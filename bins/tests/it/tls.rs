//! Every binary over TLS, against a RabbitMQ node and a `redis-server` that really speak TLS and
//! both require client certificates (started by the test with certificates it makes, killed at
//! the end; the machine's broker and Redis are not touched):
//!
//! * the stack: `monitorables-store` (TLS flags), `health-checker` (the same as env variables),
//!   `monitors-manager` and `panic-config` on `amqps://`, the store and the checker on
//!   `rediss://`: the health checker's pings reach the manager and the store over TLS, and their
//!   heartbeats land in the TLS Redis;
//! * the wrong CA: an exit (status 2) at once saying certificate verification failed, with the
//!   URL's password redacted and the CA flag named, for RabbitMQ and for Redis;
//! * no client certificate: an exit saying the server wants one, naming the flags;
//! * `--…-insecure-skip-verify`: works, and warns.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use monitor_bus::testing::tls::{Pki, TlsRabbit, TlsRedis};
use redis::{ClientTlsConfig, TlsCertificates};

use crate::common::{unique, write_systems, TempDir, PATIENCE};

const MANAGER: &str = env!("CARGO_BIN_EXE_monitors-manager");
const STORE: &str = env!("CARGO_BIN_EXE_monitorables-store");
const CHECKER: &str = env!("CARGO_BIN_EXE_health-checker");
const CONFIG: &str = env!("CARGO_BIN_EXE_panic-config");

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A command with none of the TLS or URL variables of the environment the tests run in.
fn command(bin: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args);
    for var in [
        "AMQP_URL",
        "REDIS_URL",
        "AMQP_CA_FILE",
        "AMQP_CLIENT_CERT",
        "AMQP_CLIENT_KEY",
        "AMQP_INSECURE_SKIP_VERIFY",
        "REDIS_CA_FILE",
        "REDIS_CLIENT_CERT",
        "REDIS_CLIENT_KEY",
        "REDIS_INSECURE_SKIP_VERIFY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("PANIC_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Run a one-shot command to its end (killed past the deadline, which fails the test).
async fn run(bin: &str, args: &[&str]) -> Output {
    let out = command(bin, args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap_or_else(|_| panic!("{bin} {args:?} hung"))
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// It exited with status 2 at once, and its message says all of `needles` and not the password.
fn assert_fails_saying(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "the message must say {needle:?}: {err}"
        );
    }
    assert!(
        !err.contains("guest:guest") && !err.contains("panicked"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_over_tls() {
    let started = Instant::now();
    let pki = Pki::generate();
    let redis = TlsRedis::start(&pki, true);
    let rabbit = tokio::task::block_in_place(|| TlsRabbit::start(&pki, true));
    eprintln!("TLS RabbitMQ node started in {:?}", rabbit.start_time);
    let amqp = rabbit.url();
    let rediss = redis.url();
    let ns = format!("tls_{}", unique().replace('-', "_"));
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client_cert), path(&pki.client_key));
    let amqp_tls = [
        "--amqp-ca-file",
        ca,
        "--amqp-client-cert",
        cert,
        "--amqp-client-key",
        key,
    ];
    let redis_tls = [
        "--redis-ca-file",
        ca,
        "--redis-client-cert",
        cert,
        "--redis-client-key",
        key,
    ];

    // The stack. The store takes flags, the health checker the same as env variables.
    let store_args: Vec<&str> = [
        "--amqp-url",
        &amqp,
        "--redis-url",
        &rediss,
        "--namespace",
        &ns,
    ]
    .into_iter()
    .chain(amqp_tls)
    .chain(redis_tls)
    .collect();
    let _store = command(STORE, &store_args, &[]).spawn().unwrap();
    let _checker = command(
        CHECKER,
        &[
            "--amqp-url",
            &amqp,
            "--redis-url",
            &rediss,
            "--namespace",
            &ns,
            "--ping-interval",
            "1s",
        ],
        &[
            ("AMQP_CA_FILE", ca),
            ("AMQP_CLIENT_CERT", cert),
            ("AMQP_CLIENT_KEY", key),
            ("REDIS_CA_FILE", ca),
            ("REDIS_CLIENT_CERT", cert),
            ("REDIS_CLIENT_KEY", key),
        ],
    )
    .spawn()
    .unwrap();
    let manager_args: Vec<&str> = ["--amqp-url", amqp.as_str()]
        .into_iter()
        .chain(amqp_tls)
        .collect();
    let _manager = command(MANAGER, &manager_args, &[]).spawn().unwrap();
    // One system (its exporter is not there: the monitor reports errors, which is enough): the
    // manager publishes its monitorables, the store writes them, and heartbeats.
    let configs = TempDir::new("tls-config");
    write_systems(
        &configs.0.join("general/systems_config.ini"),
        &[("sys_tls", "tls_host", "http://127.0.0.1:1/metrics")],
    );
    let config_args: Vec<&str> = [
        "--amqp-url",
        amqp.as_str(),
        "--config-dir",
        path(&configs.0),
    ]
    .into_iter()
    .chain(amqp_tls)
    .collect();
    let out = run(CONFIG, &config_args).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // Their heartbeats, through RabbitMQ over TLS, in Redis over TLS.
    let client = redis::Client::build_with_tls(
        rediss.as_str(),
        TlsCertificates {
            client_tls: Some(ClientTlsConfig {
                client_cert: std::fs::read(&pki.client_cert).unwrap(),
                client_key: std::fs::read(&pki.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&pki.ca).unwrap()),
        },
    )
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for component in ["Ping Publisher", "Monitorable Store", "Monitors Manager"] {
        let key = format!("{ns}:c1_{component}");
        let waiting = Instant::now();
        loop {
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let named = value
                .as_deref()
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .is_some_and(|v| v["component_name"] == component);
            if named {
                break;
            }
            assert!(waiting.elapsed() < PATIENCE, "no heartbeat at {key}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The wrong CA, for RabbitMQ: an exit at once, explained.
    let with_password = amqp.replace("guest:guest", "guest:s3cret");
    let out = run(
        CONFIG,
        &[
            "--amqp-url",
            &with_password,
            "--config-dir",
            path(&configs.0),
            "--amqp-ca-file",
            path(&pki.wrong_ca),
            "--amqp-client-cert",
            cert,
            "--amqp-client-key",
            key,
        ],
    )
    .await;
    assert_fails_saying(
        &out,
        &[
            "TLS certificate verification failed",
            &format!("amqps://guest:***@127.0.0.1:{}/%2f", rabbit.port),
            path(&pki.wrong_ca),
            "--amqp-ca-file",
        ],
    );
    assert!(!stderr(&out).contains("s3cret"));

    // And for Redis.
    let out = run(
        STORE,
        &[
            "--redis-url",
            &rediss.replace("rediss://", "rediss://:s3cret@"),
            "--redis-ca-file",
            path(&pki.wrong_ca),
            "--redis-client-cert",
            cert,
            "--redis-client-key",
            key,
            "show",
        ],
    )
    .await;
    assert_fails_saying(
        &out,
        &[
            "TLS certificate verification failed",
            &format!("rediss://:***@127.0.0.1:{}/", redis.port),
            path(&pki.wrong_ca),
            "--redis-ca-file",
        ],
    );
    assert!(!stderr(&out).contains("s3cret"));

    // No client certificate for a broker that requires one.
    let out = run(
        CONFIG,
        &[
            "--amqp-url",
            &amqp,
            "--config-dir",
            path(&configs.0),
            "--amqp-ca-file",
            ca,
        ],
    )
    .await;
    assert_fails_saying(
        &out,
        &[
            "refused the TLS handshake",
            "no client certificate",
            "--amqp-client-cert",
        ],
    );

    // No verification: works, and says loudly that it is off.
    let out = run(
        CONFIG,
        &[
            "--amqp-url",
            &amqp,
            "--config-dir",
            path(&configs.0),
            "--amqp-insecure-skip-verify",
            "--amqp-client-cert",
            cert,
            "--amqp-client-key",
            key,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TLS CERTIFICATE VERIFICATION IS OFF for RabbitMQ"),
        "{}",
        stderr(&out)
    );
    let out = run(
        STORE,
        &[
            "--redis-url",
            &rediss,
            "--namespace",
            &ns,
            "--redis-insecure-skip-verify",
            "--redis-client-cert",
            cert,
            "--redis-client-key",
            key,
            "show",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TLS CERTIFICATE VERIFICATION IS OFF for Redis"),
        "{}",
        stderr(&out)
    );
    let out_env = command(
        STORE,
        &["--redis-url", &rediss, "--namespace", &ns, "show"],
        &[
            ("REDIS_INSECURE_SKIP_VERIFY", "true"),
            ("REDIS_CLIENT_CERT", cert),
            ("REDIS_CLIENT_KEY", key),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output();
    let out_env = tokio::time::timeout(Duration::from_secs(60), out_env)
        .await
        .unwrap()
        .unwrap();
    assert!(out_env.status.success(), "{}", stderr(&out_env));
    assert!(
        stderr(&out_env).contains("TLS CERTIFICATE VERIFICATION IS OFF for Redis"),
        "{}",
        stderr(&out_env)
    );
    // The same without the option: the system's trust store does not know the test CA.
    let out = run(
        STORE,
        &[
            "--redis-url",
            &rediss,
            "--redis-client-cert",
            cert,
            "--redis-client-key",
            key,
            "show",
        ],
    )
    .await;
    assert_fails_saying(
        &out,
        &[
            "TLS certificate verification failed",
            "the system's trust store",
        ],
    );
    eprintln!("every_binary_over_tls took {:?}", started.elapsed());
}
