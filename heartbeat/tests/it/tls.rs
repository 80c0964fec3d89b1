//! The health checker's Redis sink over `rediss://` against a `redis-server` that really speaks
//! TLS and requires client certificates (`--tls-port`, `--tls-auth-clients yes`, certificates
//! made by the test), killed at the end: with the CA and a client certificate the heartbeat is
//! written; with the wrong CA the failure says certificate verification failed and names the CA
//! file.

use heartbeat::health_checker::{HeartbeatSink, RedisHeartbeatSink, SinkError};
use monitor_bus::testing::tls::{Pki, TlsRedis};
use redis::{ClientTlsConfig, TlsCertificates};

#[tokio::test]
async fn the_sink_writes_over_tls_and_explains_a_wrong_ca() {
    let pki = Pki::generate();
    let server = TlsRedis::start(&pki, true);

    let sink =
        RedisHeartbeatSink::open_with_tls(&server.url(), "tls_hc", &pki.trust_with_client_cert())
            .unwrap();
    sink.store("Some Component", r#"{"component_name":"Some Component"}"#)
        .await
        .unwrap();
    // Read back on a connection of the test's own.
    let client = redis::Client::build_with_tls(
        server.url(),
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
    let stored: String = redis::cmd("GET")
        .arg("tls_hc:c1_Some Component")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, r#"{"component_name":"Some Component"}"#);

    let sink =
        RedisHeartbeatSink::open_with_tls(&server.url(), "tls_hc", &pki.trust_wrong_ca()).unwrap();
    match sink.store("x", "{}").await {
        Err(SinkError::Tls(message)) => {
            assert!(
                message.contains("TLS certificate verification failed")
                    && message.contains(&format!("the CA file `{}`", pki.wrong_ca.display())),
                "{message}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
