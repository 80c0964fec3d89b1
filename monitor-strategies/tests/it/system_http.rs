use bytes::Bytes;
use serde_json::{json, Value};

use monitor_core::{Monitor, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::StrategySettings;

use crate::common;
use crate::{node_exporter_fixture, short_timeout, system_monitor};

/// PANIC's numbers for the fixture (SOURCES.md), in PANIC's field order, floats as Python prints
/// them.
const EXPECTED_DATA: &str = concat!(
    r#"{"process_cpu_seconds_total":2.67,"process_memory_usage":8.4,"#,
    r#""virtual_memory_usage":735645696.0,"open_file_descriptors":0.000858306884765625,"#,
    r#""system_cpu_usage":8.36,"system_ram_usage":37.92,"system_storage_usage":22.86,"#,
    r#""network_receive_bytes_total":2976612916.0,"network_transmit_bytes_total":144103419.0,"#,
    r#""disk_io_time_seconds_total":2014.18}"#
);

async fn serve(reply: Reply) -> (TestServer, String) {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", reply);
    let url = server.url("/metrics");
    (server, url)
}

/// One round, which must publish exactly one `system` message; returns its body.
async fn one_round(url: &str, settings: &StrategySettings) -> Value {
    let mut monitor = system_monitor(url, settings);
    common::one_body(&mut monitor, RawDataKey::System).await
}

/// The monitor's meta_data (`time` near now).
fn meta() -> Value {
    json!({"monitor_name": "System monitor (validator_host)", "system_name": "validator_host",
           "system_id": "system_1", "system_parent_id": "GENERAL", "time": null})
}

fn check_meta_data(meta_data: &Value) {
    common::check_meta(meta_data, &meta());
}

/// The error envelope's `(code, message)`.
fn error_of(body: &Value) -> (u64, String) {
    common::error_of(body, &meta())
}

#[tokio::test]
async fn fixture_gives_panics_numbers() {
    let (server, url) = serve(Reply::ok(node_exporter_fixture())).await;
    let body = one_round(&url, &StrategySettings::default()).await;
    check_meta_data(&body["result"]["meta_data"]);
    assert_eq!(
        serde_json::to_string(&body["result"]["data"]).unwrap(),
        EXPECTED_DATA
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert!(requests[0].header("user-agent").is_some());
}

#[tokio::test]
async fn chunked_body_and_keep_alive() {
    let (server, url) =
        serve(Reply::ok(node_exporter_fixture()).mode(BodyMode::Chunked(4096))).await;
    let settings = StrategySettings::default();
    let mut monitor = crate::system_monitor(&url, &settings);
    for _ in 0..3 {
        let publications = monitor.round().await.unwrap();
        assert_eq!(
            serde_json::to_string(&publications[0].body["result"]["data"]).unwrap(),
            EXPECTED_DATA
        );
    }
    assert_eq!(server.hits("/metrics"), 3);
}

#[tokio::test]
async fn refused_connection_is_5004() {
    let url = refused_url("/metrics").await.unwrap();
    let (code, message) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5004);
    assert_eq!(message, "System validator_host is unreachable");
}

#[tokio::test]
async fn silent_server_is_5004() {
    let (server, url) = serve(Reply::no_response()).await;
    let (code, _) = error_of(&one_round(&url, &short_timeout()).await);
    assert_eq!(code, 5004);
    assert_eq!(server.hits("/metrics"), 1);
}

#[tokio::test]
async fn body_that_stalls_is_5004() {
    // Headers and part of the body, then silence: the timeout covers the body too, and `requests`
    // reported a read timeout as a connection error.
    let (_server, url) =
        serve(Reply::ok(node_exporter_fixture()).mode(BodyMode::Stalled(100))).await;
    let (code, _) = error_of(&one_round(&url, &short_timeout()).await);
    assert_eq!(code, 5004);
}

#[tokio::test]
async fn closed_without_answer_is_5004() {
    let (_server, url) = serve(Reply::ok(Bytes::new()).mode(BodyMode::Close)).await;
    let (code, _) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5004);
}

#[tokio::test]
async fn garbage_instead_of_http_is_5004() {
    let garbage = Bytes::from_static(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
    let (_server, url) = serve(Reply::ok(Bytes::new()).mode(BodyMode::Raw(garbage))).await;
    let (code, _) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5004);
}

#[tokio::test]
async fn truncated_body_is_5005() {
    let (_server, url) =
        serve(Reply::ok(node_exporter_fixture()).mode(BodyMode::Truncated(5000))).await;
    let (code, message) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5005);
    assert_eq!(
        message,
        "System monitor (validator_host) experienced errors when reading data from validator_host"
    );
}

#[tokio::test]
async fn broken_chunking_is_5005() {
    let (_server, url) =
        serve(Reply::ok(node_exporter_fixture()).mode(BodyMode::BrokenChunked)).await;
    let (code, _) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5005);
}

