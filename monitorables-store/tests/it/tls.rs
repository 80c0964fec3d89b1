//! `rediss://` against a `redis-server` that really speaks TLS (`--tls-port`, certificates made by
//! the test; two servers, one requiring client certificates), killed at the end: the right CA
//! carries a write and a read; the wrong CA fails saying certificate verification failed, naming
//! the URL (password redacted) and the CA file; no verification works; a server requiring a client
//! certificate accepts ours and refuses us, saying why, without one.

use monitor_bus::testing::tls::{Pki, TlsRedis};
use monitor_bus::TlsOptions;
use monitor_core::MonitorableKey;
use monitorables_store::{MonitorablesStore, RedisStore, StoreError};

use crate::common::{msg, src};

const NS: &str = "tls_test";

async fn tls_error(url: &str, tls: &TlsOptions) -> String {
    let store = RedisStore::open_with_tls(url, NS, tls).unwrap();
    match store.ping().await {
        Err(StoreError::Tls(message)) => {
            // The service retries it as it retries an outage.
            assert!(StoreError::Tls(message.clone()).is_transient());
            message
        }
        other => panic!("expected a TLS error from {url}, got {other:?}"),
    }
}

#[tokio::test]
async fn rediss_with_a_ca_a_client_certificate_and_their_failures() {
    let pki = Pki::generate();
    let server = TlsRedis::start(&pki, false);
    let mutual = TlsRedis::start(&pki, true);

    // The right CA: the store writes, and a store on another connection reads it back.
    let store = RedisStore::open_with_tls(&server.url(), NS, &pki.trust()).unwrap();
    let key = MonitorableKey::parse("cosmos.systems").unwrap();
    store
        .apply(
            &key,
            &msg(
                "System Monitors Manager",
                vec![src("c1", "hub", "s1", "host")],
            ),
        )
        .await
        .unwrap();
    let reader = RedisStore::open_with_tls(&server.url(), NS, &pki.trust()).unwrap();
    let doc = reader.load("cosmos").await.unwrap();
    assert!(
        serde_json::to_string(&doc)
            .unwrap()
            .contains(r#""s1":{"name":"host""#),
        "{doc:?}"
    );

    // The wrong CA: verification fails, saying so, with the URL redacted and the CA file named.
    let with_password = format!("rediss://:s3cret@127.0.0.1:{}/", server.port);
    let message = tls_error(&with_password, &pki.trust_wrong_ca()).await;
    assert!(
        message.contains("TLS certificate verification failed"),
        "{message}"
    );
    assert!(
        message.contains(&format!("rediss://:***@127.0.0.1:{}/", server.port)),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(
        message.contains(&format!("the CA file `{}`", pki.wrong_ca.display())),
        "{message}"
    );

    // No CA option: the system's trust store does not know the test CA.
    let message = tls_error(&server.url(), &TlsOptions::default()).await;
    assert!(
        message.contains("TLS certificate verification failed")
            && message.contains("the system's trust store"),
        "{message}"
    );

    // No verification (tests only): works without any CA.
    let insecure = TlsOptions {
        accept_invalid_certs: true,
        ..TlsOptions::default()
    };
    let store = RedisStore::open_with_tls(&server.url(), NS, &insecure).unwrap();
    store.ping().await.unwrap();
    assert!(!store.load("cosmos").await.unwrap().is_empty());

    // A server requiring client certificates: ours is accepted; without one, it says why.
    let store =
        RedisStore::open_with_tls(&mutual.url(), NS, &pki.trust_with_client_cert()).unwrap();
    store
        .apply(&key, &msg("m", vec![src("c1", "hub", "s2", "h2")]))
        .await
        .unwrap();
    assert!(!store.load("cosmos").await.unwrap().is_empty());
    let message = tls_error(&mutual.url(), &pki.trust()).await;
    assert!(
        message.contains("refused the TLS handshake") && message.contains("no client certificate"),
        "{message}"
    );

    // A key without its certificate is a settings error, before any connection.
    let half = TlsOptions {
        client_key_file: Some(pki.client_key.clone()),
        ..pki.trust()
    };
    let err = RedisStore::open_with_tls(&server.url(), NS, &half).unwrap_err();
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("without its certificate")),
        "{err}"
    );
}
