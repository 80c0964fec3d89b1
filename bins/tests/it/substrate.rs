//! The Substrate monitors end to end: the embedded `monitors-manager` (`--config-dir`) against
//! websocket replay servers of the committed fixtures (`fixtures/substrate/`, real Polkadot, Asset
//! Hub and Substrate metadata). Every `node.substrate` and `network.substrate` body it publishes
//! for a round of the scenario's `expected.json` has exactly that `data`, the right `meta_data`,
//! and no error envelope appears.
//!
//! Each monitor gets a chain of its own (one folder under `chains/substrate/`) and replay servers
//! of its own, which switch to the next round at that monitor's next round's first call
//! ([`Replay::switch_on_call`]): round `k` of a monitor sees round `k` of the fixtures, all of it,
//! whatever the timing.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use monitor_strategies::testing::substrate::{fixture, Replay};
use serde_json::{json, Value};

use crate::common::{sigterm, TempDir, PATIENCE};

/// The node and network periods of the substrate-dev run and of the Polkadot run. A round that
/// outlives its period is cut off and publishes nothing (the test fails saying so); a first round
/// of debug-built monitors decoding Polkadot and Asset Hub metadata, eight monitors on two cores,
/// takes seconds. A handful of monitors start within a second of each other (the phase window of
/// a small group is 1 s, `monitors-manager/src/schedule.rs`), so the dev run's four first rounds
/// decode their metadata at once: at 10 s, one of them outlived its period on a loaded machine.
const DEV_PERIOD_SECONDS: &str = "20";
const POLKADOT_PERIOD_SECONDS: &str = "30";

/// How long the test waits for every monitor's rounds.
const WAIT: Duration = Duration::from_secs(3 * PATIENCE.as_secs());

/// One monitor the test expects: its routing key, how its lines are told apart, the `data` of
/// each of its rounds, and its `meta_data` (but `time`).
struct Expected {
    what: String,
    routing_key: &'static str,
    /// (`meta_data` field, value) naming this monitor's lines.
    id: (&'static str, String),
    rounds: Vec<(String, Value)>,
    meta: Value,
}

/// One node section of a `nodes_config.ini`.
struct Section<'a> {
    id: String,
    parent_id: &'a str,
    name: String,
    url: String,
    monitor_node: bool,
    is_validator: bool,
    is_archive_node: bool,
    use_as_data_source: bool,
    stash_address: &'a str,
    governance: &'a [String],
    monitor_network: bool,
}

