//! `node.substrate` against replayed nodes: exact `data` bodies for every case and round of the
//! scenarios' `expected.json`, PANIC's error codes, node down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use monitor_core::{Monitor, RawDataKey};
use monitor_strategies::{SubstrateDataSource, SubstrateNodeConfig, SubstrateNodeMonitor, WsPool};

use super::{fixture, Replay};

const T: Duration = Duration::from_secs(10);

fn config(name: &str, url: &str, stash: &str, is_validator: bool) -> SubstrateNodeConfig {
    SubstrateNodeConfig {
        node_id: format!("node_{name}"),
        parent_id: "chain_1".to_owned(),
        node_name: name.to_owned(),
        node_ws_url: url.to_owned(),
        monitor_node: true,
        is_validator,
        is_archive_node: false,
        use_as_data_source: true,
        stash_address: stash.to_owned(),
    }
}

/// Runs every case of `scenario` and compares each round's body with `expected.json`.
async fn run_scenario(scenario: &str) -> usize {
    let expected = fixture(&format!("{scenario}/expected.json"));
    let mut compared = 0;
    for case in expected["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let mut names: Vec<String> = vec![case["monitored_node"].as_str().unwrap().to_owned()];
        for s in case["data_sources"].as_array().unwrap() {
            names.push(s.as_str().unwrap().to_owned());
        }
        names.push(case["archive_node"].as_str().unwrap().to_owned());
        let mut replays = BTreeMap::new();
        for n in &names {
            if !replays.contains_key(n) {
                replays.insert(n.clone(), Replay::start(scenario, n).await);
            }
        }
        let monitored = case["monitored_node"].as_str().unwrap();
        let archive = case["archive_node"].as_str().unwrap();
        let sources: Vec<SubstrateDataSource> = case["data_sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let n = s.as_str().unwrap();
                SubstrateDataSource {
                    node_name: n.to_owned(),
                    node_ws_url: replays[n].url(),
                    is_archive_node: n == archive,
                }
            })
            .collect();
        let rounds: Vec<String> = fixture(&format!("{scenario}/{monitored}.json"))["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        let first = &case["node"][&rounds[0]];
        let pool = WsPool::default();
        for (stash, entry) in first.as_object().unwrap() {
            let is_validator = entry["is_validator"].as_bool().unwrap();
            let mut monitor = SubstrateNodeMonitor::new(
                config(monitored, &replays[monitored].url(), stash, is_validator),
                sources.clone(),
                &pool,
                T,
            )
            .unwrap();
            for round in &rounds {
                for r in replays.values() {
                    r.set_round(round);
                }
                let entry = &case["node"][round][stash];
                let want = entry.get("error").map_or(&entry["data"], |_| entry);
                let publications = monitor.round().await.unwrap();
                assert_eq!(publications.len(), 1);
                assert_eq!(publications[0].routing_key, RawDataKey::SubstrateNode);
                let ws = &publications[0].body["websocket"];
                let ctx = format!("{scenario}/{case_name}/{round}/{stash}");
                if let Some(err) = want.get("error") {
                    assert_eq!(ws["error"]["code"], err["code"], "{ctx}: {ws}");
                } else {
                    let got = &ws["result"]["data"];
                    assert!(ws.get("result").is_some(), "{ctx}: {ws}");
                    assert_eq!(got, want, "{ctx}:\n got {got}\nwant {want}");
                    let meta = &ws["result"]["meta_data"];
                    assert_eq!(meta["monitor_name"], format!("Node monitor ({monitored})"));
                    assert_eq!(meta["stash_address"], stash.as_str());
                    assert_eq!(meta["is_validator"], is_validator);
                }
                compared += 1;
            }
        }
    }
    compared
}

#[tokio::test]
async fn substrate_node_dev_node_bodies() {
    assert_eq!(run_scenario("substrate-dev").await, 6);
}

#[tokio::test]
async fn substrate_node_polkadot_relay_and_asset_hub_bodies() {
    assert!(run_scenario("polkadot-assethub").await > 0);
}

