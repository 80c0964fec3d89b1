//! Config messages: start, modify, remove, disable, `{}`, bad messages, monitorables.

use std::time::Duration;

use monitor_bus::Bus;
use monitor_core::envelope::{MonitorableMessage, MonitorableSource};
use monitor_core::keys::CONFIG_EXCHANGE;
use monitors_manager::ManagerSettings;
use serde_json::json;

use crate::harness::{
    monitor, monitorable_capture, names, raw_capture, test_settings, FakePlanner, Harness, Probe,
};

const GENERAL: &str = "general.systems_config";

fn section(name: &str, monitor: bool) -> serde_json::Value {
    json!({"id": name, "parent_id": "GENERAL", "name": name, "monitor": monitor.to_string()})
}

#[tokio::test(start_paused = true)]
async fn start_modify_remove_disable_and_empty() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut raw = raw_capture(&h.bus, "raw").await;

    // Start: a and b enabled, c disabled.
    let body = json!({"a": section("a", true), "b": section("b", true), "c": section("c", false)});
    h.config(GENERAL, &body.to_string()).await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)", "Fake monitor (b)"]);
    h.advance(Duration::from_secs(25)).await;
    for id in ["a", "b"] {
        let s = probe.stats(id);
        assert_eq!(s.builds, 1, "{id}");
        assert!(s.rounds_finished >= 2, "{id}: {s:?}");
    }
    assert_eq!(probe.stats("c").builds, 0);
    let published = raw.drain().await;
    assert!(published
        .iter()
        .any(|c| c.body["result"]["data"]["id"] == "a"));
    assert!(published
        .iter()
        .any(|c| c.body["result"]["data"]["id"] == "b"));

    // Modify b only: b restarts (new key, second build), a keeps running untouched.
    let status = h.status();
    let key_a = monitor(&status, "Fake monitor (a)").key;
    let key_b = monitor(&status, "Fake monitor (b)").key;
    let mut b2 = section("b", true);
    b2["exporter_url"] = json!("http://changed:9100");
    let body = json!({"a": section("a", true), "b": b2, "c": section("c", false)});
    h.config(GENERAL, &body.to_string()).await;
    let status = h.status();
    assert_eq!(monitor(&status, "Fake monitor (a)").key, key_a);
    assert_ne!(monitor(&status, "Fake monitor (b)").key, key_b);
    assert_eq!(probe.stats("a").builds, 1);
    assert_eq!(probe.stats("b").builds, 2);

    // Re-sending the same config changes nothing.
    h.config(GENERAL, &body.to_string()).await;
    assert_eq!(probe.stats("a").builds, 1);
    assert_eq!(probe.stats("b").builds, 2);

    // Enable c, disable a: c starts, a stops and runs no more rounds.
    let body = json!({"a": section("a", false), "b": b2, "c": section("c", true)});
    h.config(GENERAL, &body.to_string()).await;
    assert_eq!(names(&h.status()), ["Fake monitor (b)", "Fake monitor (c)"]);
    let a_rounds = probe.stats("a").rounds_started;
    h.advance(Duration::from_secs(30)).await;
    assert_eq!(probe.stats("a").rounds_started, a_rounds);
    assert!(probe.stats("c").rounds_finished >= 2);

    // Remove b (absent from the message).
    let body = json!({"c": section("c", true)});
    h.config(GENERAL, &body.to_string()).await;
    assert_eq!(names(&h.status()), ["Fake monitor (c)"]);

    // `{}`: everything under the key stops; no more data.
    h.config(GENERAL, "{}").await;
    assert!(h.status().monitors.is_empty());
    raw.drain().await;
    let rounds: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|id| probe.stats(id).rounds_started)
        .collect();
    h.advance(Duration::from_secs(30)).await;
    assert!(raw.drain().await.is_empty());
    let after: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|id| probe.stats(id).rounds_started)
        .collect();
    assert_eq!(rounds, after);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn specs_are_kept_per_routing_key() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    h.config(GENERAL, &json!({"g": section("g", true)}).to_string())
        .await;
    h.config(
        "chains.cosmos.hub.systems_config",
        &json!({"h": section("h", true)}).to_string(),
    )
    .await;
    assert_eq!(names(&h.status()), ["Fake monitor (g)", "Fake monitor (h)"]);
    // `{}` for the chain stops only the chain's monitor.
    h.config("chains.cosmos.hub.systems_config", "{}").await;
    assert_eq!(names(&h.status()), ["Fake monitor (g)"]);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bad_messages_and_sections_disturb_nothing() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;
    let key_a = monitor(&h.status(), "Fake monitor (a)").key;

    // Invalid JSON, a body that is not an object: logged, acked (checked by `config`), nothing
    // changes.
    h.config(GENERAL, "{not json").await;
    h.config(GENERAL, "[1, 2]").await;
    assert_eq!(monitor(&h.status(), "Fake monitor (a)").key, key_a);
    assert_eq!(h.status().config_errors, 2);

    // An unknown config key reaching the queue: logged and acked.
    h.bus
        .bind_queue(
            &h.settings.configs_queue(),
            CONFIG_EXCHANGE,
            "general.bogus_config",
        )
        .await
        .unwrap();
    h.config("general.bogus_config", "{}").await;
    assert_eq!(h.status().config_errors, 3);
    assert_eq!(monitor(&h.status(), "Fake monitor (a)").key, key_a);

    // A message for a chain with a section that is not an object, a section missing `name` and
    // one valid section: the valid one starts, the others are reported.
    let body = json!({
        "x": 3,
        "z": {"id": "z", "monitor": "true"},
        "y": section("y", true),
    });
    h.config("chains.cosmos.hub.systems_config", &body.to_string())
        .await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)", "Fake monitor (y)"]);
    assert_eq!(h.status().config_errors, 5);
    assert_eq!(monitor(&h.status(), "Fake monitor (a)").key, key_a);
    assert_eq!(probe.stats("a").builds, 1);

    // A key no planner accepts is acked and changes nothing.
    h.config(
        "chains.cosmos.hub.github_repos_config",
        &json!({"r": section("r", true)}).to_string(),
    )
    .await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)", "Fake monitor (y)"]);

    h.advance(Duration::from_secs(30)).await;
    assert!(probe.stats("a").rounds_finished >= 2);
    assert_eq!(h.status().config_messages, 6);
    h.stop().await.unwrap();
}

