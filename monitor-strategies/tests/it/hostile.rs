//! Issue #16, "every round says something": every monitor type against every hostile target.
//!
//! For each (type, case) one round runs against a server that is hostile on every path (or a
//! refused port); it must finish within [`BOUND`] and leave at least one publication on the
//! type's `raw_data` key: `round()` returns data or error envelopes, or it returns a `RoundError`
//! and `failed_round` turns it into one. Every error envelope has PANIC's shape
//! (`{"error": {"meta_data", "message", "code"}}`), and the code is the one [`EXPECTED`] gives for
//! that (type, case) (PANIC's code for the class of failure, spec §4). URLs carry
//! `user:secret@`: the secret must appear in no envelope message and no `RoundError`.
//!
//! `cargo test -p monitor-strategies --test it hostile -- --nocapture` prints the matrix
//! (docs/RELIABILITY.md, "Hostile targets").

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use monitor_core::{Monitor, PeriodGroup, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{
    ChainlinkContractsConfig, ChainlinkContractsMonitor, ChainlinkNodeConfig, ChainlinkNodeMonitor,
    CosmosNetworkMonitor, CosmosNodeConfig, CosmosNodeMonitor, DockerHubMonitor,
    DockerHubRepoConfig, EvmNodeConfig, EvmNodeMonitor, GithubMonitor, GithubRepoConfig,
    StrategySettings, SubstrateDataSource, SubstrateNetworkMonitor, SubstrateNodeConfig,
    SubstrateNodeMonitor, SystemConfig, SystemMonitor, Target, WsConfig, WsPool,
};

/// A round that has not finished after this is a hang (a failure, never a timing assertion: the
/// rounds take the request timeout or less).
const BOUND: Duration = Duration::from_secs(20);
/// The request timeout of the monitors facing a target that makes them wait (never answers,
/// slow headers, a stalled body, a silent websocket): their answer does not depend on speed.
const SHORT: Duration = Duration::from_millis(300);
/// The request timeout of the others: long enough that a loaded machine never turns a quick
/// hostile answer into a timeout.
const LONG: Duration = Duration::from_secs(10);
/// How many (type, case) rounds run at once.
const PARALLEL: usize = 16;
/// The body cap of every monitor here.
const CAP: usize = 256 * 1024;
/// The password in every URL.
const SECRET: &str = "secret";

/// The gzip bomb: 64 MiB of zeros compressed to 65,250 bytes (Python's `gzip`, level 9, mtime
/// 0), under [`CAP`]: only decompression would blow it up.
const BOMB: &[u8] = include_bytes!("hostile/bomb.gz");

/// The monitor types, in the table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    System,
    Github,
    Dockerhub,
    CosmosNode,
    CosmosNetwork,
    ChainlinkNode,
    EvmNode,
    ChainlinkContracts,
    /// The contracts monitor with a healthy feed list: the hostile target is its EVM node and
    /// the Chainlink node's Prometheus.
    ChainlinkContractsEvm,
    SubstrateNode,
    SubstrateNetwork,
}

const TYPES: [Type; 11] = [
    Type::System,
    Type::Github,
    Type::Dockerhub,
    Type::CosmosNode,
    Type::CosmosNetwork,
    Type::ChainlinkNode,
    Type::EvmNode,
    Type::ChainlinkContracts,
    Type::ChainlinkContractsEvm,
    Type::SubstrateNode,
    Type::SubstrateNetwork,
];

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::System => "system",
            Type::Github => "github",
            Type::Dockerhub => "dockerhub",
            Type::CosmosNode => "node.cosmos",
            Type::CosmosNetwork => "network.cosmos",
            Type::ChainlinkNode => "node.chainlink",
            Type::EvmNode => "node.evm",
            Type::ChainlinkContracts => "contracts.chainlink",
            Type::ChainlinkContractsEvm => "contracts.chainlink (feeds ok)",
            Type::SubstrateNode => "node.substrate",
            Type::SubstrateNetwork => "network.substrate",
        }
    }

    fn key(self) -> RawDataKey {
        match self {
            Type::System => RawDataKey::System,
            Type::Github => RawDataKey::Github,
            Type::Dockerhub => RawDataKey::Dockerhub,
            Type::CosmosNode => RawDataKey::CosmosNode,
            Type::CosmosNetwork => RawDataKey::CosmosNetwork,
            Type::ChainlinkNode => RawDataKey::ChainlinkNode,
            Type::EvmNode => RawDataKey::EvmNode,
            Type::ChainlinkContracts | Type::ChainlinkContractsEvm => {
                RawDataKey::ChainlinkContracts
            }
            Type::SubstrateNode => RawDataKey::SubstrateNode,
            Type::SubstrateNetwork => RawDataKey::SubstrateNetwork,
        }
    }

    fn websocket(self) -> bool {
        matches!(self, Type::SubstrateNode | Type::SubstrateNetwork)
    }
}

