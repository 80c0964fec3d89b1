//! The embedded default end to end: the `monitors-manager` binary with `--config-dir`, a local
//! HTTP server replaying node_exporter, raw data read from `--output`, hot reload of the folder.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{node_exporter_fixture, sigterm, write_systems, TempDir, PATIENCE};
use monitor_strategies::testing::{Reply, TestServer};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

/// Wait until the output holds a line satisfying `pred`; return all lines then.
async fn wait_for(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let l = lines(path);
        if l.iter().any(&pred) {
            return l;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no output line with {what}; got {l:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn system_name(v: &Value) -> Option<&str> {
    v["body"]["result"]["meta_data"]["system_name"]
        .as_str()
        .or_else(|| v["body"]["error"]["meta_data"]["system_name"].as_str())
}

fn spawn_manager(dir: &Path, output: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
        .arg("--config-dir")
        .arg(dir)
        .arg("--output")
        .arg(output)
        .env("SYSTEM_MONITOR_PERIOD_SECONDS", "1")
        .env("RUST_LOG", "info")
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("monitors-manager binary")
}

#[tokio::test]
async fn embedded_manager_monitors_and_hot_reloads_the_config_folder() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-embedded");
    let out = dir.0.join("raw.jsonl");
    let cfg = dir.0.join("config");
    let systems = cfg.join("general/systems_config.ini");
    write_systems(&systems, &[("system_a", "alpha", &server.url("/metrics"))]);

    let mut child = spawn_manager(&cfg, &out);
    // Drain stderr while the manager runs: the warnings of beta's failed rounds (~1 KB/s) fill a
    // pipe nobody reads (64 KiB) within a minute on a loaded machine, and the manager then blocks
    // on its log writes.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let log_reader = tokio::spawn(async move {
        let mut log = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut log)
            .await
            .map(|_| log)
    });

    // 1. At start: alpha's exact numbers (SOURCES.md) on routing key `system`.
    let l = wait_for(&out, "alpha", |v| system_name(v) == Some("alpha")).await;
    let alpha = l.iter().find(|v| system_name(v) == Some("alpha")).unwrap();
    assert_eq!(alpha["routing_key"], "system");
    let data = &alpha["body"]["result"]["data"];
    assert_eq!(data["system_cpu_usage"], serde_json::json!(8.36));
    assert_eq!(
        data["network_receive_bytes_total"].to_string(),
        "2976612916.0"
    );

    // 2. Change: add beta, rename nothing else; beta appears without a restart.
    write_systems(
        &systems,
        &[
            ("system_a", "alpha", &server.url("/metrics")),
            ("system_b", "beta", "http://127.0.0.1:1/metrics"),
        ],
    );
    let l = wait_for(&out, "beta", |v| system_name(v) == Some("beta")).await;
    let beta = l.iter().find(|v| system_name(v) == Some("beta")).unwrap();
    assert_eq!(beta["body"]["error"]["code"], 5004, "{beta}");

    // 3. A malformed change is refused: the last good config keeps running.
    // Written then renamed, as editors do: a plain write truncates first, and a watcher that
    // reads between the truncation and the write sees an empty file (PANIC's "remove all").
    let tmp = systems.with_extension("tmp");
    std::fs::write(&tmp, "[system_a\nid = oops\n").unwrap();
    std::fs::rename(&tmp, &systems).unwrap();
    let before = lines(&out).len();
    wait_for(&out, "more rounds after a bad change", |_| {
        lines(&out).len() > before + 4
    })
    .await;

    // 4. Delete the file: everything under general.systems_config stops.
    // The stop takes the watcher's debounce and the manager's handling, longer on a loaded
    // machine: wait until a 3 s window (three periods) passes without a line, then check that
    // nothing more comes in the next one.
    std::fs::remove_file(&systems).unwrap();
    let start = Instant::now();
    let mut settled = lines(&out).len();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = lines(&out).len();
        if now == settled {
            break;
        }
        settled = now;
        assert!(
            start.elapsed() < PATIENCE,
            "rounds still coming {:?} after the file was deleted",
            start.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        lines(&out).len(),
        settled,
        "no more rounds after the file is deleted"
    );

    // 5. Create it again: monitoring resumes.
    write_systems(&systems, &[("system_c", "gamma", &server.url("/metrics"))]);
    wait_for(&out, "gamma", |v| system_name(v) == Some("gamma")).await;

    // 6. SIGTERM: clean exit 0, and the log named the bad file and line.
    let pid = child.id().unwrap();
    sigterm(pid);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    let log = log_reader.await.unwrap().unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(status.success(), "{status:?}: {log}");
    assert!(
        log.contains("systems_config.ini") && log.contains("line"),
        "{log}"
    );
}

#[tokio::test]
async fn bad_flags_and_folders_exit_non_zero_with_a_message() {
    let bin = env!("CARGO_BIN_EXE_monitors-manager");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env_remove("AMQP_URL")
            .output()
            .unwrap()
    };
    let o = run(&["--bogus"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bogus"));

    let o = run(&[]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--config-dir"),
        "{o:?}"
    );

    let o = run(&["--config-dir", "/nonexistent/panic/config"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent/panic/config"),
        "{o:?}"
    );

    let dir = TempDir::new("panic-bad-ini");
    std::fs::create_dir_all(dir.0.join("general")).unwrap();
    std::fs::write(
        dir.0.join("general/systems_config.ini"),
        "[a]\nid = a\n[broken",
    )
    .unwrap();
    let o = run(&["--config-dir", dir.0.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("systems_config.ini") && err.contains("line 3"),
        "{err}"
    );

    let o = std::process::Command::new(bin)
        .args(["--config-dir", "/tmp"])
        .env("NODE_MONITOR_PERIOD_SECONDS", "soon")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("NODE_MONITOR_PERIOD_SECONDS"),
        "{o:?}"
    );

    let o = run(&["--config-dir", "/tmp", "--shard", "3/2"]);
    assert!(!o.status.success());
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    // One request per connection: the server keeps connections alive unless told otherwise.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-metrics");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[("system_a", "alpha", &server.url("/metrics"))],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
        .args([
            "--config-dir",
            cfg.to_str().unwrap(),
            "--metrics-addr",
            &addr,
        ])
        .arg("--output")
        .arg(dir.0.join("raw.jsonl"))
        .env("SYSTEM_MONITOR_PERIOD_SECONDS", "1")
        .env_remove("AMQP_URL")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(text) = http_get(&addr, "/metrics").await {
            if text.contains("panic_monitors{state=\"running\"} 1")
                && !text.contains("panic_monitor_rounds_total{outcome=\"ok\"} 0")
            {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                break;
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no metrics with one running monitor"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = http_get(&addr, "/health").await.unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let missing = http_get(&addr, "/nope").await.unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
