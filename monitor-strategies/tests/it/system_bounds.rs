//! Issue #16: what one system round keeps of a scrape is bounded, and going over a bound is PANIC's
//! 5005 envelope naming the bound; a refused redirect is a 5005 envelope naming the redirect
//! (password redacted).

use std::fmt::Write as _;

use monitor_core::{Monitor, RawDataKey};
use monitor_strategies::testing::{Reply, TestServer};
use monitor_strategies::{PrometheusLimits, StrategySettings};

use crate::{common, node_exporter_fixture, system_monitor};

const TEMPLATE: &str =
    "System monitor (validator_host) experienced errors when reading data from validator_host";

async fn error_of(url: &str, limits: PrometheusLimits) -> (u64, String) {
    let mut monitor = system_monitor(url, &StrategySettings::default()).with_limits(limits);
    let body = common::one_body(&mut monitor, RawDataKey::System).await;
    let error = &body["error"];
    (
        error["code"].as_u64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn too_many_label_sets_of_a_metric_is_5005_naming_the_cap() {
    // The fixture, then 20,000 more CPUs.
    let mut body = node_exporter_fixture();
    for cpu in 0..20_000 {
        let _ = writeln!(
            body,
            "node_cpu_seconds_total{{cpu=\"x{cpu}\",mode=\"idle\"}} 1"
        );
    }
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(body));
    let (code, message) = error_of(&server.url("/metrics"), PrometheusLimits::default()).await;
    assert_eq!(code, 5005);
    assert_eq!(
        message,
        format!(
            "{TEMPLATE}: metric `node_cpu_seconds_total` has more than 10000 label sets (the cap per metric)"
        )
    );
}

#[tokio::test]
async fn too_many_label_bytes_is_5005_naming_the_cap() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let limits = PrometheusLimits {
        max_label_bytes: 1000,
        ..PrometheusLimits::default()
    };
    let (code, message) = error_of(&server.url("/metrics"), limits).await;
    assert_eq!(code, 5005);
    assert_eq!(
        message,
        format!(
            "{TEMPLATE}: the label sets of the requested metrics exceed 1000 bytes (the cap per scrape)"
        )
    );
}

#[tokio::test]
async fn the_fixture_is_well_within_the_default_bounds() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let mut monitor = system_monitor(&server.url("/metrics"), &StrategySettings::default());
    let body = common::one_body(&mut monitor, RawDataKey::System).await;
    assert!(body.get("result").is_some(), "{body}");
    // A tenth of each bound is still enough.
    let limits = PrometheusLimits {
        max_series_per_metric: 1_000,
        max_label_bytes: 400 * 1024,
    };
    let mut monitor =
        system_monitor(&server.url("/metrics"), &StrategySettings::default()).with_limits(limits);
    let body = common::one_body(&mut monitor, RawDataKey::System).await;
    assert!(body.get("result").is_some(), "{body}");
}

#[tokio::test]
async fn a_refused_redirect_is_5005_naming_it_without_the_password() {
    let server = TestServer::start().await.unwrap();
    let other = TestServer::start().await.unwrap();
    let target = other
        .url("/metrics")
        .replace("http://", "http://user:s3cret@");
    server.route("/away", Reply::status(302, "").header("location", &target));
    let url = server.url("/away").replace("http://", "http://user:pw0rd@");
    let mut monitor = system_monitor(&url, &StrategySettings::default());
    let publications = monitor.round().await.unwrap();
    let error = &publications[0].body["error"];
    assert_eq!(error["code"], 5005, "{error}");
    let message = error["message"].as_str().unwrap();
    let port = other.addr().port();
    assert_eq!(
        message,
        format!(
            "{TEMPLATE}: redirect refused: HTTP 302 to `http://user:***@127.0.0.1:{port}/metrics`: \
             monitored endpoints are followed to the same host and port only"
        )
    );
    assert!(!message.contains("s3cret") && !message.contains("pw0rd"));
    assert_eq!(other.hits("/metrics"), 0);
}
