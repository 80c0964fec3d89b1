//! The Chainlink contracts monitor against a real local EVM node: ganache (npm, installed by
//! `scripts/ensure-services.sh` under `tests/contracts/node_modules`) with small v3 and v4
//! aggregators and proxies (`tests/contracts/Aggregators.sol`) compiled by the npm `solc` package
//! (`tests/contracts/compile.js`) and deployed by the test. Rounds are submitted through the node's
//! unlocked accounts and the monitor must report them: a round without consensus (null values,
//! re-read later), a v4 round the node did not observe, a node that stops being a transmitter. The
//! weiwatchers list and the nodes' Prometheus endpoints come from the local test server.

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
use monitor_strategies::checksum;
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{hex_bytes, parse_hex_bytes, JsonRpc};
use monitor_strategies::{
    ChainlinkContractsConfig, ChainlinkContractsMonitor, ChainlinkNodeConfig,
};
use monitor_strategies::{StrategySettings, Target};

use crate::common;

sol! {
    function submit(uint256 _roundId, int256 _submission) external;
    function transmit(int192[] observations, bytes observers) external;
    function setTransmitters(address[] _transmitters) external;
}

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
    common::fixture("chainlink/metrics.txt").replace(
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
    common::check_meta(
        &body["result"]["meta_data"],
        &json!({"monitor_name": "Chainlink Contracts Monitor (ganache)", "node_name": node_name,
                "node_id": node_id, "node_parent_id": "chain_ganache", "time": null}),
    );
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
    common::error_of(
        &bodies[0],
        &json!({"monitor_name": "Chainlink Contracts Monitor (ganache)",
                "node_parent_id": "chain_ganache", "time": null}),
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
        Reply::json(common::fixture("evm/eth_syncing_true.json")),
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
            // Beyond u64, still an exact integer (Python's int), not 2e+19.
            "withdrawablePayment": serde_json::from_str::<serde_json::Value>("20000000000000000000").unwrap(),
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
        Reply::json(common::fixture("evm/eth_syncing_true.json")),
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

/// The `evm/` fixtures (PANIC's mainnet scenario of `fixtures/SOURCES.md`) served by a fake
/// JSON-RPC node: answers chosen by method, target and calldata; logs filtered by block range; the
/// latest block moves from B−12 (first round) to B (later rounds).
fn fixture_node(server: &TestServer) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    const B: u64 = 15_985_432;
    let head = std::sync::Arc::new(AtomicU64::new(B - 12));
    let current = std::sync::Arc::clone(&head);
    let read = |name: &str| -> Value {
        serde_json::from_str(&common::fixture(&format!("evm/{name}"))).unwrap()
    };
    let calls: Vec<(&str, &str, Option<u64>, Value)> = vec![
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            "0x40884c52",
            None,
            read("eth_call_v3_bat_eth_getOracles.json"),
        ),
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            "0x9a6fc8f5",
            Some(3911),
            read("eth_call_v3_bat_eth_getRoundData_3911.json"),
        ),
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            "0x9a6fc8f5",
            Some(3912),
            read("eth_call_v3_bat_eth_getRoundData_3912_revert.json"),
        ),
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            "0xfeaf968c",
            None,
            read("eth_call_v3_bat_eth_latestRoundData.json"),
        ),
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            "0xe2e40317",
            None,
            read("eth_call_v3_bat_eth_withdrawablePayment.json"),
        ),
        (
            "0xaecebe652b04402d772b312e0a66a85fd2f3efd1",
            "0x245a7bfc",
            None,
            read("eth_call_v3_bat_eth_proxy_aggregator.json"),
        ),
        (
            "0xaecebe652b04402d772b312e0a66a85fd2f3efd1",
            "0x7284e416",
            None,
            read("eth_call_v3_bat_eth_proxy_description.json"),
        ),
        (
            "0x5e53b62a2eb7e0cadc6be1a25c3489f1bda86709",
            "0x40884c52",
            None,
            read("eth_call_v3_uni_eth_getOracles.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            "0x9a6fc8f5",
            Some(22153),
            read("eth_call_v4_eth_usd_getRoundData_22153.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            "0x9a6fc8f5",
            Some(22154),
            read("eth_call_v4_eth_usd_getRoundData_22154.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            "0xfeaf968c",
            None,
            read("eth_call_v4_eth_usd_latestRoundData.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            "0x0eafb25b",
            None,
            read("eth_call_v4_eth_usd_owedPayment.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            "0x81411834",
            None,
            read("eth_call_v4_eth_usd_transmitters.json"),
        ),
        (
            "0x9bcce0b5c6c3ad1b9e93e1bbadd12f358e77e45f",
            "0x245a7bfc",
            None,
            read("eth_call_v4_eth_usd_proxy_aggregator.json"),
        ),
        (
            "0x9bcce0b5c6c3ad1b9e93e1bbadd12f358e77e45f",
            "0x7284e416",
            None,
            read("eth_call_v4_eth_usd_proxy_description.json"),
        ),
        (
            "0xc6eda233628a60d6a056ab9d2730cbb5bcbee505",
            "0x81411834",
            None,
            read("eth_call_v4_link_usd_transmitters.json"),
        ),
    ];
    let logs: Vec<(&str, Value)> = vec![
        (
            "0x61c9941077eb5fc81c95a38362bc6920093b7a48",
            read("eth_getLogs_v3_bat_eth_SubmissionReceived.json"),
        ),
        (
            "0x1c4c71524561630c10cd4b5028dc2fd7d1036f9e",
            read("eth_getLogs_v4_eth_usd_NewTransmission.json"),
        ),
    ];
    let syncing = read("eth_syncing_false.json");
    server.route_fn("/", move |request| {
        let req: Value = serde_json::from_slice(&request.body).unwrap();
        let params = &req["params"];
        let not_found = || {
            Reply::json(
                json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32000, "message": format!("no fixture for {req}")}})
                    .to_string(),
            )
        };
        let answer = match req["method"].as_str().unwrap() {
            "eth_syncing" => syncing.clone(),
            "eth_blockNumber" => {
                json!({"jsonrpc": "2.0", "id": req["id"], "result": format!("{:#x}", current.load(Ordering::SeqCst))})
            }
            "eth_call" => {
                let to = params[0]["to"].as_str().unwrap().to_lowercase();
                let data = params[0]["data"].as_str().unwrap();
                let round = (data.len() >= 74)
                    .then(|| u64::from_str_radix(&data[data.len() - 16..], 16).unwrap());
                match calls.iter().find(|(t, sel, r, _)| {
                    *t == to && !sel.is_empty() && data.starts_with(sel) && (r.is_none() || *r == round)
                }) {
                    Some((_, _, _, answer)) => answer.clone(),
                    None => return not_found(),
                }
            }
            "eth_getLogs" => {
                let filter = &params[0];
                let address = filter["address"].as_str().unwrap().to_lowercase();
                let block = |k: &str| {
                    u64::from_str_radix(filter[k].as_str().unwrap().trim_start_matches("0x"), 16)
                        .unwrap()
                };
                let (from, to) = (block("fromBlock"), block("toBlock"));
                let Some((_, all)) = logs.iter().find(|(a, _)| *a == address) else {
                    return not_found();
                };
                // The v3 filter asks for the node as indexed oracle (topic 3).
                if let Some(oracle) = filter["topics"].get(3) {
                    assert_eq!(
                        oracle,
                        "0x0000000000000000000000000e4b07e9175686dae5014743503e5d8ada8e55a3"
                    );
                }
                let mut answer = all.clone();
                let kept: Vec<Value> = all["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|l| {
                        let n = u64::from_str_radix(
                            l["blockNumber"].as_str().unwrap().trim_start_matches("0x"),
                            16,
                        )
                        .unwrap();
                        from <= n && n <= to
                    })
                    .cloned()
                    .collect();
                answer["result"] = Value::Array(kept);
                answer
            }
            _ => return not_found(),
        };
        Reply::json(answer.to_string())
    });
    head
}

