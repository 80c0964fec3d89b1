//! `network.substrate` against replayed nodes: exact `data` bodies for every case and round of
//! the scenarios' `expected.json` (Democracy and OpenGov), PANIC's error codes, and finished
//! referendums read once.

use std::collections::BTreeMap;
use std::time::Duration;

use monitor_core::{Monitor, RawDataKey};
use monitor_strategies::{SubstrateDataSource, SubstrateNetworkMonitor, WsPool};

use super::{fixture, Replay};

const T: Duration = Duration::from_secs(10);

/// Runs the network part of every case of `scenario`; the number of rounds compared.
async fn run_scenario(scenario: &str) -> usize {
    let expected = fixture(&format!("{scenario}/expected.json"));
    let mut compared = 0;
    for case in expected["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let network = &case["network"];
        if network.is_null() {
            continue;
        }
        let mut replays = BTreeMap::new();
        let mut sources = Vec::new();
        for s in case["data_sources"].as_array().unwrap() {
            let n = s.as_str().unwrap().to_owned();
            let r = Replay::start(scenario, &n).await;
            sources.push(SubstrateDataSource {
                node_name: n.clone(),
                node_ws_url: r.url(),
                is_archive_node: false,
            });
            replays.insert(n, r);
        }
        let governance: Vec<String> = network["governance_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let monitored = case["monitored_node"].as_str().unwrap();
        let rounds: Vec<String> = fixture(&format!("{scenario}/{monitored}.json"))["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        let pool = WsPool::default();
        let mut m =
            SubstrateNetworkMonitor::new("chain_1", "dev", governance.clone(), sources, &pool, T)
                .unwrap();
        for round in &rounds {
            for r in replays.values() {
                r.set_round(round);
            }
            let p = m.round().await.unwrap();
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].routing_key, RawDataKey::SubstrateNetwork);
            let ws = &p[0].body["websocket"];
            let want = &network[round];
            let ctx = format!("{scenario}/{case_name}/{round}");
            if let Some(err) = want.get("error") {
                assert_eq!(ws["error"]["code"], err["code"], "{ctx}: {ws}");
            } else {
                assert!(ws.get("result").is_some(), "{ctx}: {ws}");
                let got = &ws["result"]["data"];
                assert_eq!(got, want, "{ctx}:\n got {got}\nwant {want}");
                let meta = &ws["result"]["meta_data"];
                assert_eq!(meta["monitor_name"], "Substrate Network Monitor (dev)");
                assert_eq!(meta["parent_id"], "chain_1");
                assert_eq!(meta["governance_addresses"], serde_json::json!(governance));
            }
            compared += 1;
        }
    }
    compared
}

#[tokio::test]
async fn substrate_network_democracy_bodies() {
    assert_eq!(run_scenario("substrate-dev").await, 2);
}

#[tokio::test]
async fn substrate_network_opengov_bodies() {
    assert!(run_scenario("polkadot-assethub").await >= 4);
}

#[tokio::test]
async fn substrate_network_runtime_upgrade_and_faults() {
    assert!(run_scenario("runtime-upgrade").await > 0);
    assert!(run_scenario("fault-syncing").await > 0);
    assert!(run_scenario("fault-missing-pallet").await > 0);
    assert!(run_scenario("fault-malformed").await > 0);
}

#[tokio::test]
async fn substrate_network_reads_finished_referendums_once() {
    let replay = Replay::start("polkadot-assethub", "assethub").await;
    let pool = WsPool::default();
    let source = SubstrateDataSource {
        node_name: "assethub".to_owned(),
        node_ws_url: replay.url(),
        is_archive_node: true,
    };
    let mut m =
        SubstrateNetworkMonitor::new("c", "polkadot", vec![], vec![source], &pool, T).unwrap();
    m.round().await.unwrap();
    let first = replay
        .calls()
        .iter()
        .filter(|c| *c == "state_getStorage")
        .count();
    m.round().await.unwrap();
    let second = replay
        .calls()
        .iter()
        .filter(|c| *c == "state_getStorage")
        .count()
        - first;
    // Round two reads the count, Grandpa and the one ongoing referendum, not the three finished.
    assert!(second + 3 <= first, "first {first}, second {second}");
}