#[tokio::test]
async fn substrate_node_runtime_upgrade_rereads_metadata() {
    assert!(run_scenario("runtime-upgrade").await > 0);
}

#[tokio::test]
async fn substrate_node_faults_syncing_missing_pallet_malformed() {
    assert!(run_scenario("fault-syncing").await > 0);
    assert!(run_scenario("fault-missing-pallet").await > 0);
    assert!(run_scenario("fault-malformed").await > 0);
}

#[tokio::test]
async fn substrate_node_down_is_5015() {
    let mut replay = Replay::start("substrate-dev", "validator").await;
    let url = replay.url();
    replay.down().await;
    let pool = WsPool::default();
    let source = SubstrateDataSource {
        node_name: "validator".to_owned(),
        node_ws_url: url.clone(),
        is_archive_node: true,
    };
    let mut m = SubstrateNodeMonitor::new(
        config(
            "validator",
            &url,
            "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt",
            true,
        ),
        vec![source],
        &pool,
        T,
    )
    .unwrap();
    let p = m.round().await.unwrap();
    let e = &p[0].body["websocket"]["error"];
    assert_eq!(e["code"], 5015, "{e}");
    assert_eq!(e["meta_data"]["node_name"], "validator");
    let _: &Value = e;
}

#[tokio::test]
async fn substrate_node_reads_each_runtime_metadata_once() {
    let replay = Replay::start("runtime-upgrade", "validator").await;
    let pool = WsPool::default();
    let source = SubstrateDataSource {
        node_name: "validator".to_owned(),
        node_ws_url: replay.url(),
        is_archive_node: true,
    };
    let mut m = SubstrateNodeMonitor::new(
        config(
            "validator",
            &replay.url(),
            "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt",
            true,
        ),
        vec![source],
        &pool,
        T,
    )
    .unwrap();
    let metadata_reads = || {
        replay
            .calls()
            .iter()
            .filter(|c| *c == "state_getMetadata")
            .count()
    };
    replay.set_round("before");
    m.round().await.unwrap();
    assert_eq!(metadata_reads(), 1);
    m.round().await.unwrap();
    assert_eq!(metadata_reads(), 1, "same runtime: not read again");
    replay.set_round("after");
    let p = m.round().await.unwrap();
    assert!(
        p[0].body["websocket"]["result"].is_object(),
        "{}",
        p[0].body
    );
    assert_eq!(
        metadata_reads(),
        2,
        "the upgrade is noticed and the new metadata read once"
    );
}

#[tokio::test]
async fn substrate_node_past_eras_are_not_read_again() {
    let replay = Replay::start("polkadot-assethub", "assethub").await;
    let pool = WsPool::default();
    let source = SubstrateDataSource {
        node_name: "assethub".to_owned(),
        node_ws_url: replay.url(),
        is_archive_node: true,
    };
    let expected = fixture("polkadot-assethub/expected.json");
    let stash = expected["accounts"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, n)| *n == "validator-active")
        .map(|(a, _)| a.clone())
        .unwrap();
    let mut m = SubstrateNodeMonitor::new(
        config("assethub", &replay.url(), &stash, true),
        vec![source],
        &pool,
        T,
    )
    .unwrap();
    let reads = || {
        replay
            .calls()
            .iter()
            .filter(|c| *c == "state_getStorage")
            .count()
    };
    let a = m.round().await.unwrap();
    let first = reads();
    let b = m.round().await.unwrap();
    let second = reads() - first;
    // The same body, from far fewer reads: the 83 past eras' exposures are kept.
    let data = |p: &[monitor_core::Publication]| p[0].body["websocket"]["result"]["data"].clone();
    let (mut da, mut db) = (data(&a), data(&b));
    da["historical"] = Value::Null;
    db["historical"] = Value::Null;
    assert_eq!(da, db);
    assert!(second * 2 < first, "first {first}, second {second}");
}