#[tokio::test]
async fn panics_mainnet_fixtures() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/feeds.json",
        Reply::json(common::fixture("weiwatchers/feeds.json")),
    );
    server.route(
        "/metrics",
        Reply::ok(common::fixture("chainlink/metrics.txt")),
    );
    let evm = TestServer::start().await.unwrap();
    let head = fixture_node(&evm);
    let mut m = monitor(
        &server.url("/feeds.json"),
        vec![evm.url("/")],
        vec![node_config(
            "n1",
            "chainlink_1",
            vec![server.url("/metrics")],
        )],
    );
    let eth_usd = "0x9bCCe0b5C6C3Ad1B9e93E1BbAdd12f358e77e45F";
    let bat_eth = "0xAeceBe652b04402D772B312E0a66A85FD2f3Efd1";

    // First round at B−12: nothing in range yet.
    let bodies = round(&mut m).await;
    let data = result_of(&bodies, "n1", "chainlink_1").unwrap();
    assert_eq!(
        data.as_object().unwrap().keys().collect::<Vec<_>>(),
        [bat_eth, eth_usd]
    );
    assert_eq!(data[bat_eth]["historicalRounds"], json!([]));

    // Then the chain is at B: every event of the scenario is in range.
    head.store(15_985_432, std::sync::atomic::Ordering::SeqCst);
    let bodies = round(&mut m).await;
    let data = result_of(&bodies, "n1", "chainlink_1").unwrap();
    assert_eq!(
        data[bat_eth],
        json!({
            "contractVersion": 3, "aggregatorAddress": "0x61c9941077EB5fC81c95A38362Bc6920093b7A48",
            "description": "BAT / ETH", "latestRound": 3911, "latestAnswer": 281_234_000_000_000u64,
            "latestTimestamp": "ts", "answeredInRound": 3911,
            "withdrawablePayment": 2_470_000_000_000_000_000u64,
            "historicalRounds": [
                {"roundId": 3911, "roundAnswer": 281_234_000_000_000u64, "roundTimestamp": "ts",
                 "answeredInRound": 3911, "nodeSubmission": 281_190_000_000_000u64},
                {"roundId": 3912, "roundAnswer": null, "roundTimestamp": null,
                 "answeredInRound": null, "nodeSubmission": 281_422_000_000_000u64}
            ],
            "lastRoundObserved": 3912
        })
    );
    assert_eq!(
        data[eth_usd],
        json!({
            "contractVersion": 4, "aggregatorAddress": "0x1c4C71524561630C10cD4B5028dC2fd7D1036F9E",
            "description": "ETH / USD", "latestRound": 22154, "latestAnswer": 121_345_678_901u64,
            "latestTimestamp": "ts", "answeredInRound": 22154,
            "owedPayment": 4_823_000_000_000_000_000u64,
            "historicalRounds": [
                {"roundId": 22153, "roundAnswer": 121_334_567_890u64, "roundTimestamp": "ts",
                 "answeredInRound": 22153, "nodeSubmission": 121_334_567_890u64,
                 "noOfObservations": 11, "noOfTransmitters": 16},
                {"roundId": 22154, "roundAnswer": 121_345_678_901u64, "roundTimestamp": "ts",
                 "answeredInRound": 22154, "nodeSubmission": null,
                 "noOfObservations": 7, "noOfTransmitters": 16}
            ],
            "lastRoundObserved": 22153
        })
    );

    // Round 3912 had no consensus: the next round re-reads from B−1 (the 3912 event again) and
    // nothing of v4 (already read up to B).
    let data = result_of(&round(&mut m).await, "n1", "chainlink_1").unwrap();
    let rounds: Vec<&Value> = data[bat_eth]["historicalRounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["roundId"])
        .collect();
    assert_eq!(rounds, [&json!(3912)]);
    assert_eq!(data[eth_usd]["historicalRounds"], json!([]));
    assert_eq!(data[eth_usd]["lastRoundObserved"], 22153);
}
