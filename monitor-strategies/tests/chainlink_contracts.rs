//! The Chainlink contracts monitor against a real local EVM node: ganache (npm, installed by
//! `scripts/ensure-services.sh` under `tests/contracts/node_modules`) with small v3 and v4
//! aggregators and proxies (`tests/contracts/Aggregators.sol`) compiled by the npm `solc` package
//! (`tests/contracts/compile.js`) and deployed by the test. Rounds are submitted through the node's
//! unlocked accounts and the monitor must report them: a round without consensus (null values,
//! re-read later), a v4 round the node did not observe, a node that stops being a transmitter. The
//! weiwatchers list and the nodes' Prometheus endpoints come from the local test server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::aliases::I192;
use alloy_primitives::{Address, Bytes, I256, U256};
use alloy_sol_types::{sol, SolCall, SolValue};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use monitor_core::{Monitor, PeriodGroup, RawDataKey};
use monitor_strategies::chainlink::abi::checksum;
use monitor_strategies::chainlink::{
    ChainlinkContractsConfig, ChainlinkContractsMonitor, ChainlinkNodeConfig,
};
use monitor_strategies::evm::{hex_bytes, parse_hex_bytes, JsonRpc};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{StrategySettings, Target};

sol! {
    function submit(uint256 _roundId, int256 _submission) external;
    function transmit(int192[] observations, bytes observers) external;
    function setTransmitters(address[] _transmitters) external;
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

fn contracts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contracts"))
}

/// A ganache process on a free port, killed (by its id) when dropped.
struct Ganache {
    _child: Child,
    url: String,
    rpc: JsonRpc,
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn admin_rpc(url: &str) -> JsonRpc {
    let settings = StrategySettings::default().with_request_timeout(Duration::from_secs(30));
    JsonRpc::new(
        settings.http(Target::Monitored, PeriodGroup::Node).unwrap(),
        url,
    )
}

async fn start_ganache() -> Ganache {
    let bin = contracts_dir().join("node_modules/.bin/ganache");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/ensure-services.sh (npm install in tests/contracts)",
        bin.display()
    );
    for _attempt in 0..3 {
        let port = free_port().await;
        let child = Command::new(&bin)
            .args([
                "--server.host",
                "127.0.0.1",
                "--server.port",
                &port.to_string(),
                "--wallet.deterministic",
                "--miner.blockTime",
                "0",
                "--logging.quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ganache starts");
        let url = format!("http://127.0.0.1:{port}");
        let rpc = admin_rpc(&url);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut child = child;
        while tokio::time::Instant::now() < deadline {
            if rpc.block_number().await.is_ok() {
                return Ganache {
                    _child: child,
                    url,
                    rpc,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("ganache exited with {status} (port {port} taken?), retrying");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("ganache did not answer");
}

/// `{"<contract>": {"abi", "bytecode"}}` from `compile.js`.
async fn compile() -> Value {
    let output = Command::new("node")
        .arg(contracts_dir().join("compile.js"))
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "compile.js failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

impl Ganache {
    async fn accounts(&self) -> Vec<Address> {
        let v = self.rpc.call("eth_accounts", json!([])).await.unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| Address::from_str(a.as_str().unwrap()).unwrap())
            .collect()
    }

    /// Sends a transaction from an unlocked account; returns the receipt (status checked).
    async fn send(&self, from: Address, to: Option<Address>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": checksum(&from), "data": hex_bytes(&data), "gas": "0x989680"});
        if let Some(to) = to {
            tx["to"] = json!(checksum(&to));
        }
        let hash = self
            .rpc
            .call("eth_sendTransaction", json!([tx]))
            .await
            .unwrap();
        let receipt = self
            .rpc
            .call("eth_getTransactionReceipt", json!([hash]))
            .await
            .unwrap();
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        receipt
    }

    async fn deploy(&self, from: Address, artifacts: &Value, name: &str, args: Vec<u8>) -> Address {
        let mut code = parse_hex_bytes(artifacts[name]["bytecode"].as_str().unwrap()).unwrap();
        code.extend(args);
        let receipt = self.send(from, None, code).await;
        Address::from_str(receipt["contractAddress"].as_str().unwrap()).unwrap()
    }
}

/// The Chainlink metrics fixture with `account` set to `address`.
fn metrics_for(address: &Address) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/chainlink/metrics.txt"))
        .unwrap()
        .replace(
            "0x0E4B07e9175686DaE5014743503E5D8ADa8E55A3",
            // Lower case on purpose: the monitor compares addresses, not spellings.
            &format!("{address:#x}"),
        )
}

fn node_config(id: &str, name: &str, urls: Vec<String>) -> ChainlinkNodeConfig {
    ChainlinkNodeConfig {
        node_id: id.to_owned(),
        parent_id: "chain_ganache".to_owned(),
        node_name: name.to_owned(),
        node_prometheus_urls: urls,
        monitor_prometheus: true,
    }
}

fn monitor(
    weiwatchers_url: &str,
    evm: Vec<String>,
    nodes: Vec<ChainlinkNodeConfig>,
) -> ChainlinkContractsMonitor {
    let settings = StrategySettings::default().with_request_timeout(Duration::from_secs(5));
    let group = PeriodGroup::ChainlinkContracts;
    ChainlinkContractsMonitor::new(
        ChainlinkContractsConfig {
            sub_chain: "ganache".to_owned(),
            parent_id: "chain_ganache".to_owned(),
            weiwatchers_url: weiwatchers_url.to_owned(),
            evm_nodes_urls: evm,
            node_configs: nodes,
        },
        settings.http(Target::Monitored, group).unwrap(),
        settings.http(Target::Public, group).unwrap(),
        settings.evm_http(group).unwrap(),
    )
    .unwrap()
}

/// One round: the bodies, all on `contracts.chainlink`.
async fn round(m: &mut ChainlinkContractsMonitor) -> Vec<Value> {
    m.round()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            assert_eq!(p.routing_key, RawDataKey::ChainlinkContracts);
            p.body
        })
        .collect()
}

/// The result of a node in a round's bodies (meta_data checked), `None` if it has none.
fn result_of(bodies: &[Value], node_id: &str, node_name: &str) -> Option<Value> {
    let body = bodies
        .iter()
        .find(|b| b["result"]["meta_data"]["node_id"] == node_id)?;
    let meta = &body["result"]["meta_data"];
    let keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "monitor_name",
            "node_name",
            "node_id",
            "node_parent_id",
            "time"
        ]
    );
    assert_eq!(
        meta["monitor_name"],
        "Chainlink Contracts Monitor (ganache)"
    );
    assert_eq!(meta["node_name"], node_name);
    assert_eq!(meta["node_parent_id"], "chain_ganache");
    let mut data = body["result"]["data"].clone();
    mask_timestamps(&mut data);
    Some(data)
}