#[tokio::test]
async fn body_over_the_cap_is_5005() {
    let small = StrategySettings::default().with_max_body_bytes(10_000);
    // Declared length over the cap.
    let (_server, url) = serve(Reply::ok(node_exporter_fixture())).await;
    let (code, _) = error_of(&one_round(&url, &small).await);
    assert_eq!(code, 5005);
    // No declared length: the cap applies while streaming.
    let (_server, url) =
        serve(Reply::ok(node_exporter_fixture()).mode(BodyMode::Chunked(1000))).await;
    let (code, _) = error_of(&one_round(&url, &small).await);
    assert_eq!(code, 5005);
    // At the cap exactly is fine.
    let exact = StrategySettings::default().with_max_body_bytes(node_exporter_fixture().len());
    let (_server, url) = serve(Reply::ok(node_exporter_fixture())).await;
    assert!(one_round(&url, &exact).await.get("result").is_some());
}

#[tokio::test]
async fn invalid_urls_are_5009() {
    for url in [
        "",
        "127.0.0.1:9100/metrics",
        "ftp://127.0.0.1/metrics",
        "http://:80/x",
        "http://h:99999/",
    ] {
        let (code, message) = error_of(&one_round(url, &StrategySettings::default()).await);
        assert_eq!(code, 5009, "{url}");
        assert_eq!(message, format!("Invalid URL '{url}'"));
    }
}

#[tokio::test]
async fn missing_metric_is_5003() {
    let body: String = node_exporter_fixture()
        .lines()
        .filter(|l| !l.starts_with("node_disk_io_time_seconds_total"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_server, url) = serve(Reply::ok(body)).await;
    let (code, message) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5003);
    assert_eq!(
        message,
        format!("Could not find metric node_disk_io_time_seconds_total at endpoint {url}")
    );
    // A 404 page is not a scrape either; PANIC parsed it anyway (and failed processing).
    let (_server, url) = serve(Reply::status(404, "")).await;
    let (code, _) = error_of(&one_round(&url, &StrategySettings::default()).await);
    assert_eq!(code, 5003);
}

/// A round that must fail with a processing error (nothing published).
async fn processing_error(body: impl Into<Bytes>) -> String {
    let (_server, url) = serve(Reply::ok(body)).await;
    let mut monitor = system_monitor(&url, &StrategySettings::default());
    monitor.round().await.unwrap_err().to_string()
}

#[tokio::test]
async fn division_by_zero_is_a_round_error() {
    let body = node_exporter_fixture().replace(
        "node_memory_MemTotal_bytes 1.6405426176e+10",
        "node_memory_MemTotal_bytes 0",
    );
    assert_ne!(body, node_exporter_fixture(), "fixture line changed");
    let err = processing_error(body).await;
    assert!(err.contains("system_ram_usage: division by zero"), "{err}");

    let body = node_exporter_fixture().replace("process_max_fds 1.048576e+06", "process_max_fds 0");
    assert_ne!(body, node_exporter_fixture(), "fixture line changed");
    let err = processing_error(body).await;
    assert!(err.contains("open_file_descriptors"), "{err}");
}

#[tokio::test]
async fn bodies_that_are_not_scrapes_are_round_errors() {
    let err = processing_error(Bytes::from_static(b"\xff\xfe not utf-8")).await;
    assert!(err.contains("not UTF-8"), "{err}");
    let err = processing_error("<html>404 page not found</html>\n").await;
    assert!(err.contains("not Prometheus text"), "{err}");
    // A metric of the wrong shape (PANIC: TypeError).
    let body = node_exporter_fixture().replace("process_open_fds 9", "process_open_fds{x=\"1\"} 9");
    assert_ne!(body, node_exporter_fixture(), "fixture line changed");
    let err = processing_error(body).await;
    assert!(err.contains("process_open_fds is labelled"), "{err}");
}

#[tokio::test]
async fn a_round_error_still_says_something_a_5005_envelope() {
    // Issue #16: a body that is not Prometheus text (gzip bytes, invalid UTF-8, HTML) must not
    // leave the monitor silent; the runner publishes `failed_round`'s envelope and a heartbeat.
    for body in [
        Bytes::from_static(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"),
        Bytes::from_static(b"\xff\xfe not utf-8"),
        Bytes::from_static(b"<html>404 page not found</html>\n"),
    ] {
        let (_server, url) = serve(Reply::ok(body)).await;
        let mut monitor = system_monitor(&url, &StrategySettings::default());
        let err = monitor.round().await.unwrap_err();
        let publications = monitor.failed_round(&err);
        assert_eq!(publications.len(), 1);
        assert_eq!(publications[0].routing_key, RawDataKey::System);
        let error = &publications[0].body["error"];
        assert_eq!(error["code"], 5005, "{error}");
        assert_eq!(error["meta_data"]["system_id"], "system_1", "{error}");
        assert!(error["meta_data"]["time"].is_number(), "{error}");
        assert!(publications[0].body.get("result").is_none());
    }
}

#[tokio::test]
async fn https_exporter_with_self_signed_certificate() {
    let server = TestServer::start_tls().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let url = server.url("/metrics");
    assert!(url.starts_with("https://127.0.0.1:"));
    // PANIC's default: exporter certificates are not verified.
    let body = one_round(&url, &StrategySettings::default()).await;
    assert_eq!(
        serde_json::to_string(&body["result"]["data"]).unwrap(),
        EXPECTED_DATA
    );
    // Verification on: the self-signed certificate is refused, which `requests` reported as a
    // connection error (`SSLError`): 5004.
    let verifying = StrategySettings::default().with_verify_tls_monitored(true);
    let (code, _) = error_of(&one_round(&url, &verifying).await);
    assert_eq!(code, 5004);
    assert_eq!(server.hits("/metrics"), 1);
}
