//! The system monitor's fetch on a connection it keeps between rounds (`Http::get_into_kept`,
//! hyper's connection-level client polled in the monitor's task): reuse, a kept connection the
//! server closed, `Connection: close` without a keep-alive place, the monitors of one host beyond
//! `max_idle_per_host` on the pool, and hostile answers failing
//! within the timeout with the kind of the reqwest path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use monitor_core::{PeriodGroup, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{
    ConnectionLimits, Http, HttpErrorKind, KeptConnection, StrategySettings, Target,
};

use crate::{common, node_exporter_fixture, system_monitor};

fn http(settings: &StrategySettings) -> Http {
    settings
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap()
}

async fn get(
    http: &Http,
    url: &str,
    kept: &mut KeptConnection,
) -> Result<(u16, Vec<u8>), monitor_strategies::HttpError> {
    let parsed = reqwest::Url::parse(url).unwrap();
    let mut body = Vec::new();
    let status = http.get_into_kept(&parsed, url, &mut body, kept).await?;
    Ok((status, body))
}

#[tokio::test]
async fn the_connection_is_kept_across_rounds() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let url = server.url("/metrics");
    let settings = StrategySettings::default();
    let mut monitor = system_monitor(&url, &settings);
    for _ in 0..3 {
        let body = common::one_body(&mut monitor, RawDataKey::System).await;
        assert!(body.get("result").is_some(), "{body}");
    }
    assert_eq!(server.hits("/metrics"), 3);
    assert_eq!(server.connections(), 1);
    let requests = server.requests();
    let port = server.addr().port();
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/metrics");
        assert_eq!(r.header("host"), Some(format!("127.0.0.1:{port}").as_str()));
        assert!(r
            .header("user-agent")
            .unwrap()
            .starts_with("panic-monitors/"));
        assert_eq!(r.header("accept"), Some("*/*"));
        assert_eq!(r.header("connection"), None);
        assert_eq!(r.header("authorization"), None);
    }
}

#[tokio::test]
async fn userinfo_is_sent_as_basic_auth_and_never_shown() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok("x 1\n"));
    let url = server
        .url("/metrics")
        .replacen("://", "://us%40er:s3cret@", 1);
    let mut kept = KeptConnection::default();
    let (status, body) = get(&http(&StrategySettings::default()), &url, &mut kept)
        .await
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"x 1\n"[..]));
    // base64("us@er:s3cret")
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic dXNAZXI6czNjcmV0")
    );
    assert!(!format!("{kept:?}").contains("s3cret"));
    let refused = refused_url("/metrics")
        .await
        .unwrap()
        .replacen("://", "://u:s3cret@", 1);
    let err = get(&http(&StrategySettings::default()), &refused, &mut kept)
        .await
        .unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Down);
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// A server that answers the first request of each connection and closes the connection, without
/// an answer, at the second: the kept connection fails before any response byte.
async fn closing_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                let mut answered = false;
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        continue;
                    }
                    if answered {
                        // The second request on this connection: close without a byte.
                        return;
                    }
                    seen.clear();
                    answered = true;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nx 1\n")
                        .await;
                }
            });
        }
    });
    (format!("http://{addr}/metrics"), accepted, task)
}

#[tokio::test]
async fn a_kept_connection_closed_by_the_server_is_retried_on_a_new_one() {
    let (url, accepted, task) = closing_server().await;
    let http = http(&StrategySettings::default());
    let mut kept = KeptConnection::default();
    for round in 1..=3 {
        let (status, body) = get(&http, &url, &mut kept).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"x 1\n"[..]), "{round}");
        assert!(kept.is_open());
        assert_eq!(accepted.load(Ordering::SeqCst), round);
    }
    task.abort();
}