/// Replaces block timestamps (real time on ganache) by `"ts"` after checking them.
fn mask_timestamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, value) in map.iter_mut() {
                if (k == "latestTimestamp" || k == "roundTimestamp") && value.is_u64() {
                    let ts = value.as_u64().unwrap();
                    assert!(ts == 0 || ts > 1_600_000_000, "{k} {ts}");
                    if ts > 0 {
                        *value = json!("ts");
                    }
                } else {
                    mask_timestamps(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_timestamps),
        _ => {}
    }
}

fn error_of(bodies: &[Value]) -> (u64, String) {
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let error = &bodies[0]["error"];
    let meta = &error["meta_data"];
    let keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["monitor_name", "node_parent_id", "time"]);
    assert_eq!(
        meta["monitor_name"],
        "Chainlink Contracts Monitor (ganache)"
    );
    assert_eq!(meta["node_parent_id"], "chain_ganache");
    (
        error["code"].as_u64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

fn i192(v: i64) -> I192 {
    I192::try_from(v).unwrap()
}

#[tokio::test]
async fn rounds_on_a_real_evm_node() {
    let (ganache, artifacts) = tokio::join!(start_ganache(), compile());
    let accounts = ganache.accounts().await;
    let (deployer, node, o2, o3, other_node, third_node) = (
        accounts[0],
        accounts[1],
        accounts[2],
        accounts[3],
        accounts[4],
        accounts[5],
    );

    // v3 feed with the node, v3 feed without it, v4 feed with the node (transmitter index 1).
    // 10 tokens per v3 submission: two submissions owe 2e19 wei, beyond u64.
    let ten_tokens = U256::from(10_000_000_000_000_000_000u128);
    let flux = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestFluxAggregator",
            (vec![node, o2, o3], 2u32, "BAT / ETH".to_owned(), ten_tokens).abi_encode_params(),
        )
        .await;
    let proxy3 = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestAggregatorProxy",
            (flux, "BAT / ETH".to_owned()).abi_encode_params(),
        )
        .await;
    let flux_other = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestFluxAggregator",
            (vec![o2, o3], 2u32, "UNI / ETH".to_owned(), ten_tokens).abi_encode_params(),
        )
        .await;
    let proxy_other = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestAggregatorProxy",
            (flux_other, "UNI / ETH".to_owned()).abi_encode_params(),
        )
        .await;
    let ocr = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestOffchainAggregator",
            (vec![o2, node, o3],).abi_encode_params(),
        )
        .await;
    let proxy4 = ganache
        .deploy(
            deployer,
            &artifacts,
            "TestAggregatorProxy",
            (ocr, "ETH / USD".to_owned()).abi_encode_params(),
        )
        .await;
    let (p3, p4) = (checksum(&proxy3), checksum(&proxy4));

    // Weiwatchers list and Prometheus endpoints.
    let server = TestServer::start().await.unwrap();
    let feeds = json!([
        {"contractAddress": checksum(&flux), "proxyAddress": p3, "contractVersion": 3, "name": "BAT / ETH"},
        {"contractAddress": checksum(&flux_other), "proxyAddress": checksum(&proxy_other), "contractVersion": 3},
        {"contractAddress": checksum(&ocr), "proxyAddress": p4, "contractVersion": 4, "name": "ETH / USD"},
        {"contractAddress": checksum(&ocr), "proxyAddress": p4, "contractVersion": 2},
    ]);
    server.route("/feeds.json", Reply::json(feeds.to_string()));
    server.route("/node1/metrics", Reply::ok(metrics_for(&node)));
    server.route("/node2/metrics", Reply::ok(metrics_for(&other_node)));
    // Node 3's Prometheus is down in the first round.
    server.route("/node3/metrics", Reply::ok("").mode(BodyMode::Close));

    // An EVM node that is syncing, one that is down, then ganache.
    let syncing = TestServer::start().await.unwrap();
    syncing.route(
        "/",
        Reply::json(
            std::fs::read_to_string(format!("{FIXTURES}/evm/eth_syncing_true.json")).unwrap(),
        ),
    );
    let evm = vec![
        refused_url("/").await.unwrap(),
        syncing.url("/"),
        ganache.url.clone(),
    ];
    let nodes = vec![
        node_config(
            "n1",
            "chainlink_1",
            vec![
                refused_url("/metrics").await.unwrap(),
                server.url("/node1/metrics"),
            ],
        ),
        node_config("n2", "chainlink_2", vec![server.url("/node2/metrics")]),
        node_config("n3", "chainlink_3", vec![server.url("/node3/metrics")]),
    ];
    let mut m = monitor(&server.url("/feeds.json"), evm, nodes);

    // Round 1: participation found, nothing happened yet; node 3 has no address (no message).
    let bodies = round(&mut m).await;
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let fresh = |version: u64, aggregator: &Address, description: &str, payment: &str| {
        json!({
            "contractVersion": version, "aggregatorAddress": checksum(aggregator),
            "description": description, "latestRound": 0, "latestAnswer": 0,
            "latestTimestamp": 0, "answeredInRound": 0, payment: 0,
            "historicalRounds": [], "lastRoundObserved": null
        })
    };
    let mut expected = serde_json::Map::new();
    expected.insert(
        p3.clone(),
        fresh(3, &flux, "BAT / ETH", "withdrawablePayment"),
    );
    expected.insert(p4.clone(), fresh(4, &ocr, "ETH / USD", "owedPayment"));
    assert_eq!(
        result_of(&bodies, "n1", "chainlink_1").unwrap(),
        Value::Object(expected)
    );
    // v3 proxies first, then v4 (PANIC's merge order).
    let n1 = &bodies
        .iter()
        .find(|b| b["result"]["meta_data"]["node_id"] == "n1")
        .unwrap()["result"]["data"];
    assert_eq!(
        n1.as_object().unwrap().keys().collect::<Vec<_>>(),
        [&p3, &p4]
    );
    assert_eq!(result_of(&bodies, "n2", "chainlink_2").unwrap(), json!({}));
    assert!(result_of(&bodies, "n3", "chainlink_3").is_none());

    // v3 round 1: node 100, o2 102 → consensus 101. v3 round 2: node 110 only → no consensus.
    let submit = |round: u64, value: i64| {
        submitCall {
            _roundId: U256::from(round),
            _submission: I256::try_from(value).unwrap(),
        }
        .abi_encode()
    };
    ganache.send(node, Some(flux), submit(1, 100)).await;
    ganache.send(o2, Some(flux), submit(1, 102)).await;
    ganache.send(node, Some(flux), submit(2, 110)).await;
    // v4 round 1: the node (index 1) observed 1010. v4 round 2: the node did not observe.
    let transmit = |observations: &[i64], observers: &[u8]| {
        transmitCall {
            observations: observations.iter().map(|o| i192(*o)).collect(),
            observers: Bytes::copy_from_slice(observers),
        }
        .abi_encode()
    };
    ganache
        .send(o2, Some(ocr), transmit(&[1000, 1010, 1020], &[0, 1, 2]))
        .await;
    ganache
        .send(o3, Some(ocr), transmit(&[2000, 2020], &[0, 2]))
        .await;
    // Node 3's Prometheus is back: its address is read again (the limiter was not marked done).
    server.route("/node3/metrics", Reply::ok(metrics_for(&third_node)));

    // Round 2.
    let bodies = round(&mut m).await;
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    let data = result_of(&bodies, "n1", "chainlink_1").unwrap();
    assert_eq!(
        data[&p3],
        json!({
            "contractVersion": 3, "aggregatorAddress": checksum(&flux), "description": "BAT / ETH",
            "latestRound": 1, "latestAnswer": 101, "latestTimestamp": "ts", "answeredInRound": 1,
            "withdrawablePayment": 2e19,
            "historicalRounds": [
                {"roundId": 1, "roundAnswer": 101, "roundTimestamp": "ts", "answeredInRound": 1,
                 "nodeSubmission": 100},
                {"roundId": 2, "roundAnswer": null, "roundTimestamp": null, "answeredInRound": null,
                 "nodeSubmission": 110}
            ],
            "lastRoundObserved": 2
        })
    );
    assert_eq!(
        data[&p4],
        json!({
            "contractVersion": 4, "aggregatorAddress": checksum(&ocr), "description": "ETH / USD",
            "latestRound": 2, "latestAnswer": 2020, "latestTimestamp": "ts", "answeredInRound": 2,
            "owedPayment": 1_000_000_000_000_000u64,
            "historicalRounds": [
                {"roundId": 1, "roundAnswer": 1010, "roundTimestamp": "ts", "answeredInRound": 1,
                 "nodeSubmission": 1010, "noOfObservations": 3, "noOfTransmitters": 3},
                {"roundId": 2, "roundAnswer": 2020, "roundTimestamp": "ts", "answeredInRound": 2,
                 "nodeSubmission": null, "noOfObservations": 2, "noOfTransmitters": 3}
            ],
            "lastRoundObserved": 1
        })
    );
    // Node 3 got its address this round; it takes part in no feed.
    assert_eq!(result_of(&bodies, "n3", "chainlink_3").unwrap(), json!({}));

    // Consensus on v3 round 2 (o3 submits 120 → 115): the round is read again, now answered.
    ganache.send(o3, Some(flux), submit(2, 120)).await;
    let bodies = round(&mut m).await;
    let data = result_of(&bodies, "n1", "chainlink_1").unwrap();
    assert_eq!(
        data[&p3]["historicalRounds"],
        json!([{"roundId": 2, "roundAnswer": 115, "roundTimestamp": "ts", "answeredInRound": 2,
                "nodeSubmission": 110}])
    );
    assert_eq!(data[&p3]["latestRound"], 2);
    assert_eq!(data[&p3]["lastRoundObserved"], 2);
    // No new v4 transmission: empty history, the last round observed is carried.
    assert_eq!(data[&p4]["historicalRounds"], json!([]));
    assert_eq!(data[&p4]["lastRoundObserved"], 1);

    // A round with nothing new.
    let data = result_of(&round(&mut m).await, "n1", "chainlink_1").unwrap();
    assert_eq!(data[&p3]["historicalRounds"], json!([]));

    // The node stops being a transmitter of the v4 feed: that contract is skipped.
    ganache
        .send(
            deployer,
            Some(ocr),
            setTransmittersCall {
                _transmitters: vec![o2, third_node],
            }
            .abi_encode(),
        )
        .await;
    ganache
        .send(o2, Some(ocr), transmit(&[3000, 3030], &[0, 1]))
        .await;
    let bodies = round(&mut m).await;
    let data = result_of(&bodies, "n1", "chainlink_1").unwrap();
    assert_eq!(data.as_object().unwrap().keys().collect::<Vec<_>>(), [&p3]);
    assert_eq!(data[&p3]["historicalRounds"], json!([]));
    // Node 3 became a transmitter, but participation is refreshed with the daily lists only.
    assert_eq!(result_of(&bodies, "n3", "chainlink_3").unwrap(), json!({}));

    // The feed list was fetched once (daily); the addresses twice: the first attempt missed node
    // 3, so every address was read again in round 2, and not since.
    assert_eq!(server.hits("/feeds.json"), 1);
    assert_eq!(server.hits("/node1/metrics"), 2);
    assert_eq!(server.hits("/node2/metrics"), 2);
    assert_eq!(server.hits("/node3/metrics"), 2);
}