fn write_nodes_config(cfg: &Path, chain: &str, sections: &[Section<'_>]) {
    let mut text = String::new();
    for s in sections {
        writeln!(
            text,
            "[{id}]\nid = {id}\nparent_id = {parent}\nname = {name}\nnode_ws_url = {url}\n\
             exporter_url =\nmonitor_system = false\nmonitor_node = {mn}\nis_validator = {v}\n\
             is_archive_node = {a}\nuse_as_data_source = {ds}\nstash_address = {stash}\n\
             governance_addresses = {gov}\nmonitor_network = {net}\n",
            id = s.id,
            parent = s.parent_id,
            name = s.name,
            url = s.url,
            mn = s.monitor_node,
            v = s.is_validator,
            a = s.is_archive_node,
            ds = s.use_as_data_source,
            stash = s.stash_address,
            gov = s.governance.join(","),
            net = s.monitor_network,
        )
        .unwrap();
    }
    let dir = cfg.join("chains/substrate").join(chain);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nodes_config.ini"), text).unwrap();
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Replay servers for `nodes` (the first is the leader, whose round the others share); each switch
/// to round `k` happens at the leader's `k+1`-th call of `trigger`.
async fn replays(
    scenario: &str,
    nodes: &[String],
    rounds: &[String],
    trigger: &str,
) -> Vec<Replay> {
    let leader = Replay::start(scenario, &nodes[0]).await;
    for (k, round) in rounds.iter().enumerate().skip(1) {
        leader.switch_on_call(trigger, k + 1, round);
    }
    let mut out = vec![];
    for n in &nodes[1..] {
        out.push(Replay::start_sharing(scenario, n, &leader).await);
    }
    out.insert(0, leader);
    out
}

/// Writes the chains of every case of `scenario` under `cfg` and starts their replay servers:
/// one chain per (case, stash) with its node monitor, and one per case with its network monitor
/// (named `network_chain(case)`). Returns what each monitor must publish.
async fn scenario_chains(
    scenario: &str,
    cfg: &Path,
    network_chain: impl Fn(&str) -> String,
    servers: &mut Vec<(Vec<Replay>, String)>,
) -> Vec<Expected> {
    let expected = fixture(&format!("{scenario}/expected.json"));
    let mut out = Vec::new();
    for case in expected["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let monitored = case["monitored_node"].as_str().unwrap().to_owned();
        let archive = case["archive_node"].as_str().unwrap();
        let data_sources = strings(&case["data_sources"]);
        let rounds = strings(
            &fixture(&format!("{scenario}/{monitored}.json"))["rounds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].clone())
                .collect(),
        );
        let governance = strings(&case["network"]["governance_addresses"]);
        let last_round = rounds.last().unwrap().clone();

        // The node monitors: one chain per stash of the case.
        let stashes = case["node"][&rounds[0]].as_object().unwrap();
        for (i, (stash, entry)) in stashes.iter().enumerate() {
            let chain = format!("{}_{}_node_{i}", scenario, case_name).replace('-', "_");
            let parent_id = format!("chain_{chain}");
            let mut nodes = vec![monitored.clone()];
            nodes.extend(data_sources.iter().filter(|n| **n != monitored).cloned());
            let rs = replays(scenario, &nodes, &rounds, "system_syncState").await;
            let url = |n: &str| rs[nodes.iter().position(|m| m == n).unwrap()].url();
            let is_validator = entry["is_validator"].as_bool().unwrap();
            let node_id = format!("node_{chain}");
            // The monitored node, then the case's data sources in order (non-validators, so
            // PANIC's order keeps them as listed, before the node itself).
            let mut sections = vec![Section {
                id: node_id.clone(),
                parent_id: &parent_id,
                name: monitored.clone(),
                url: url(&monitored),
                monitor_node: true,
                is_validator,
                is_archive_node: false,
                use_as_data_source: false,
                stash_address: stash,
                governance: &governance,
                monitor_network: false,
            }];
            for n in &data_sources {
                sections.push(Section {
                    id: format!("{node_id}_source_{n}"),
                    parent_id: &parent_id,
                    name: format!("{n}_source"),
                    url: url(n),
                    monitor_node: false,
                    is_validator: false,
                    is_archive_node: n == archive,
                    use_as_data_source: true,
                    stash_address: "",
                    governance: &governance,
                    monitor_network: false,
                });
            }
            write_nodes_config(cfg, &chain, &sections);
            let rounds_data = rounds
                .iter()
                .map(|r| {
                    let e = &case["node"][r][stash];
                    assert!(e.get("data").is_some(), "{scenario}/{case_name}/{r}: {e}");
                    (r.clone(), e["data"].clone())
                })
                .collect();
            out.push(Expected {
                what: format!("{scenario}/{case_name}/node/{stash}"),
                routing_key: "node.substrate",
                id: ("node_id", node_id.clone()),
                rounds: rounds_data,
                meta: json!({
                    "monitor_name": format!("Node monitor ({monitored})"),
                    "node_name": monitored,
                    "node_id": node_id,
                    "node_parent_id": parent_id,
                    "is_validator": is_validator,
                    "stash_address": stash,
                }),
            });
            servers.push((rs, last_round.clone()));
        }

        // The network monitor: the case's data sources alone.
        let network = &case["network"];
        if network.is_null() {
            continue;
        }
        let chain = network_chain(case_name);
        let parent_id = format!("chain_{chain}");
        let rs = replays(scenario, &data_sources, &rounds, "system_health").await;
        let sections: Vec<Section<'_>> = data_sources
            .iter()
            .zip(&rs)
            .map(|(n, r)| Section {
                id: format!("node_{chain}_{n}"),
                parent_id: &parent_id,
                name: n.clone(),
                url: r.url(),
                monitor_node: false,
                is_validator: false,
                is_archive_node: n == archive,
                use_as_data_source: true,
                stash_address: "",
                governance: &governance,
                monitor_network: true,
            })
            .collect();
        write_nodes_config(cfg, &chain, &sections);
        let rounds_data = rounds
            .iter()
            .map(|r| {
                let e = &network[r];
                assert!(e.get("error").is_none(), "{scenario}/{case_name}/{r}: {e}");
                (r.clone(), e.clone())
            })
            .collect();
        out.push(Expected {
            what: format!("{scenario}/{case_name}/network"),
            routing_key: "network.substrate",
            id: ("parent_id", parent_id.clone()),
            rounds: rounds_data,
            meta: json!({
                "monitor_name": format!("Substrate Network Monitor ({chain})"),
                "parent_id": parent_id,
                "chain_name": chain,
                "governance_addresses": governance,
            }),
        });
        servers.push((rs, last_round));
    }
    out
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The embedded binary on `cfg`, raw data to `out`, its log to `log`.
fn spawn_manager(
    cfg: &Path,
    out: &Path,
    log: &Path,
    period_seconds: &str,
    args: &[&str],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
        .arg("--config-dir")
        .arg(cfg)
        .arg("--output")
        .arg(out)
        .args(args)
        .env("NODE_MONITOR_PERIOD_SECONDS", period_seconds)
        .env("NETWORK_MONITOR_PERIOD_SECONDS", period_seconds)
        .env("RUST_LOG", "info")
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("monitors-manager binary")
}

/// Runs the embedded binary on `cfg` until every expected monitor has published all its rounds,
/// then checks each of them.
async fn run_and_check(
    dir: &TempDir,
    cfg: &Path,
    period_seconds: &str,
    expected: &[Expected],
    servers: &[(Vec<Replay>, String)],
) {
    let out = dir.0.join("raw.jsonl");
    let log = dir.0.join("manager.log");
    let started = unix_now();
    let child = spawn_manager(cfg, &out, &log, period_seconds, &[]);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let is_error = |v: &Value| {
        v["body"].get("error").is_some() || v["body"]["websocket"].get("error").is_some()
    };
    let of = |l: &[Value], e: &Expected| -> Vec<Value> {
        l.iter()
            .filter(|v| {
                v["routing_key"] == e.routing_key
                    && v["body"]["websocket"]["result"]["meta_data"][e.id.0] == e.id.1.as_str()
            })
            .cloned()
            .collect()
    };
    let start = Instant::now();
    let all = loop {
        let l = lines(&out);
        if let Some(err) = l.iter().find(|v| is_error(v)) {
            panic!("an error envelope: {err:#}\nlog:\n{}", log_text());
        }
        let log = log_text();
        assert!(
            !log.contains("round timed out"),
            "a round timed out (its data is lost, and the next round sees the next fixture \
             round): a slower machine needs a longer period\nlog:\n{log}"
        );
        if expected.iter().all(|e| of(&l, e).len() >= e.rounds.len()) {
            break l;
        }
        assert!(
            start.elapsed() < WAIT,
            "not every monitor published its rounds; missing: {:?}\nlog:\n{}",
            expected
                .iter()
                .filter(|e| of(&l, e).len() < e.rounds.len())
                .map(|e| &e.what)
                .collect::<Vec<_>>(),
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let finished = unix_now();

    for e in expected {
        let got = of(&all, e);
        for (k, (round, want)) in e.rounds.iter().enumerate() {
            let ctx = format!("{} round {round}", e.what);
            let result = &got[k]["body"]["websocket"]["result"];
            let data = &result["data"];
            assert_eq!(data, want, "{ctx}:\n got {data}\nwant {want}");
            let mut meta = result["meta_data"].clone();
            let time = meta
                .as_object_mut()
                .unwrap()
                .remove("time")
                .and_then(|t| t.as_f64())
                .unwrap_or_else(|| panic!("{ctx}: meta_data.time"));
            assert!(
                time >= started - 1.0 && time <= finished + 1.0,
                "{ctx}: time {time} not within the run ({started}..{finished})"
            );
            assert_eq!(meta, e.meta, "{ctx}: meta_data");
        }
    }
    // Every server went through every round (each round of each monitor saw its own round).
    for (rs, last) in servers {
        assert_eq!(&rs[0].round(), last, "{}", rs[0].url());
    }

    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success(), "{status:?}\nlog:\n{}", log_text());
}

#[tokio::test]
async fn substrate_dev_node_and_network_bodies_from_the_embedded_binary() {
    let dir = TempDir::new("panic-substrate-dev");
    let cfg = dir.0.join("config");
    let mut servers = Vec::new();
    let expected = scenario_chains("substrate-dev", &cfg, |_| "dev".to_owned(), &mut servers).await;
    // Three stashes (validator, non-validator, disabled validator) and the network.
    assert_eq!(expected.len(), 4);
    run_and_check(&dir, &cfg, DEV_PERIOD_SECONDS, &expected, &servers).await;
}

#[tokio::test]
async fn polkadot_relay_and_asset_hub_bodies_from_the_embedded_binary() {
    let dir = TempDir::new("panic-substrate-polkadot");
    let cfg = dir.0.join("config");
    let mut servers = Vec::new();
    let expected = scenario_chains(
        "polkadot-assethub",
        &cfg,
        |case| format!("polkadot_{}", case.replace('-', "_")),
        &mut servers,
    )
    .await;
    // Two cases (relay and Asset Hub as data sources, the relay alone): three stashes and the
    // network each.
    assert_eq!(expected.len(), 8);
    run_and_check(&dir, &cfg, POLKADOT_PERIOD_SECONDS, &expected, &servers).await;
}

#[tokio::test]
async fn verify_monitored_tls_covers_the_substrate_websockets() {
    // A wss:// node with the test server's self-signed certificate: PANIC's default (unverified)
    // reads it, `--verify-monitored-tls` refuses it.
    let replay = Replay::start_tls("substrate-dev", "validator").await;
    let expected = fixture("substrate-dev/expected.json");
    let first = &expected["cases"][0]["node"]["first"];
    let (stash, entry) = first.as_object().unwrap().iter().next().unwrap();
    for verify in [false, true] {
        let dir = TempDir::new("panic-substrate-tls");
        let cfg = dir.0.join("config");
        let governance = Vec::new();
        write_nodes_config(
            &cfg,
            "dev_tls",
            &[Section {
                id: "node_tls".to_owned(),
                parent_id: "chain_dev_tls",
                name: "validator".to_owned(),
                url: replay.url(),
                monitor_node: true,
                is_validator: entry["is_validator"].as_bool().unwrap(),
                is_archive_node: true,
                use_as_data_source: true,
                stash_address: stash,
                governance: &governance,
                monitor_network: false,
            }],
        );
        let out = dir.0.join("raw.jsonl");
        let log = dir.0.join("manager.log");
        let args: &[&str] = if verify {
            &["--verify-monitored-tls"]
        } else {
            &[]
        };
        let child = spawn_manager(&cfg, &out, &log, DEV_PERIOD_SECONDS, args);
        let start = Instant::now();
        let line = loop {
            if let Some(l) = lines(&out)
                .into_iter()
                .find(|v| v["routing_key"] == "node.substrate")
            {
                break l;
            }
            assert!(
                start.elapsed() < WAIT,
                "verify {verify}: no node.substrate line\nlog:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ws = &line["body"]["websocket"];
        if verify {
            assert!(ws.get("error").is_some(), "verified: {ws}");
            // PANIC's "node is down", and the log says why: the certificate.
            assert_eq!(ws["error"]["code"], 5015, "verified: {ws}");
            let log = std::fs::read_to_string(&log).unwrap();
            assert!(log.contains("invalid peer certificate"), "{log}");
        } else {
            assert_eq!(ws["result"]["data"], entry["data"], "unverified: {ws}");
        }
        sigterm(child.id().unwrap());
        let status = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }
}