#[tokio::test]
async fn without_a_keep_alive_place_the_request_says_close_and_nothing_is_kept() {
    let settings = StrategySettings::default().with_connection_limits(ConnectionLimits {
        max_kept_hosts: 1,
        max_idle_per_host: 1,
        ..ConnectionLimits::default()
    });
    let a = TestServer::start().await.unwrap();
    a.route("/metrics", Reply::ok("x 1\n"));
    let b = TestServer::start().await.unwrap();
    b.route("/metrics", Reply::ok("x 1\n"));
    let http = http(&settings);
    // `a` takes the one host place and the one kept-connection place.
    let mut on_a = KeptConnection::default();
    let mut on_b = KeptConnection::default();
    let mut also_on_a = KeptConnection::default();
    for _ in 0..2 {
        get(&http, &a.url("/metrics"), &mut on_a).await.unwrap();
        get(&http, &b.url("/metrics"), &mut on_b).await.unwrap();
        // The same host, another connection: no kept-connection place left.
        get(&http, &a.url("/metrics"), &mut also_on_a)
            .await
            .unwrap();
        assert!(on_a.is_open());
        assert!(!on_b.is_open());
        assert!(!also_on_a.is_open());
    }
    let connection = |s: &TestServer| {
        s.requests()
            .iter()
            .map(|r| r.header("connection").map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let close = Some("close".to_owned());
    assert_eq!(connection(&b), [close.clone(), close.clone()]);
    assert_eq!(b.connections(), 2);
    assert_eq!(connection(&a), [None, close.clone(), None, close]);
    assert_eq!(a.connections(), 3);
    // The place comes back when the connection is dropped.
    drop(on_a);
    get(&http, &a.url("/metrics"), &mut also_on_a)
        .await
        .unwrap();
    assert!(also_on_a.is_open());
}

#[tokio::test]
async fn monitors_of_one_host_beyond_max_idle_per_host_share_the_pool() {
    let settings = StrategySettings::default().with_connection_limits(ConnectionLimits {
        max_idle_per_host: 2,
        ..ConnectionLimits::default()
    });
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok("x 1\n"));
    let url = server.url("/metrics");
    let http = http(&settings);
    let mut kept: Vec<KeptConnection> = (0..6).map(|_| KeptConnection::default()).collect();
    for _ in 0..3 {
        for k in &mut kept {
            get(&http, &url, k).await.unwrap();
        }
    }
    // Two monitors keep a connection each; the other four take turns on the pool's (one, as
    // their requests come one after another). Nobody was told to close.
    assert_eq!(kept.iter().filter(|k| k.is_open()).count(), 2);
    assert_eq!(server.connections(), 3);
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("connection").is_none()));
    // A monitor that gives its connection up makes room for another.
    kept.truncate(1);
    let mut late = KeptConnection::default();
    get(&http, &url, &mut late).await.unwrap();
    assert!(late.is_open());
}

#[tokio::test]
async fn a_chunked_body_is_read_whole_on_a_kept_connection() {
    let fixture = node_exporter_fixture();
    let server = TestServer::start().await.unwrap();
    server.route(
        "/metrics",
        Reply::ok(fixture.clone()).mode(BodyMode::Chunked(1000)),
    );
    let http = http(&StrategySettings::default());
    let mut kept = KeptConnection::default();
    for _ in 0..2 {
        let (status, body) = get(&http, &server.url("/metrics"), &mut kept)
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(Bytes::from(body), fixture);
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn hostile_answers_fail_within_the_timeout_with_the_kind_of_the_reqwest_path() {
    let timeout = Duration::from_millis(300);
    let settings = StrategySettings::default()
        .with_request_timeout(timeout)
        .with_max_body_bytes(64 * 1024);
    let http = http(&settings);
    let cases = [
        (
            "slow head",
            Reply::ok("").mode(BodyMode::SlowHead(Duration::from_millis(20))),
            HttpErrorKind::Down,
        ),
        (
            "stalled body",
            Reply::ok(vec![b' '; 10_000]).mode(BodyMode::Stalled(100)),
            HttpErrorKind::Down,
        ),
        (
            "endless body",
            Reply::ok(vec![b'a'; 8192]).mode(BodyMode::Endless),
            HttpErrorKind::Read,
        ),
        (
            "over the cap",
            Reply::ok(vec![b'a'; 128 * 1024]),
            HttpErrorKind::Read,
        ),
        (
            "1 MB header",
            Reply::ok("x 1\n").header("x-huge", &"a".repeat(1024 * 1024)),
            HttpErrorKind::Down,
        ),
        ("no answer", Reply::no_response(), HttpErrorKind::Down),
        (
            "closed",
            Reply::ok("").mode(BodyMode::Close),
            HttpErrorKind::Down,
        ),
        (
            "truncated",
            Reply::ok(vec![b'a'; 1000]).mode(BodyMode::Truncated(10)),
            HttpErrorKind::Read,
        ),
        (
            "broken chunking",
            Reply::ok(vec![b'a'; 1000]).mode(BodyMode::BrokenChunked),
            HttpErrorKind::Read,
        ),
        (
            "garbage",
            Reply::ok("").mode(BodyMode::Raw(Bytes::from_static(
                b"SSH-2.0-OpenSSH\r\n\r\n",
            ))),
            HttpErrorKind::Down,
        ),
    ];
    for (name, reply, kind) in cases {
        let server = TestServer::start().await.unwrap();
        server.route("/metrics", reply);
        let mut kept = KeptConnection::default();
        let err = get(&http, &server.url("/metrics"), &mut kept)
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind, "{name}: {err}");
        // The reqwest path on the same answer: the same kind.
        let url = server.url("/metrics");
        let mut body = Vec::new();
        let reqwest_err = http
            .get_into(&reqwest::Url::parse(&url).unwrap(), &url, &mut body)
            .await
            .unwrap_err();
        assert_eq!(reqwest_err.kind, kind, "{name}: {reqwest_err}");
        assert!(!kept.is_open(), "{name}");
        if name == "stalled body" || name == "slow head" || name == "no answer" {
            assert_eq!(
                err.reason,
                format!("no complete answer within {timeout:?}"),
                "{name}"
            );
        }
        if name == "over the cap" {
            assert_eq!(
                err.reason,
                "body of 131072 bytes or more is over the cap of 65536 bytes"
            );
        }
        if matches!(
            name,
            "stalled body" | "slow head" | "no answer" | "over the cap"
        ) {
            assert_eq!(err.reason, reqwest_err.reason, "{name}");
        }
    }
}

#[tokio::test]
async fn redirects_and_https_go_through_the_reqwest_path() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/metrics",
        Reply::status(302, "").header("location", "/real"),
    );
    server.route("/real", Reply::ok("x 1\n"));
    let http = http(&StrategySettings::default());
    let mut kept = KeptConnection::default();
    let (status, body) = get(&http, &server.url("/metrics"), &mut kept)
        .await
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"x 1\n"[..]));
    assert_eq!(server.hits("/metrics"), 2);
    assert_eq!(server.hits("/real"), 1);

    let tls = TestServer::start_tls().await.unwrap();
    tls.route("/metrics", Reply::ok("x 1\n"));
    let mut kept = KeptConnection::default();
    let (status, _) = get(&http, &tls.url("/metrics"), &mut kept).await.unwrap();
    assert_eq!(status, 200);
    assert!(!kept.is_open());
}

