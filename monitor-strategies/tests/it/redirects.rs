//! Issue #16: monitored endpoints follow redirects to the same host and port only, at most
//! `MAX_REDIRECTS` hops, and a JSON-RPC POST only through 307/308 (method and body kept); every
//! other redirect is an error naming it, and the other host never sees a request.

use monitor_core::{Monitor, PeriodGroup};
use monitor_strategies::testing::{Reply, TestServer};
use monitor_strategies::{StrategySettings, Target, MAX_REDIRECTS};
use serde_json::json;

use crate::{node_exporter_fixture, system_monitor};

fn redirect(status: u16, to: &str) -> Reply {
    Reply::status(status, "").header("location", to)
}

#[tokio::test]
async fn same_host_redirects_are_followed_other_hosts_refused() {
    let server = TestServer::start().await.unwrap();
    let other = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    server.route("/moved", redirect(302, "/metrics"));
    server.route("/away", redirect(302, &other.url("/metrics")));
    other.route("/metrics", Reply::ok(node_exporter_fixture()));
    let settings = StrategySettings::default();

    // Same host and port: followed, the round has data.
    let mut monitor = system_monitor(&server.url("/moved"), &settings);
    let publications = monitor.round().await.unwrap();
    assert!(
        publications[0].body.get("result").is_some(),
        "{:?}",
        publications[0].body
    );

    // Another port of the same machine: refused, an error envelope, nothing sent there.
    let mut monitor = system_monitor(&server.url("/away"), &settings);
    let publications = monitor.round().await.unwrap();
    let error = &publications[0].body["error"];
    assert_eq!(error["code"], 5005, "{error}");
    assert_eq!(other.hits("/metrics"), 0, "the other host was contacted");

    // The error names the redirect.
    let http = settings
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap();
    let err = http
        .get(&server.url("/away"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("redirect refused: HTTP 302"), "{err}");
    assert!(err.contains(&other.addr().port().to_string()), "{err}");
}

#[tokio::test]
async fn a_redirect_loop_stops_after_a_few_hops() {
    let server = TestServer::start().await.unwrap();
    server.route("/a", redirect(301, "/b"));
    server.route("/b", redirect(301, "/a"));
    let settings = StrategySettings::default();
    let http = settings
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap();
    let err = http.get(&server.url("/a")).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("more than {MAX_REDIRECTS} redirects")),
        "{err}"
    );
    let hops = server.hits("/a") + server.hits("/b");
    assert_eq!(hops, MAX_REDIRECTS + 1, "requests in the loop");
}

#[tokio::test]
async fn a_json_rpc_post_keeps_its_method_or_fails() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/rpc",
        Reply::json(r#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#),
    );
    server.route("/found", redirect(302, "/rpc"));
    server.route("/temporary", redirect(307, "/rpc"));
    server.route("/permanent", redirect(308, "/rpc"));
    let settings = StrategySettings::default();
    let http = settings.evm_http(PeriodGroup::Node).unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});

    // 302 would turn the POST into a GET: refused, and /rpc never sees a GET.
    let err = http
        .post_json(&server.url("/found"), &call)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only 307 and 308"), "{err}");
    assert_eq!(server.hits("/rpc"), 0);

    // 307 and 308 keep the method and the body.
    for path in ["/temporary", "/permanent"] {
        let response = http.post_json(&server.url(path), &call).await.unwrap();
        assert_eq!(response.status, 200);
    }
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rpc")
        .collect();
    assert_eq!(requests.len(), 2);
    for r in requests {
        assert_eq!(r.method, "POST");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, call);
    }
}