/// A hostile target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Refused,
    NeverAnswers,
    SlowHeaders,
    BodyStalls,
    EndlessBody,
    OverCap,
    HugeHeader,
    GzipBomb,
    Html,
    Garbage,
    NotHttp,
    InvalidUtf8,
    NaN,
    HugeNumber,
    DeepNesting,
    RedirectLoop,
    RedirectElsewhere,
    Status500,
    Empty200,
    // Websocket only: the upgrade succeeds, then the frames are hostile.
    WsGarbageText,
    WsBinary,
    WsWrongResult,
    WsRpcError,
    WsNaN,
    WsDeepNesting,
    WsClose,
    WsSilent,
}

const CASES: [Case; 27] = [
    Case::Refused,
    Case::NeverAnswers,
    Case::SlowHeaders,
    Case::BodyStalls,
    Case::EndlessBody,
    Case::OverCap,
    Case::HugeHeader,
    Case::GzipBomb,
    Case::Html,
    Case::Garbage,
    Case::NotHttp,
    Case::InvalidUtf8,
    Case::NaN,
    Case::HugeNumber,
    Case::DeepNesting,
    Case::RedirectLoop,
    Case::RedirectElsewhere,
    Case::Status500,
    Case::Empty200,
    Case::WsGarbageText,
    Case::WsBinary,
    Case::WsWrongResult,
    Case::WsRpcError,
    Case::WsNaN,
    Case::WsDeepNesting,
    Case::WsClose,
    Case::WsSilent,
];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Refused => "refused",
            Case::NeverAnswers => "never answers",
            Case::SlowHeaders => "slow headers",
            Case::BodyStalls => "body stalls",
            Case::EndlessBody => "endless body",
            Case::OverCap => "body over cap",
            Case::HugeHeader => "1 MB header",
            Case::GzipBomb => "gzip bomb",
            Case::Html => "HTML page",
            Case::Garbage => "garbage bytes",
            Case::NotHttp => "not HTTP",
            Case::InvalidUtf8 => "invalid UTF-8",
            Case::NaN => "JSON NaN",
            Case::HugeNumber => "JSON 1e400",
            Case::DeepNesting => "100k nesting",
            Case::RedirectLoop => "redirect loop",
            Case::RedirectElsewhere => "redirect elsewhere",
            Case::Status500 => "HTTP 500",
            Case::Empty200 => "empty 200",
            Case::WsGarbageText => "ws garbage text",
            Case::WsBinary => "ws binary frame",
            Case::WsWrongResult => "ws wrong result",
            Case::WsRpcError => "ws rpc error",
            Case::WsNaN => "ws NaN",
            Case::WsDeepNesting => "ws 100k nesting",
            Case::WsClose => "ws closes",
            Case::WsSilent => "ws silent",
        }
    }

    /// Whether the target makes the monitor wait for its timeout. A websocket message that is
    /// not a JSON object fails the calls in flight at once (malformed), so those cases run with
    /// the long timeout: a call that waited for it would read as down, not as 5033.
    fn waits(self) -> bool {
        matches!(
            self,
            Case::NeverAnswers | Case::SlowHeaders | Case::BodyStalls | Case::WsSilent
        )
    }

    fn websocket_only(self) -> bool {
        self.frames().is_some() || matches!(self, Case::WsClose | Case::WsSilent)
    }

    /// The text answering each JSON-RPC request (`{id}` replaced by the request's id), for the
    /// websocket cases that answer.
    fn frames(self) -> Option<WsAnswer> {
        Some(match self {
            Case::WsGarbageText => WsAnswer::Text("\u{1}garbage{{{ not json"),
            Case::WsBinary => WsAnswer::Binary,
            Case::WsWrongResult => WsAnswer::Text(r#"{"jsonrpc":"2.0","id":{id},"result":12345}"#),
            Case::WsRpcError => WsAnswer::Text(
                r#"{"jsonrpc":"2.0","id":{id},"error":{"code":-32000,"message":"boom"}}"#,
            ),
            Case::WsNaN => WsAnswer::Text(r#"{"jsonrpc":"2.0","id":{id},"result":NaN}"#),
            Case::WsDeepNesting => WsAnswer::Nested,
            _ => return None,
        })
    }
}

/// How the hostile websocket server answers each request.
#[derive(Debug, Clone, Copy)]
enum WsAnswer {
    Text(&'static str),
    Binary,
    Nested,
}

/// What a target is made of: kept alive for the round.
struct Hostile {
    /// `http://user:secret@127.0.0.1:port` (no trailing slash).
    base: String,
    _servers: Vec<TestServer>,
    _ws: Option<JoinSet<()>>,
}

fn with_secret(url: &str) -> String {
    url.replacen("://", &format!("://user:{SECRET}@"), 1)
}

fn nested() -> String {
    "[".repeat(100_000)
}

/// The hostile HTTP reply of `case`.
async fn reply(case: Case, other: &mut Vec<TestServer>) -> Reply {
    match case {
        Case::NeverAnswers => Reply::no_response(),
        Case::SlowHeaders => Reply::ok("").mode(BodyMode::SlowHead(Duration::from_millis(50))),
        Case::BodyStalls => Reply::json(vec![b' '; 10_000]).mode(BodyMode::Stalled(100)),
        Case::EndlessBody => Reply::json(vec![b'['; 8192]).mode(BodyMode::Endless),
        Case::OverCap => Reply::json(vec![b' '; 2 * CAP]),
        Case::HugeHeader => Reply::json("{}").header("x-huge", &"a".repeat(1024 * 1024)),
        Case::GzipBomb => Reply::ok(Bytes::from_static(BOMB))
            .header("content-encoding", "gzip")
            .header("content-type", "application/json"),
        Case::Html => Reply::ok("<!DOCTYPE html><html><body><h1>It works!</h1></body></html>\n")
            .header("content-type", "text/html"),
        Case::Garbage => Reply::ok(garbage()),
        Case::NotHttp => Reply::ok("").mode(BodyMode::Raw(Bytes::from_static(
            b"SSH-2.0-OpenSSH_9.2\r\n\xff\x00\x13garbage\r\n\r\n",
        ))),
        Case::InvalidUtf8 => Reply::json(Bytes::from_static(b"{\"result\": \"\xff\xfe\xfd\"}")),
        Case::NaN => Reply::json(r#"{"jsonrpc":"2.0","id":1,"result":NaN,"count":NaN}"#),
        Case::HugeNumber => Reply::json(r#"{"jsonrpc":"2.0","id":1,"result":1e400,"count":1e400}"#),
        Case::DeepNesting => Reply::json(nested()),
        Case::RedirectLoop => Reply::status(302, "").header("location", "/loop"),
        Case::RedirectElsewhere => {
            let elsewhere = TestServer::start().await.unwrap();
            elsewhere.route_any(Reply::json("{}"));
            let to = elsewhere.url("/elsewhere");
            other.push(elsewhere);
            Reply::status(302, "").header("location", &to)
        }
        Case::Status500 => Reply::status(500, "Internal Server Error"),
        Case::Empty200 => Reply::ok(""),
        Case::Refused | Case::WsClose | Case::WsSilent => unreachable!("no HTTP reply"),
        _ => unreachable!("websocket frames"),
    }
}

/// Deterministic non-text bytes.
fn garbage() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn target(case: Case) -> Hostile {
    if case == Case::Refused {
        let url = refused_url("").await.unwrap();
        return Hostile {
            base: with_secret(&url),
            _servers: Vec::new(),
            _ws: None,
        };
    }
    if case.websocket_only() {
        let (addr, tasks) = ws_server(case).await;
        return Hostile {
            base: with_secret(&format!("http://{addr}")),
            _servers: Vec::new(),
            _ws: Some(tasks),
        };
    }
    let mut servers = Vec::new();
    let reply = reply(case, &mut servers).await;
    let server = TestServer::start().await.unwrap();
    server.route_any(reply);
    let base = with_secret(&server.url(""));
    servers.push(server);
    Hostile {
        base,
        _servers: servers,
        _ws: None,
    }
}

/// A websocket server that upgrades every connection and then answers every request as `case`
/// says; its tasks end with the returned set.
async fn ws_server(case: Case) -> (SocketAddr, JoinSet<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                if case == Case::WsClose {
                    let _ = ws.close(None).await;
                    return;
                }
                while let Some(Ok(message)) = ws.next().await {
                    let Ok(text) = message.to_text() else {
                        continue;
                    };
                    let id = serde_json::from_str::<Value>(text)
                        .ok()
                        .and_then(|v| v.get("id").cloned())
                        .unwrap_or(Value::Null);
                    let answer = match case.frames() {
                        None => continue,
                        Some(WsAnswer::Text(t)) => {
                            Message::text(t.replace("{id}", &id.to_string()))
                        }
                        Some(WsAnswer::Binary) => Message::binary(garbage()),
                        Some(WsAnswer::Nested) => Message::text(nested()),
                    };
                    if ws.send(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, tasks)
}

/// Settings with `timeout` and the small cap; built once per timeout and shared by every
/// monitor (one client pool: building a client per monitor is slow in a debug build).
fn settings(timeout: Duration) -> StrategySettings {
    let mut s = StrategySettings::default()
        .with_request_timeout(timeout)
        .with_max_body_bytes(CAP);
    s.evm.request_timeout = timeout;
    s
}

fn cosmos_config(base: &str) -> CosmosNodeConfig {
    CosmosNodeConfig {
        node_id: "node_cosmos_1".to_owned(),
        parent_id: "chain_cosmoshub".to_owned(),
        node_name: "cosmos_1".to_owned(),
        monitor_node: true,
        monitor_prometheus: true,
        prometheus_url: format!("{base}/metrics"),
        monitor_cosmos_rest: true,
        cosmos_rest_url: base.to_owned(),
        monitor_tendermint_rpc: true,
        tendermint_rpc_url: base.to_owned(),
        is_validator: true,
        is_archive_node: true,
        use_as_data_source: true,
        operator_address: "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0".to_owned(),
    }
}

fn chainlink_config(base: &str) -> ChainlinkNodeConfig {
    ChainlinkNodeConfig {
        node_id: "node_cl_1".to_owned(),
        parent_id: "chain_eth".to_owned(),
        node_name: "chainlink_1".to_owned(),
        node_prometheus_urls: vec![format!("{base}/metrics")],
        monitor_prometheus: true,
    }
}

/// The monitor of `ty` on `base`, the way the type's own tests build it (`feeds`: the feed list
/// URL of [`Type::ChainlinkContractsEvm`]). Substrate monitors get their own pool (returned to
/// live as long as the monitor).
fn monitor(
    ty: Type,
    base: &str,
    feeds: &str,
    s: &StrategySettings,
) -> (Box<dyn Monitor>, Option<WsPool>) {
    let timeout = s.request_timeout;
    let monitored = || s.http(Target::Monitored, PeriodGroup::Node).unwrap();
    let ws_url = base.replacen("http://", "ws://", 1);
    let m: Box<dyn Monitor> = match ty {
        Type::System => Box::new(SystemMonitor::new(
            SystemConfig {
                system_id: "system_1".to_owned(),
                parent_id: "GENERAL".to_owned(),
                system_name: "validator_host".to_owned(),
                exporter_url: format!("{base}/metrics"),
            },
            s.http(Target::Monitored, PeriodGroup::System).unwrap(),
        )),
        Type::Github => Box::new(GithubMonitor::new(
            GithubRepoConfig {
                repo_id: "repo_1".to_owned(),
                parent_id: "GENERAL".to_owned(),
                repo_name: "docker/docker-py/".to_owned(),
                releases_url: format!("{base}/repos/docker/docker-py/releases"),
            },
            s.http(Target::Public, PeriodGroup::Github).unwrap(),
            s.github.token.clone(),
            std::sync::Arc::clone(&s.github.rate_budget),
        )),
        Type::Dockerhub => Box::new(DockerHubMonitor::new(
            DockerHubRepoConfig {
                repo_id: "docker_1".to_owned(),
                parent_id: "GENERAL".to_owned(),
                repo_namespace: "prom".to_owned(),
                repo_name: "node-exporter".to_owned(),
                tags_url: format!("{base}/v2/repositories/prom/node-exporter/tags"),
            },
            s.http(Target::Public, PeriodGroup::Dockerhub).unwrap(),
            s.dockerhub.max_pages,
        )),
        Type::CosmosNode => {
            let c = cosmos_config(base);
            Box::new(CosmosNodeMonitor::new(c.clone(), vec![c], monitored()).unwrap())
        }
        Type::CosmosNetwork => Box::new(
            CosmosNetworkMonitor::new(
                "chain_cosmoshub",
                "cosmoshub",
                vec![cosmos_config(base)],
                monitored(),
            )
            .unwrap(),
        ),
        Type::ChainlinkNode => Box::new(
            ChainlinkNodeMonitor::new(
                chainlink_config(base),
                monitored(),
                s.http(Target::Public, PeriodGroup::Node).unwrap(),
                &format!("{base}/chains_mini.json"),
            )
            .unwrap(),
        ),
        Type::EvmNode => Box::new(EvmNodeMonitor::new(
            EvmNodeConfig {
                node_id: "evm_1".to_owned(),
                parent_id: "chain_eth".to_owned(),
                node_name: "geth_1".to_owned(),
                node_http_url: format!("{base}/"),
            },
            s.evm_http(PeriodGroup::Node).unwrap(),
        )),
        Type::ChainlinkContracts | Type::ChainlinkContractsEvm => {
            let group = PeriodGroup::ChainlinkContracts;
            let weiwatchers_url = if ty == Type::ChainlinkContracts {
                format!("{base}/feeds.json")
            } else {
                feeds.to_owned()
            };
            Box::new(
                ChainlinkContractsMonitor::new(
                    ChainlinkContractsConfig {
                        sub_chain: "ethereum".to_owned(),
                        parent_id: "chain_eth".to_owned(),
                        weiwatchers_url,
                        evm_nodes_urls: vec![format!("{base}/")],
                        node_configs: vec![chainlink_config(base)],
                    },
                    s.http(Target::Monitored, group).unwrap(),
                    s.http(Target::Public, group).unwrap(),
                    s.evm_http(group).unwrap(),
                )
                .unwrap(),
            )
        }
        Type::SubstrateNode | Type::SubstrateNetwork => {
            let pool = WsPool::new(WsConfig {
                max_message_bytes: CAP,
                ..WsConfig::default()
            });
            let source = SubstrateDataSource {
                node_name: "substrate_1".to_owned(),
                node_ws_url: ws_url.clone(),
                is_archive_node: true,
            };
            let m: Box<dyn Monitor> = if ty == Type::SubstrateNode {
                Box::new(
                    SubstrateNodeMonitor::new(
                        SubstrateNodeConfig {
                            node_id: "node_substrate_1".to_owned(),
                            parent_id: "chain_polkadot".to_owned(),
                            node_name: "substrate_1".to_owned(),
                            node_ws_url: ws_url,
                            monitor_node: true,
                            is_validator: true,
                            is_archive_node: true,
                            use_as_data_source: true,
                            stash_address: "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt"
                                .to_owned(),
                        },
                        vec![source],
                        &pool,
                        timeout,
                    )
                    .unwrap(),
                )
            } else {
                Box::new(
                    SubstrateNetworkMonitor::new(
                        "chain_polkadot",
                        "polkadot",
                        Vec::new(),
                        vec![source],
                        &pool,
                        timeout,
                    )
                    .unwrap(),
                )
            };
            return (m, Some(pool));
        }
    };
    (m, None)
}

/// The envelopes of one body: the body itself when it is one, else each non-empty source's.
fn envelopes(body: &Value) -> Vec<&Value> {
    if body.get("error").is_some() || body.get("result").is_some() {
        return vec![body];
    }
    body.as_object()
        .map(|o| {
            o.values()
                .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
                .collect()
        })
        .unwrap_or_default()
}

/// One (type, case): the cell of the table (`5005`, `5005*` when it came from `failed_round`,
/// `data`, codes of several sources joined by `/`) or a problem.
async fn cell(ty: Type, case: Case, s: &StrategySettings) -> Result<String, String> {
    let target = target(case).await;
    let healthy = TestServer::start().await.unwrap();
    healthy.route("/feeds.json", Reply::json("[]"));
    let (mut m, _pool) = monitor(ty, &target.base, &healthy.url("/feeds.json"), s);
    let round = tokio::time::timeout(BOUND, m.round())
        .await
        .map_err(|_| format!("no end within {BOUND:?}"))?;
    let (publications, marker) = match round {
        Ok(p) => (p, ""),
        Err(e) => {
            let shown = e.to_string();
            if shown.contains(SECRET) {
                return Err(format!("the RoundError shows the password: {shown}"));
            }
            (m.failed_round(&e), "*")
        }
    };
    if publications.is_empty() {
        return Err("silence: nothing published".to_owned());
    }
    let mut codes = Vec::new();
    for p in &publications {
        if p.routing_key != ty.key() {
            return Err(format!("published on {:?}", p.routing_key));
        }
        let found = envelopes(&p.body);
        if found.is_empty() {
            return Err(format!("no envelope in {}", p.body));
        }
        for envelope in found {
            if envelope.get("result").is_some() {
                codes.push("data".to_owned());
                continue;
            }
            let error = &envelope["error"];
            let keys: Vec<&str> = error
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            if keys != ["meta_data", "message", "code"] {
                return Err(format!("not PANIC's error envelope: {envelope}"));
            }
            let meta = &error["meta_data"];
            if !meta["monitor_name"].is_string() || !meta["time"].is_f64() {
                return Err(format!("meta_data without monitor_name/time: {meta}"));
            }
            let message = error["message"].as_str().unwrap_or_default();
            if message.contains(SECRET) {
                return Err(format!("the message shows the password: {message}"));
            }
            let Some(code) = error["code"].as_u64() else {
                return Err(format!("no numeric code: {envelope}"));
            };
            codes.push(code.to_string());
        }
    }
    Ok(format!("{}{marker}", codes.join("/")))
}

/// What each (type, case) must give, in [`CASES`] order, space-separated: the error code (`*`:
/// published by `failed_round` after a `RoundError`), several sources' codes joined by `/`
/// (node.cosmos: prometheus/cosmos_rest/tendermint_rpc), `-` where the case does not apply.
/// Each is PANIC's code for the class of failure (spec §4): the type's "down" code when nothing
/// usable came back in time (5004, 5006, 5021, 5015, 5018 for the feed list), 5005 for an answer
/// that could not be read (over the cap, endless, a refused redirect; a body that is not
/// Prometheus text), 5012 for invalid JSON (GitHub, DockerHub), 5003 for a scrape without the
/// metrics, 5019 when no data source passes the sync check (networks, the contracts' EVM node),
/// Cosmos REST and Tendermint's "no version fits" (5023, 5029) and API error (5024), Substrate's
/// API error (5031) and unreadable data (5033): a websocket message that is not a JSON object
/// (garbage text, a binary frame, `NaN`, 100k nesting) fails the calls in flight as malformed, at
/// once. The network reports 5019 for all of them: a source whose answers cannot be read fails
/// the sync check, so no source is synced.
const EXPECTED: &[(Type, &str)] = &[
    (
        Type::System,
        concat!(
            "5004 5004 5004 5004 5005 5005 5004 5005* 5005* ",
            "5005* 5004 5005* 5005* 5005* 5005* 5005 5005 5005* ",
            "5003 - - - - - - - -",
        ),
    ),
    (
        Type::Github,
        concat!(
            "5006 5006 5006 5006 5005 5005 5006 5012 5012 ",
            "5012 5006 5012 5012 5006* 5012 5005 5005 5012 ",
            "5012 - - - - - - - -",
        ),
    ),
    (
        Type::Dockerhub,
        concat!(
            "5021 5021 5021 5021 5005 5005 5021 5012 5012 ",
            "5012 5021 5012 5012 5020 5012 5005 5005 5012 ",
            "5012 - - - - - - - -",
        ),
    ),
    (
        Type::CosmosNode,
        concat!(
            "5015/5015/5015 5015/5015/5015 5015/5015/5015 5015/5015/5015 5005/5005/5005 5005/5005/5005 5015/5015/5015 5005/5023/5029 5005/5023/5029 ",
            "5005/5023/5029 5015/5015/5015 5005/5023/5029 5005/5023/5029 5005/5023/5029 5005/5023/5029 5005/5005/5005 5005/5005/5005 5005/5024/5029 ",
            "5003/5023/5029 - - - - - - - -",
        ),
    ),
    (
        Type::CosmosNetwork,
        concat!(
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 - - - - - - - -",
        ),
    ),
    (
        Type::ChainlinkNode,
        concat!(
            "5015 5015 5015 5015 5005 5005 5015 5005* 5005* ",
            "5005* 5015 5005* 5005* 5005* 5005* 5005 5005 5005* ",
            "5003 - - - - - - - -",
        ),
    ),
    (
        Type::EvmNode,
        concat!(
            "5015 5015 5015 5015 5005 5005 5015 5005 5005 ",
            "5005 5015 5005 5005 5005 5005 5005 5005 5005 ",
            "5005 - - - - - - - -",
        ),
    ),
    (
        Type::ChainlinkContracts,
        concat!(
            "5018 5018 5018 5018 5018 5018 5018 5018 5018 ",
            "5018 5018 5018 5018 5018 5018 5018 5018 5018 ",
            "5018 - - - - - - - -",
        ),
    ),
    (
        Type::ChainlinkContractsEvm,
        concat!(
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 - - - - - - - -",
        ),
    ),
    (
        Type::SubstrateNode,
        concat!(
            "5015 5015 5015 5015 5015 5015 5015 5015 5015 ",
            "5015 5015 5015 5015 5015 5015 5015 5015 5015 ",
            "5015 5033 5033 5033 5031 5033 5033 5015 5015",
        ),
    ),
    (
        Type::SubstrateNetwork,
        concat!(
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 5019 5019 5019 5019 5019 5019 5019 5019 ",
            "5019 5019 5019 5019 5019 5019 5019 5019 5019",
        ),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_targets_always_yield_an_envelope() {
    for ty in TYPES {
        let row = EXPECTED.iter().find(|(x, _)| *x == ty).map(|(_, row)| row);
        assert_eq!(
            row.map(|r| r.split_whitespace().count()),
            Some(CASES.len()),
            "{ty:?}"
        );
    }
    let short = settings(SHORT);
    let long = settings(LONG);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut cells = JoinSet::new();
    for (t, ty) in TYPES.into_iter().enumerate() {
        for (c, case) in CASES.into_iter().enumerate() {
            if case.websocket_only() && !ty.websocket() {
                continue;
            }
            let s = if case.waits() {
                short.clone()
            } else {
                long.clone()
            };
            let slots = std::sync::Arc::clone(&slots);
            cells.spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                (t, c, cell(ty, case, &s).await)
            });
        }
    }
    let mut table = vec![vec![Ok("-".to_owned()); CASES.len()]; TYPES.len()];
    while let Some(joined) = cells.join_next().await {
        let (t, c, result) = joined.unwrap();
        table[t][c] = result;
    }
    // The table, one line per case, one column per type.
    let mut out = String::from("| case |");
    for ty in TYPES {
        write!(out, " {} |", ty.name()).unwrap();
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(TYPES.len()));
    for (c, case) in CASES.into_iter().enumerate() {
        write!(out, "\n| {} |", case.name()).unwrap();
        for row in &table {
            match &row[c] {
                Ok(cell) => write!(out, " {cell} |").unwrap(),
                Err(_) => out.push_str(" FAIL |"),
            }
        }
    }
    println!("{out}");
    let mut failures = Vec::new();
    for (t, ty) in TYPES.into_iter().enumerate() {
        for (c, case) in CASES.into_iter().enumerate() {
            match &table[t][c] {
                Err(problem) => {
                    failures.push(format!("{} × {}: {problem}", ty.name(), case.name()))
                }
                Ok(got) => {
                    let want = EXPECTED
                        .iter()
                        .find(|(x, _)| *x == ty)
                        .and_then(|(_, row)| row.split_whitespace().nth(c))
                        .unwrap_or("?");
                    if got != want {
                        failures.push(format!(
                            "{} × {}: got {got}, expected {want}",
                            ty.name(),
                            case.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// reqwest is built without its `gzip` feature: a body sent with `content-encoding: gzip` is read
/// as the bytes that came, never inflated, and the request does not ask for compression.
#[tokio::test]
async fn hostile_gzip_bomb_is_not_inflated() {
    // It is a bomb: gzip's magic, and a trailer saying 64 MiB once inflated.
    assert_eq!(&BOMB[..2], b"\x1f\x8b");
    let inflated = u32::from_le_bytes(BOMB[BOMB.len() - 4..].try_into().unwrap());
    assert_eq!(inflated, 64 << 20);
    let server = TestServer::start().await.unwrap();
    server.route_any(Reply::ok(Bytes::from_static(BOMB)).header("content-encoding", "gzip"));
    let http = settings(LONG)
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap();
    let response = http.get(&server.url("/metrics")).await.unwrap();
    assert_eq!(&response.body[..], BOMB);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .header("accept-encoding")
            .is_none_or(|v| !v.contains("gzip")),
        "{:?}",
        requests[0].headers
    );
}