fn source(parent: &str, chain: &str, id: &str) -> MonitorableSource {
    MonitorableSource {
        chain_id: parent.to_owned(),
        chain_name: chain.to_owned(),
        source_id: id.to_owned(),
        source_name: id.to_owned(),
    }
}

fn chain_section(name: &str, parent: &str) -> serde_json::Value {
    json!({"id": name, "parent_id": parent, "name": name, "monitor": "true"})
}

#[tokio::test(start_paused = true)]
async fn monitorables_after_start_remove_and_empty_across_sub_chains() {
    let probe = Probe::default();
    let mut h = Harness::start(
        vec![FakePlanner::systems(&probe), FakePlanner::nodes(&probe)],
        test_settings(),
    )
    .await;
    let mut cap = monitorable_capture(&h.bus, "monitorables").await;
    let hub = "chains.cosmos.hub.systems_config";
    let osmo = "chains.cosmos.osmo.systems_config";

    let last = |cap: Vec<crate::harness::Captured>, key: &str| -> MonitorableMessage {
        assert_eq!(cap.len(), 1, "{cap:?}");
        assert_eq!(cap[0].routing_key, key);
        serde_json::from_value(cap[0].body.clone()).unwrap()
    };

    h.config(
        hub,
        &json!({"h2": chain_section("h2", "hub_id"), "h1": chain_section("h1", "hub_id")})
            .to_string(),
    )
    .await;
    let m = last(cap.drain().await, "cosmos.systems");
    assert_eq!(m.manager_name, "Monitors Manager");
    assert_eq!(
        m.sources,
        [source("hub_id", "hub", "h1"), source("hub_id", "hub", "h2")]
    );

    h.config(
        osmo,
        &json!({"o1": chain_section("o1", "osmo_id")}).to_string(),
    )
    .await;
    let m = last(cap.drain().await, "cosmos.systems");
    assert_eq!(
        m.sources,
        [
            source("hub_id", "hub", "h1"),
            source("hub_id", "hub", "h2"),
            source("osmo_id", "osmo", "o1"),
        ]
    );

    // A nodes_config of the same base chain publishes `cosmos.nodes` only, with its own sources.
    h.config(
        "chains.cosmos.hub.nodes_config",
        &json!({"n1": chain_section("n1", "hub_id")}).to_string(),
    )
    .await;
    let m = last(cap.drain().await, "cosmos.nodes");
    assert_eq!(m.sources, [source("hub_id", "hub", "n1")]);

    // Remove h2.
    h.config(
        hub,
        &json!({"h1": chain_section("h1", "hub_id")}).to_string(),
    )
    .await;
    let m = last(cap.drain().await, "cosmos.systems");
    assert_eq!(
        m.sources,
        [
            source("hub_id", "hub", "h1"),
            source("osmo_id", "osmo", "o1")
        ]
    );

    // `{}` for hub: only osmo remains.
    h.config(hub, "{}").await;
    let m = last(cap.drain().await, "cosmos.systems");
    assert_eq!(m.sources, [source("osmo_id", "osmo", "o1")]);

    // `{}` for osmo: an empty list (the store then drops this manager's systems).
    h.config(osmo, "{}").await;
    let m = last(cap.drain().await, "cosmos.systems");
    assert!(m.sources.is_empty());

    // A general config publishes `general.systems`, with no cosmos sources.
    h.config(GENERAL, &json!({"g": section("g", true)}).to_string())
        .await;
    let m = last(cap.drain().await, "general.systems");
    assert_eq!(m.sources, [source("GENERAL", "general", "g")]);

    // Invalid JSON publishes nothing.
    h.config(GENERAL, "nope").await;
    assert!(cap.drain().await.is_empty());
    h.stop().await.unwrap();
}