#[tokio::test]
async fn dns_names_and_ipv6_literals_are_connected_with_the_right_host_header() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok("x 1\n"));
    let port = server.addr().port();
    let http = http(&StrategySettings::default());
    let mut kept = KeptConnection::default();
    let url = format!("http://localhost:{port}/metrics?a=1");
    let (status, _) = get(&http, &url, &mut kept).await.unwrap();
    assert_eq!(status, 200);
    let r = &server.requests()[0];
    assert_eq!(r.header("host"), Some(format!("localhost:{port}").as_str()));
    assert_eq!(r.target, "/metrics?a=1");

    // IPv6 loopback, where the machine has it.
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nx 1\n")
            .await
            .unwrap();
        String::from_utf8(seen).unwrap()
    });
    let url = format!("http://[::1]:{port}/metrics");
    let mut kept = KeptConnection::default();
    let (status, body) = get(&http, &url, &mut kept).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"x 1\n"[..]));
    let head = task.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!("\r\nhost: [::1]:{port}\r\n")),
        "{head}"
    );
}

#[tokio::test]
async fn an_exchange_cancelled_from_outside_does_not_leave_its_connection_for_the_next() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/metrics",
        Reply::ok(vec![b'a'; 10_000]).mode(BodyMode::Stalled(100)),
    );
    server.route("/ok", Reply::ok("x 1\n"));
    let http = http(&StrategySettings::default());
    let mut kept = KeptConnection::default();
    let url = server.url("/metrics");
    // The round is dropped mid-body (as the manager drops a hung round).
    let cancelled =
        tokio::time::timeout(Duration::from_millis(200), get(&http, &url, &mut kept)).await;
    assert!(cancelled.is_err());
    assert_eq!(server.connections(), 1);
    // Another URL on the same host: a fresh connection, never the half-read one.
    let (status, body) = get(&http, &server.url("/ok"), &mut kept).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"x 1\n"[..]));
    assert_eq!(server.connections(), 2);
    // The same URL again after a cancelled exchange: a fresh connection too.
    let cancelled =
        tokio::time::timeout(Duration::from_millis(200), get(&http, &url, &mut kept)).await;
    assert!(cancelled.is_err());
    let cancelled =
        tokio::time::timeout(Duration::from_millis(200), get(&http, &url, &mut kept)).await;
    assert!(cancelled.is_err());
    assert_eq!(server.connections(), 4);
}
