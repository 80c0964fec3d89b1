//! The websocket JSON-RPC client: answers by id, one shared connection per URL, timeouts, the
//! body cap, node down and back, the connection closed with its last handle.

use std::time::Duration;

use serde_json::json;

use monitor_strategies::{WsConfig, WsError, WsPool};

use super::Replay;

const T: Duration = Duration::from_secs(5);

async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn substrate_rpc_answers_by_id_over_one_shared_connection() {
    let replay = Replay::start("substrate-dev", "validator").await;
    let pool = WsPool::default();
    let a = pool.client(&replay.url(), T).unwrap();
    let b = pool.client(&replay.url(), T).unwrap();
    // Concurrent calls on the shared connection each get their own answer.
    let (h, s, p) = tokio::join!(
        a.call("system_health", json!([])),
        b.call("system_syncState", json!([])),
        a.call("system_properties", json!([])),
    );
    assert_eq!(h.unwrap()["isSyncing"], false);
    assert_eq!(s.unwrap()["currentBlock"], 102);
    assert_eq!(p.unwrap()["ss58Format"], 42);
    assert_eq!(replay.open_connections(), 1);
    assert_eq!(pool.live_connections(), 1);
    // A JSON-RPC error is an error, not a result.
    let e = a.call("no_such_method", json!([])).await.unwrap_err();
    assert!(matches!(e, WsError::Rpc { .. }), "{e:?}");
    // The last handle closes the connection.
    drop(a);
    drop(b);
    eventually(|| replay.open_connections() == 0).await;
    assert_eq!(pool.live_connections(), 0);
}

#[tokio::test]
async fn substrate_rpc_switches_rounds() {
    let replay = Replay::start("substrate-dev", "validator").await;
    let pool = WsPool::default();
    let c = pool.client(&replay.url(), T).unwrap();
    assert_eq!(
        c.call("system_syncState", json!([])).await.unwrap()["currentBlock"],
        102
    );
    replay.set_round("second");
    assert_eq!(
        c.call("system_syncState", json!([])).await.unwrap()["currentBlock"],
        107
    );
    assert!(replay.calls().iter().all(|m| m == "system_syncState"));
}

#[tokio::test]
async fn substrate_rpc_down_then_back_reconnects_after_backoff() {
    let mut replay = Replay::start("substrate-dev", "validator").await;
    let pool = WsPool::new(WsConfig {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    });
    let c = pool.client(&replay.url(), T).unwrap();
    c.call("system_health", json!([])).await.unwrap();
    replay.down().await;
    let e = c.call("system_health", json!([])).await.unwrap_err();
    assert!(e.is_down(), "{e:?}");
    // Refused: a backoff starts, during which calls fail at once without connecting.
    let e = c.call("system_health", json!([])).await.unwrap_err();
    assert!(e.is_down(), "{e:?}");
    replay.up().await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut ok = false;
    for _ in 0..20 {
        if c.call("system_health", json!([])).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the client reconnected");
}

#[tokio::test]
async fn substrate_rpc_times_out_and_caps_answers() {
    // A listener that accepts the TCP connection and never answers the handshake.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", silent.local_addr().unwrap());
    let pool = WsPool::default();
    let c = pool.client(&url, Duration::from_millis(200)).unwrap();
    let started = std::time::Instant::now();
    let e = c.call("system_health", json!([])).await.unwrap_err();
    assert!(e.is_down(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Metadata (~2.7 MB of hex) above a 1 MB cap: the call fails, nothing panics.
    let replay = Replay::start("substrate-dev", "validator").await;
    let small = WsPool::new(WsConfig {
        max_message_bytes: 1024 * 1024,
        ..WsConfig::default()
    });
    let c = small.client(&replay.url(), T).unwrap();
    let e = c.call("state_getMetadata", json!([])).await.unwrap_err();
    assert!(e.is_down(), "{e:?}");
    assert!(matches!(
        pool.client("http://x", T),
        Err(WsError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn substrate_rpc_speaks_wss_unverified_by_default_and_verifies_when_asked() {
    let replay = Replay::start_tls("substrate-dev", "validator").await;
    assert!(replay.url().starts_with("wss://"));
    let pool = WsPool::default();
    let c = pool.client(&replay.url(), T).unwrap();
    assert_eq!(
        c.call("system_health", json!([])).await.unwrap()["isSyncing"],
        false
    );
    // With verification on, the self-signed certificate is refused: the node reads as down.
    let verifying = WsPool::new(WsConfig {
        verify_tls: true,
        ..WsConfig::default()
    });
    let c = verifying.client(&replay.url(), T).unwrap();
    let e = c.call("system_health", json!([])).await.unwrap_err();
    assert!(e.is_down(), "{e:?}");
}

#[test]
fn substrate_rpc_outside_a_runtime_is_an_error_not_a_panic() {
    let pool = WsPool::default();
    assert!(pool.client("ws://127.0.0.1:1", T).is_err());
}

#[tokio::test]
async fn substrate_rpc_garbage_fails_the_calls_in_flight_as_malformed_at_once() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // A node that answers every request with a text frame that is not JSON, then, on the
    // connection's second request, with a proper answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://user:secret@{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let mut n = 0;
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"].clone();
            n += 1;
            let answer = if n == 1 {
                "\u{1}garbage{{{ not json".to_owned()
            } else {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"fine"}}"#)
            };
            ws.send(Message::text(answer)).await.unwrap();
        }
    });
    let pool = WsPool::default();
    // A timeout far above the test's run time: a call that waited for it would hang the test.
    let c = pool.client(&url, Duration::from_secs(3600)).unwrap();
    let e = c.call("system_health", json!([])).await.unwrap_err();
    assert!(matches!(e, WsError::Malformed { .. }), "{e:?}");
    assert!(!e.is_down(), "{e:?}");
    // The connection stays up: the next call is answered on it.
    assert_eq!(c.call("system_health", json!([])).await.unwrap(), "fine");
    drop(c);
    server.await.unwrap();
}