#[tokio::test]
async fn no_usable_evm_node_is_5019() {
    let server = TestServer::start().await.unwrap();
    server.route("/feeds.json", Reply::json("[]"));
    let syncing = TestServer::start().await.unwrap();
    syncing.route(
        "/",
        Reply::json(
            std::fs::read_to_string(format!("{FIXTURES}/evm/eth_syncing_true.json")).unwrap(),
        ),
    );
    let broken = TestServer::start().await.unwrap();
    broken.route(
        "/",
        Reply::json(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#),
    );
    let mut m = monitor(
        &server.url("/feeds.json"),
        vec![
            refused_url("/").await.unwrap(),
            syncing.url("/"),
            broken.url("/"),
            "not a url".to_owned(),
        ],
        vec![node_config(
            "n1",
            "chainlink_1",
            vec![refused_url("/metrics").await.unwrap()],
        )],
    );
    assert_eq!(
        error_of(&round(&mut m).await),
        (
            5019,
            "Chainlink Contracts Monitor (ganache) could not access any synced EVM node."
                .to_owned()
        )
    );
}

#[tokio::test]
async fn feed_list_failures_are_5018_and_retried() {
    let server = TestServer::start().await.unwrap();
    let url = server.url("/feeds.json");
    let nodes = vec![node_config(
        "n1",
        "chainlink_1",
        vec![refused_url("/metrics").await.unwrap()],
    )];
    let expected = (
        5018,
        format!(
            "Chainlink Contracts Monitor (ganache) could not retrieve contracts data from {url}."
        ),
    );
    let mut m = monitor(&url, vec![refused_url("/").await.unwrap()], nodes.clone());
    for reply in [
        Reply::ok("").mode(BodyMode::Close),
        Reply::status(404, "<html>not found</html>"),
        Reply::json(r#"{"feeds": []}"#),
        Reply::json("[1, 2").mode(BodyMode::Truncated(3)),
    ] {
        server.route("/feeds.json", reply);
        assert_eq!(error_of(&round(&mut m).await), expected);
    }
    // Each failure was retried the next round.
    assert_eq!(server.hits("/feeds.json"), 4);
    // A refused weiwatchers URL too.
    let refused = refused_url("/feeds.json").await.unwrap();
    let mut m = monitor(&refused, vec![refused_url("/").await.unwrap()], nodes);
    assert_eq!(error_of(&round(&mut m).await).0, 5018);
}

#[test]
fn empty_sources_are_5017_at_build() {
    let settings = StrategySettings::default();
    let group = PeriodGroup::ChainlinkContracts;
    let build = |evm: Vec<String>, nodes: Vec<ChainlinkNodeConfig>| {
        ChainlinkContractsMonitor::new(
            ChainlinkContractsConfig {
                sub_chain: "ganache".to_owned(),
                parent_id: "chain_ganache".to_owned(),
                weiwatchers_url: "http://w".to_owned(),
                evm_nodes_urls: evm,
                node_configs: nodes,
            },
            settings.http(Target::Monitored, group).unwrap(),
            settings.http(Target::Public, group).unwrap(),
            settings.evm_http(group).unwrap(),
        )
        .err()
        .unwrap()
    };
    let e = build(
        vec![],
        vec![node_config("n", "n", vec!["http://p".to_owned()])],
    );
    assert_eq!(e.code.code(), 5017);
    assert!(e.message.ends_with("evm_nodes is empty."), "{}", e.message);
    let e = build(vec!["http://e".to_owned()], vec![]);
    assert_eq!(
        e.message,
        "Chainlink Contracts Monitor (ganache) was not given enough data sources. node_configs is empty."
    );
}