/// Every config message publishes the monitorables again, whether or not the list changed; the
/// list follows starts, removals and a monitorable renamed without a restart, and not a restart
/// that leaves it as it was.
#[tokio::test(start_paused = true)]
async fn monitorables_are_published_after_every_message_and_follow_every_change() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut cap = monitorable_capture(&h.bus, "monitorables").await;
    let last = async |cap: &mut crate::harness::Capture| -> MonitorableMessage {
        let got = cap.drain().await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].routing_key, "general.systems");
        serde_json::from_value(got[0].body.clone()).unwrap()
    };
    let renamed = |id: &str, name: &str| {
        let mut s = section(id, true);
        s["source_name"] = json!(name);
        s
    };
    let two = json!({"b": section("b", true), "a": section("a", true)}).to_string();
    h.config(GENERAL, &two).await;
    let first = last(&mut cap).await;
    assert_eq!(
        first.sources,
        [
            source("GENERAL", "general", "a"),
            source("GENERAL", "general", "b")
        ]
    );
    // The same message again: the same list, published again.
    h.config(GENERAL, &two).await;
    assert_eq!(last(&mut cap).await, first);
    // `b` restarted (another field): the same list.
    let mut b = section("b", true);
    b["extra"] = json!("1");
    let restarted = json!({"b": b.clone(), "a": section("a", true)}).to_string();
    h.config(GENERAL, &restarted).await;
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(probe.stats("b").builds, 2);
    assert_eq!(last(&mut cap).await, first);
    // `a`'s monitorable renamed, no restart: the list follows.
    h.config(
        GENERAL,
        &json!({"b": b.clone(), "a": renamed("a", "A")}).to_string(),
    )
    .await;
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(probe.stats("a").builds, 1);
    let mut a_renamed = source("GENERAL", "general", "a");
    a_renamed.source_name = "A".to_owned();
    assert_eq!(
        last(&mut cap).await.sources,
        [a_renamed.clone(), source("GENERAL", "general", "b")]
    );
    // `c` added, then `b` removed.
    h.config(
        GENERAL,
        &json!({"b": b, "a": renamed("a", "A"), "c": section("c", true)}).to_string(),
    )
    .await;
    assert_eq!(
        last(&mut cap).await.sources,
        [
            a_renamed.clone(),
            source("GENERAL", "general", "b"),
            source("GENERAL", "general", "c")
        ]
    );
    h.config(
        GENERAL,
        &json!({"a": renamed("a", "A"), "c": section("c", true)}).to_string(),
    )
    .await;
    assert_eq!(
        last(&mut cap).await.sources,
        [a_renamed, source("GENERAL", "general", "c")]
    );
    // A bad body publishes nothing; `{}` publishes the empty list.
    h.config(GENERAL, "nope").await;
    assert!(cap.drain().await.is_empty());
    h.config(GENERAL, "{}").await;
    assert!(last(&mut cap).await.sources.is_empty());
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn monitorables_unroutable_is_not_an_error() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    // Nothing is bound to `monitorable`: the message is produced, dropped, and the manager goes on.
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)"]);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_store_queue_is_declared_so_early_monitorables_wait_for_the_store() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        declare_monitorable_store_queue: true,
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    // No store runs yet: the message waits in the store's queue instead of being dropped.
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;
    let queue = monitor_core::keys::MONITORABLE_STORE_INPUT_QUEUE;
    assert_eq!(h.bus.queue_len(queue), Some(1));
    let mut store = h.bus.consume(queue, 0).await.unwrap();
    let d = store.next().await.unwrap();
    assert_eq!(d.routing_key, "general.systems");
    let msg: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(msg["sources"][0]["source_id"], "a");
    h.stop().await.unwrap();
}

