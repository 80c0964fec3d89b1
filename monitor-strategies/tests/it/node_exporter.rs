use std::process::Stdio;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use monitor_core::Monitor;
use monitor_strategies::StrategySettings;

use crate::system_monitor;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// A node_exporter on a free loopback port, killed when dropped.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    async fn start() -> Exporter {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NODE_EXPORTER}: {e}"));
        // Readiness, not timing: wait until the port accepts connections (up to 20 s).
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Exporter { child, port };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node_exporter did not listen on port {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn real_node_exporter_gives_a_plausible_result() {
    let exporter = Exporter::start().await;
    let settings = StrategySettings::default();
    let mut monitor = system_monitor(&exporter.url(), &settings);
    let publications = monitor.round().await.unwrap();
    exporter.stop().await;

    assert_eq!(publications.len(), 1);
    let body = &publications[0].body;
    let result = body
        .get("result")
        .unwrap_or_else(|| panic!("not a result: {body}"));
    assert_eq!(
        result["meta_data"]["monitor_name"],
        "System monitor (validator_host)"
    );
    let data = result["data"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "process_cpu_seconds_total",
            "process_memory_usage",
            "virtual_memory_usage",
            "open_file_descriptors",
            "system_cpu_usage",
            "system_ram_usage",
            "system_storage_usage",
            "network_receive_bytes_total",
            "network_transmit_bytes_total",
            "disk_io_time_seconds_total"
        ]
    );
    let num = |k: &str| {
        data[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {}", data[k]))
    };
    for percentage in [
        "process_memory_usage",
        "open_file_descriptors",
        "system_cpu_usage",
        "system_ram_usage",
        "system_storage_usage",
    ] {
        let v = num(percentage);
        assert!((0.0..=100.0).contains(&v), "{percentage} = {v}");
    }
    for counter in [
        "process_cpu_seconds_total",
        "network_receive_bytes_total",
        "network_transmit_bytes_total",
        "disk_io_time_seconds_total",
    ] {
        assert!(num(counter) >= 0.0, "{counter}");
    }
    assert!(num("virtual_memory_usage") > 0.0);
    // The exporter has open fds (its listener, the scrape): strictly positive.
    assert!(num("open_file_descriptors") > 0.0);
    // Rounded fields have at most two decimals.
    for rounded in [
        "system_cpu_usage",
        "system_ram_usage",
        "system_storage_usage",
    ] {
        let text = data[rounded].to_string();
        let decimals = text.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 2, "{rounded} = {text}");
    }
}

#[tokio::test]
async fn stopped_node_exporter_is_5004() {
    let exporter = Exporter::start().await;
    let url = exporter.url();
    exporter.stop().await;
    let mut monitor = system_monitor(&url, &StrategySettings::default());
    let publications = monitor.round().await.unwrap();
    assert_eq!(publications[0].body["error"]["code"], 5004);
}

#[tokio::test]
async fn a_real_node_exporter_on_a_kept_connection() {
    use monitor_core::PeriodGroup;
    use monitor_strategies::{KeptConnection, Target};

    let exporter = Exporter::start().await;
    let http = StrategySettings::default()
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap();
    let url = exporter.url();
    let parsed = reqwest::Url::parse(&url).unwrap();
    let mut kept = KeptConnection::default();
    let mut body = Vec::new();
    for _ in 0..3 {
        let status = http
            .get_into_kept(&parsed, &url, &mut body, &mut kept)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("\nnode_memory_MemTotal_bytes "), "{text}");
        assert!(text.ends_with('\n'));
        assert!(kept.is_open());
    }
    exporter.stop().await;
}
