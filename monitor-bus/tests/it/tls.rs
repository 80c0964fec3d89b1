//! `amqps://` against a RabbitMQ node that really speaks TLS: a private node the test starts with
//! a CA and certificates it makes (`testing::tls`), requiring a client certificate, so that one
//! node (a few seconds of Erlang boot) covers every case: the right CA and a client certificate
//! carry a round trip; the wrong CA fails saying so, naming the URL (password redacted) and the
//! CA file; no verification works; no client certificate fails saying the server wants one.

use std::time::Instant;

use bytes::Bytes;
use monitor_bus::testing::tls::{Pki, TlsRabbit};
use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings, Bus, BusError, TlsOptions};

use crate::common;

fn settings(url: &str, tls: TlsOptions) -> AmqpSettings {
    AmqpSettings {
        url: url.to_owned(),
        connection_name: "tls test".to_owned(),
        tls,
        ..AmqpSettings::default()
    }
}

async fn round_trip(bus: &AmqpBus, what: &str) {
    let x = format!("tls-x-{}", common::unique());
    let q = format!("tls-q-{}", common::unique());
    bus.declare_exchange(&x).await.unwrap();
    declare_bound_queue(bus, &q, &x, &["#"]).await.unwrap();
    let mut consumer = bus.consume(&q, 1).await.unwrap();
    bus.publish(&x, "k", Bytes::from(what.to_owned()))
        .await
        .unwrap();
    let d = common::next(&mut consumer).await;
    assert_eq!(common::text(&d), what);
    d.ack().await.unwrap();
    drop(consumer);
    bus.delete_queue(&q).await.unwrap();
    bus.delete_exchange(&x).await.unwrap();
}

/// The message of a connection attempt that must fail, whether as a TLS error or a broker error.
async fn connect_failure(url: &str, tls: TlsOptions) -> String {
    match AmqpBus::connect(settings(url, tls)).await {
        Ok(bus) => {
            bus.close().await;
            panic!("connected to {url} when it should have failed")
        }
        Err(BusError::Tls(message) | BusError::Broker(message)) => message,
        Err(other) => panic!("expected a TLS or broker error, got {other:?}"),
    }
}

async fn connect_error(url: &str, tls: TlsOptions) -> String {
    match AmqpBus::connect(settings(url, tls)).await {
        Ok(bus) => {
            bus.close().await;
            panic!("connected to {url} when it should have failed")
        }
        Err(BusError::Tls(message)) => message,
        Err(other) => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_against_a_rabbitmq_that_speaks_tls() {
    common::init_tracing();
    let pki = Pki::generate();
    let started = Instant::now();
    let rabbit = tokio::task::block_in_place(|| TlsRabbit::start(&pki, true));
    eprintln!(
        "TLS RabbitMQ node started in {:?} (port {})",
        rabbit.start_time, rabbit.port
    );
    let url = rabbit.url();

    // The right CA and a client certificate: a round trip through the bus.
    let bus = AmqpBus::connect(settings(&url, pki.trust_with_client_cert()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", rabbit.log()));
    round_trip(&bus, "over TLS").await;
    bus.close().await;

    // The wrong CA: a certificate verification failure, saying so, naming the URL without its
    // password and the CA file in use.
    let message = connect_error(&url, pki.trust_wrong_ca()).await;
    assert!(
        message.contains("TLS certificate verification failed"),
        "{message}"
    );
    assert!(
        message.contains(&format!("amqps://guest:***@127.0.0.1:{}/%2f", rabbit.port)),
        "{message}"
    );
    assert!(!message.contains("guest:guest"), "{message}");
    assert!(
        message.contains(&format!("the CA file `{}`", pki.wrong_ca.display())),
        "{message}"
    );
    assert!(message.contains("CA file option"), "{message}");

    // The system's trust store does not know the test CA either.
    let system = TlsOptions {
        ca_file: None,
        ..pki.trust_with_client_cert()
    };
    let message = connect_error(&url, system).await;
    assert!(
        message.contains("TLS certificate verification failed")
            && message.contains("the system's trust store"),
        "{message}"
    );

    // No verification (tests only): the same broker, no CA at all.
    let insecure = TlsOptions {
        ca_file: None,
        accept_invalid_certs: true,
        ..pki.trust_with_client_cert()
    };
    let bus = AmqpBus::connect(settings(&url, insecure)).await.unwrap();
    round_trip(&bus, "unverified").await;
    bus.close().await;

    // The broker requires a client certificate: without one, the failure says so, whether its
    // alert was read (a TLS error) or lost to the reset after it (a broker error, retried).
    let message = connect_failure(&url, pki.trust()).await;
    assert!(
        message.contains("refused the TLS handshake") && message.contains("no client certificate"),
        "{message}"
    );

    // A CA file that is not there is a settings error naming it, before any connection.
    let missing = TlsOptions {
        ca_file: Some(pki.dir().join("absent.pem")),
        ..TlsOptions::default()
    };
    let message = connect_error(&url, missing).await;
    assert!(message.contains("absent.pem"), "{message}");
    eprintln!("TLS cases took {:?} in all", started.elapsed());
}
