//! The embedding example (`examples/embedded.rs`) exercised, not only compiled: its `run` (what
//! its `main` runs inside the host's runtime) against a local node_exporter stand-in, stopped by
//! the host's token.

use std::time::Duration;

use monitor_strategies::testing::{Reply, TestServer};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::{node_exporter_fixture, PATIENCE};

#[path = "../../examples/embedded.rs"]
#[allow(dead_code)] // its `main` and argument parsing are the example binary's
mod embedded_example;

#[tokio::test]
async fn the_embedding_example_hands_raw_data_to_the_host_and_stops_on_its_token() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let url = server.url("/metrics");
    let host = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            embedded_example::run(&url, shutdown, move |key, body| {
                let body = serde_json::from_slice(body).unwrap();
                let _ = tx.send((key.to_owned(), body));
            })
            .await
            .map_err(|e| e.to_string())
        }
    });

    let (key, body) = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("raw data within the patience")
        .expect("a raw-data message");
    assert_eq!(key, "system");
    assert_eq!(
        body["result"]["meta_data"]["system_name"], "example system",
        "{body}"
    );
    assert_eq!(
        body["result"]["data"]["system_cpu_usage"],
        serde_json::json!(8.36)
    );

    shutdown.cancel();
    let stopped = tokio::time::timeout(PATIENCE + Duration::from_secs(10), host)
        .await
        .expect("the example stops on the host's token")
        .unwrap();
    assert_eq!(stopped, Ok(()));
}