/// Hostile config input: a body above the size limit (valid JSON, yet never applied), a config of
/// 50,000 sections, JSON nested 100,000 deep, non-UTF-8 bytes and a routing key with odd
/// characters are all acked and counted; the running monitor is untouched and keeps polling.
#[tokio::test(start_paused = true)]
async fn oversized_huge_nested_non_utf8_and_odd_keys_are_acked_and_disturb_nothing() {
    const LIMIT: usize = 8 * 1024 * 1024;
    let probe = Probe::default();
    let settings = ManagerSettings {
        max_config_bytes: LIMIT,
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;
    let key_a = monitor(&h.status(), "Fake monitor (a)").key;

    // Valid, but above the limit: not parsed, not applied (`a` would be removed, `big` started).
    let mut big = section("big", true);
    big["padding"] = json!("x".repeat(LIMIT));
    let body = json!({"big": big}).to_string();
    assert!(body.len() > LIMIT);
    h.config(GENERAL, &body).await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)"]);
    assert_eq!(h.status().config_errors, 1);

    // Exactly at the limit is still applied: the limit is on the body, not a guess.
    let mut at = section("at", true);
    at["padding"] = json!("");
    let base = json!({"a": section("a", true), "at": at}).to_string().len();
    at["padding"] = json!("x".repeat(LIMIT - base));
    let body = json!({"a": section("a", true), "at": at}).to_string();
    assert_eq!(body.len(), LIMIT);
    h.config(GENERAL, &body).await;
    assert_eq!(
        names(&h.status()),
        ["Fake monitor (a)", "Fake monitor (at)"]
    );
    assert_eq!(h.status().config_errors, 1);
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;

    // Deeply nested JSON (serde_json's recursion limit), non-UTF-8 bytes, an odd routing key.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    h.config(GENERAL, &nested).await;
    h.config_bytes(
        GENERAL,
        bytes::Bytes::from_static(b"{\"a\": {\"id\": \"\xff\xfe\"}}"),
    )
    .await;
    h.config_bytes(GENERAL, bytes::Bytes::from_static(b"\xc3\x28\x00\x01"))
        .await;
    let odd = "chains.c\u{fffd} \u{0}*#.s\u{e9}ct..systems_config";
    h.bus
        .bind_queue(&h.settings.configs_queue(), CONFIG_EXCHANGE, odd)
        .await
        .unwrap();
    h.config(odd, &json!({"o": section("o", true)}).to_string())
        .await;
    assert_eq!(h.status().config_errors, 5);

    // A config of 50,000 sections under the limit: parsed and applied.
    let mut sections = serde_json::Map::new();
    for i in 0..50_000 {
        sections.insert(format!("s{i}"), section(&format!("s{i}"), false));
    }
    sections.insert("a".to_owned(), section("a", true));
    sections.insert("z".to_owned(), section("z", true));
    let body = serde_json::Value::Object(sections).to_string();
    assert!(body.len() < LIMIT);
    h.config(GENERAL, &body).await;
    assert_eq!(names(&h.status()), ["Fake monitor (a)", "Fake monitor (z)"]);
    assert_eq!(h.status().config_errors, 5);
    h.config(GENERAL, &json!({"a": section("a", true)}).to_string())
        .await;

    assert_eq!(names(&h.status()), ["Fake monitor (a)"]);
    assert_eq!(monitor(&h.status(), "Fake monitor (a)").key, key_a);
    let before = probe.stats("a").rounds_finished;
    h.advance(Duration::from_secs(30)).await;
    assert!(probe.stats("a").rounds_finished > before);
    h.stop().await.unwrap();
}

/// Issue #14: a change of one section in a 10,000-section message restarts that monitor only;
/// the other 9,999 keep their task (same key) and were built once.
#[tokio::test(start_paused = true)]
async fn one_changed_section_of_ten_thousand_restarts_only_that_monitor() {
    const N: usize = 10_000;
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut body = serde_json::Map::new();
    for i in 0..N {
        let id = format!("s{i}");
        body.insert(id.clone(), section(&id, true));
    }
    h.config(
        GENERAL,
        &serde_json::Value::Object(body.clone()).to_string(),
    )
    .await;
    h.wait_for("every monitor to be built", || {
        (0..N).all(|i| probe.stats(&format!("s{i}")).builds == 1)
    })
    .await;
    let keys: std::collections::HashSet<_> = h.status().monitors.iter().map(|m| m.key).collect();
    assert_eq!(keys.len(), N);

    let changed = "s4321";
    body[changed]["exporter_url"] = json!("http://changed:9100");
    h.config(GENERAL, &serde_json::Value::Object(body).to_string())
        .await;
    h.wait_for("the changed monitor to be rebuilt", || {
        probe.stats(changed).builds == 2
    })
    .await;
    let status = h.status();
    assert_eq!(status.monitors.len(), N);
    let mut restarted = Vec::new();
    for m in &status.monitors {
        if !keys.contains(&m.key) {
            restarted.push(m.component_name.clone());
        }
    }
    assert_eq!(restarted, [format!("Fake monitor ({changed})")]);
    for i in (0..N).filter(|&i| format!("s{i}") != changed) {
        assert_eq!(probe.stats(&format!("s{i}")).builds, 1, "s{i}");
    }
    h.stop().await.unwrap();
}
