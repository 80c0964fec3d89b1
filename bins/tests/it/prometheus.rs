//! The data metrics as Prometheus sees them: a real Prometheus (Debian's `prometheus` 2.42,
//! installed by scripts/ensure-services.sh) scrapes an embedded manager and answers PromQL with a
//! figure known from the node_exporter fixture; `promtool` checks the live page and the example
//! alerting rules.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use monitor_strategies::testing::{Reply, TestServer};
use serde_json::Value;

use crate::common::{node_exporter_fixture, write_systems, TempDir, PATIENCE};

/// PANIC's `virtual_memory_usage` for the fixture (`process_virtual_memory_bytes 7.35645696e+08`,
/// fixtures/SOURCES.md).
const FIXTURE_VIRTUAL_MEMORY: &str = "735645696";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/prometheus")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` (HTTP/1.0: one request, no chunking); the status line and the body.
async fn get(addr: &str, path: &str) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/ensure-services.sh)");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn example_alerting_rules_pass_promtool() {
    let dir = examples();
    let rules = dir.join("alerts.yml");
    let out = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 10 rules found"),
        "{out:?}"
    );
    // `promtool test rules` reads rule_files relative to the test file.
    let tests = dir.join("alerts_test.yml");
    let out = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Query Prometheus until `query` has a sample whose value is `want` (or PATIENCE runs out).
async fn wait_for_value(prometheus: &str, query: &str, want: &str) -> Value {
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Some((status, body)) = get(prometheus, &path).await {
            if status.contains(" 200") {
                let v: Value = serde_json::from_str(&body).unwrap();
                let result = &v["data"]["result"];
                if result[0]["value"][1] == want {
                    assert_eq!(result.as_array().unwrap().len(), 1, "{v}");
                    return result[0].clone();
                }
                last = body;
            }
        }
        assert!(
            start.elapsed() < 3 * PATIENCE,
            "Prometheus never answered {query} = {want}; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_monitored_data() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-prometheus");
    let cfg = dir.0.join("config");
    let systems = cfg.join("general/systems_config.ini");
    write_systems(
        &systems,
        &[("system_1", "validator_host", &server.url("/metrics"))],
    );
    let manager_addr = format!("127.0.0.1:{}", free_port());
    let mut manager = tokio::process::Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
        .args(["--config-dir", cfg.to_str().unwrap()])
        .args(["--metrics-addr", &manager_addr])
        .arg("--output")
        .arg(dir.0.join("raw.jsonl"))
        .env("SYSTEM_MONITOR_PERIOD_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("AMQP_URL")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Prometheus on a free port, its own tsdb, scraping every second, with the example rules.
    let prometheus_addr = format!("127.0.0.1:{}", free_port());
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: panic\n    static_configs:\n      - targets: ['{manager_addr}']\n",
            examples().join("alerts.yml").display()
        ),
    )
    .unwrap();
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prometheus_addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian's prometheus package; scripts/ensure-services.sh)");

    // The figure, through the scrape (Prometheus asks for OpenMetrics first) and PromQL.
    let sample = wait_for_value(
        &prometheus_addr,
        r#"panic_system_virtual_memory_bytes{system_id="system_1"}"#,
        FIXTURE_VIRTUAL_MEMORY,
    )
    .await;
    assert_eq!(sample["metric"]["job"], "panic", "{sample}");
    // The names through the info series, joined as the example rules do.
    wait_for_value(
        &prometheus_addr,
        r#"count(panic_system_process_cpu_seconds_total * on(system_id) group_left(system_name) panic_system_info{system_name="validator_host"} == 2.67)"#,
        "1",
    )
    .await;
    wait_for_value(&prometheus_addr, r#"panic_monitor_up{type="system"}"#, "1").await;

    // The classic text page passes promtool.
    let (status, page) = get(&manager_addr, "/metrics").await.unwrap();
    assert!(status.contains(" 200"), "{status}");
    let out = promtool(&["check", "metrics"], Some(&page));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{out:?}\n{page}"
    );

    // A removed monitor's series leave the page.
    write_systems(&systems, &[]);
    let start = Instant::now();
    loop {
        let (_, page) = get(&manager_addr, "/metrics").await.unwrap();
        if page.contains("panic_monitors{state=\"running\"} 0") {
            assert!(!page.contains("system_id=\"system_1\""), "{page}");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the monitor was never removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    prometheus.kill().await.unwrap();
    manager.kill().await.unwrap();
}
