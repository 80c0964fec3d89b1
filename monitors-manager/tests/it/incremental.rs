//! Section-local planners (`Planner::section_local`): the manager re-reads and re-plans only the
//! sections that changed since the key's last message. The same sequences of messages given to a
//! manager whose planner is section-local and to one whose planner is not (every message read and
//! planned whole) give the same monitors, restarts, builds, errors and monitorables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use monitors_manager::{ManagerSettings, Shard, TaskKey};
use serde_json::{json, Value};

use crate::harness::{monitorable_capture, test_settings, Capture, FakePlanner, Harness, Probe};

const GENERAL: &str = "general.systems_config";
/// Another spelling of [`GENERAL`]: the same monitors (bucket), its own remembered sections.
const GENERAL_ALIAS: &str = "chains.general.general.systems_config";

fn section(name: &str, monitor: bool) -> Value {
    json!({"id": name, "parent_id": "GENERAL", "name": name, "monitor": monitor.to_string()})
}

fn with(name: &str, extra: Value) -> Value {
    let mut s = section(name, true);
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// One manager and what it was seen doing.
struct Side {
    h: Harness,
    probe: Probe,
    monitorables: Capture,
    keys: HashMap<String, TaskKey>,
}

/// What a manager did with one message.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    /// Running monitors by label: component name and whether it was (re)started by the message.
    running: BTreeMap<String, (String, bool)>,
    /// Builds per section id so far.
    builds: BTreeMap<String, u32>,
    config_errors: u64,
    /// Monitorables messages published: routing key and body.
    monitorables: Vec<(String, Value)>,
}

impl Side {
    async fn start(probe: Probe, section_local: bool, settings: ManagerSettings) -> Side {
        let planner = if section_local {
            FakePlanner::systems(&probe)
        } else {
            FakePlanner::systems_whole(&probe)
        };
        let h = Harness::start(vec![planner], settings).await;
        let monitorables = monitorable_capture(&h.bus, "monitorables").await;
        Side {
            h,
            probe,
            monitorables,
            keys: HashMap::new(),
        }
    }

    async fn send(&mut self, routing_key: &str, body: &[u8], ids: &BTreeSet<String>) -> Observed {
        self.h
            .config_bytes(routing_key, Bytes::copy_from_slice(body))
            .await;
        // Let every started monitor be built.
        self.h.advance(Duration::from_millis(50)).await;
        let status = self.h.status();
        let mut running = BTreeMap::new();
        let mut keys = HashMap::new();
        for m in &status.monitors {
            let restarted = self.keys.get(&m.label) != Some(&m.key);
            running.insert(m.label.clone(), (m.component_name.clone(), restarted));
            keys.insert(m.label.clone(), m.key);
        }
        self.keys = keys;
        let monitorables = self
            .monitorables
            .drain()
            .await
            .into_iter()
            .map(|c| (c.routing_key, c.body))
            .collect();
        Observed {
            running,
            builds: ids
                .iter()
                .map(|id| (id.clone(), self.probe.stats(id).builds))
                .collect(),
            config_errors: status.config_errors,
            monitorables,
        }
    }
}

/// The messages: changes, additions, removals, reorders, duplicate spec ids, repeated section
/// ids, `DEFAULT`, disabled sections, bad sections then fixed, a panicking planner, `{}`, bodies
/// that do not parse, another spelling of the key.
fn messages() -> Vec<(&'static str, String)> {
    let a = || section("a", true);
    let b = || section("b", true);
    let c_off = || section("c", false);
    let b2 = || with("b", json!({"exporter_url": "http://changed:9100"}));
    let mut m: Vec<(&str, String)> = Vec::new();
    let mut push = |key: &'static str, body: Value| m.push((key, body.to_string()));
    push(
        GENERAL,
        json!({"DEFAULT": {}, "a": a(), "b": b(), "c": c_off()}),
    );
    push(
        GENERAL,
        json!({"DEFAULT": {}, "a": a(), "b": b2(), "c": c_off()}),
    );
    // The same again: nothing.
    push(
        GENERAL,
        json!({"DEFAULT": {}, "a": a(), "b": b2(), "c": c_off()}),
    );
    // Reordered, c enabled, a disabled.
    push(
        GENERAL,
        json!({"c": section("c", true), "b": b2(), "a": section("a", false)}),
    );
    // Added, removed.
    push(
        GENERAL,
        json!({"c": section("c", true), "d": section("d", true), "e": section("e", true)}),
    );
    // Two sections planning one spec id (the first kept), then the first removed (the second
    // runs), then swapped.
    push(
        GENERAL,
        json!({"c": section("c", true), "d": with("d", json!({"spec_id": "x"})),
        "e": with("e", json!({"spec_id": "x", "more": "1"}))}),
    );
    push(
        GENERAL,
        json!({"c": section("c", true), "e": with("e", json!({"spec_id": "x", "more": "1"}))}),
    );
    push(
        GENERAL,
        json!({"e": with("e", json!({"spec_id": "x", "more": "1"})),
        "d": with("d", json!({"spec_id": "x"})), "c": section("c", true)}),
    );
    // A spec id that is another section's id.
    push(
        GENERAL,
        json!({"c": section("c", true), "f": with("f", json!({"spec_id": "c"}))}),
    );
    // Only the monitorable's name changes: no restart, other monitorables.
    push(
        GENERAL,
        json!({"c": with("c", json!({"source_name": "renamed"})), "f": with("f", json!({"spec_id": "c"}))}),
    );
    // Bad sections (not objects, not strings, a missing name, an unknown behaviour), twice, then
    // fixed one by one.
    let bad = || {
        json!({"c": section("c", true), "g": 3, "h": {"id": ["h"]},
        "i": {"id": "i", "monitor": "true"}, "j": with("j", json!({"behaviour": "nope"})), "k": section("k", true)})
    };
    push(GENERAL, bad());
    push(GENERAL, bad());
    push(
        GENERAL,
        json!({"c": section("c", true), "g": section("g", true), "h": {"id": ["h"]},
        "i": {"id": "i", "monitor": "true"}, "j": section("j", true), "k": section("k", true)}),
    );
    push(
        GENERAL,
        json!({"c": section("c", true), "g": section("g", true), "h": section("h", true),
        "i": section("i", true), "j": section("j", true), "k": section("k", true)}),
    );
    // The planner panics on a section: its monitors are left as they were; then without it.
    push(
        GENERAL,
        json!({"c": section("c", false), "g": section("g", true), "p": with("p", json!({"plan": "panic"}))}),
    );
    push(
        GENERAL,
        json!({"c": section("c", false), "g": section("g", true), "p": with("p", json!({"plan": "panic"}))}),
    );
    push(
        GENERAL,
        json!({"c": section("c", false), "g": section("g", true), "p": section("p", true)}),
    );
    // Through the other spelling of the key (its own memory, the same monitors), and back.
    push(
        GENERAL_ALIAS,
        json!({"g": section("g", true), "p": section("p", true), "q": section("q", true)}),
    );
    push(
        GENERAL_ALIAS,
        json!({"g": section("g", true), "p": section("p", true), "q": with("q", json!({"x": "1"}))}),
    );
    push(
        GENERAL,
        json!({"g": section("g", true), "p": section("p", true)}),
    );
    // `{}`: all removed; then back.
    push(GENERAL, json!({}));
    push(GENERAL, json!({"DEFAULT": {"x": "y"}}));
    push(GENERAL, json!({"a": a(), "b": b()}));
    // Bodies that are not JSON objects: nothing changes.
    m.push((GENERAL, "[1, 2]".to_owned()));
    m.push((GENERAL, "{not json".to_owned()));
    m.push((
        GENERAL,
        r#"{"DEFAULT": {"x": "\ud800"}, "a": {"id": "a", "name": "a", "monitor": "true"}}"#
            .to_owned(),
    ));
    m.push((
        GENERAL,
        r#"{"a": {"id": "a", "name": "a", "monitor": "true", "x": "\ud800"}}"#.to_owned(),
    ));
    // Repeated section ids in the text: first position, last value.
    let a_text = section("a", true).to_string();
    let a_changed = with("a", json!({"x": "2"})).to_string();
    let b_text = section("b", true).to_string();
    m.push((
        GENERAL,
        format!(r#"{{"a": {a_text}, "b": {b_text}, "a": {a_changed}}}"#),
    ));
    m.push((
        GENERAL,
        format!(r#"{{"a": {a_changed}, "b": {b_text}, "a": {a_text}}}"#),
    ));
    m.push((
        GENERAL,
        format!(r#"{{"a": 3, "b": {b_text}, "a": {a_text}}}"#),
    ));
    // Whitespace inside a section: the same section (read again).
    m.push((
        GENERAL,
        format!(r#"{{"b": {b_text},   "a":{}}}"#, a_text.replace(',', " , ")),
    ));
    // Nested deep (left to the whole reading): a rejected section; then a plain one.
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    m.push((
        GENERAL,
        format!(r#"{{"a": {a_text}, "z": {{"id": {deep}}}}}"#),
    ));
    m.push((GENERAL, format!(r#"{{"a": {a_text}, "z": {deep}}}"#)));
    m.push((GENERAL, format!(r#"{{"a": {a_text}}}"#)));
    // A longer message: one removed, one inserted in the middle, reversed, one changed and the
    // order shuffled (matched by id away from the last order).
    let long = |ids: &[usize], changed: Option<usize>| {
        let mut map = serde_json::Map::new();
        for &i in ids {
            let id = format!("l{i}");
            let s = if Some(i) == changed {
                with(&id, json!({"x": "changed"}))
            } else {
                section(&id, true)
            };
            map.insert(id, s);
        }
        Value::Object(map).to_string()
    };
    let all: Vec<usize> = (0..12).collect();
    m.push((GENERAL, long(&all, None)));
    m.push((GENERAL, long(&[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11], None)));
    m.push((
        GENERAL,
        long(&[0, 1, 2, 4, 5, 20, 6, 7, 8, 9, 10, 11], None),
    ));
    m.push((
        GENERAL,
        long(&[11, 10, 9, 8, 7, 6, 20, 5, 4, 2, 1, 0], Some(7)),
    ));
    m.push((
        GENERAL,
        long(&[5, 0, 9, 2, 20, 11, 1, 7, 4, 10, 8, 6, 3], Some(3)),
    ));
    m.push((
        GENERAL,
        long(&[5, 0, 9, 2, 20, 11, 1, 7, 4, 10, 8, 6, 3], None),
    ));
    // An id with escapes (`esc`), the same twice, then its section changed, then spelt plainly.
    let esc = |x: &str| {
        format!(
            r#"{{"a": {a_text}, "e\u0073c": {{"id": "esc", "name": "esc", "monitor": "true", "x": "{x}"}}}}"#
        )
    };
    m.push((GENERAL, esc("1")));
    m.push((GENERAL, esc("1")));
    m.push((GENERAL, esc("2")));
    m.push((GENERAL, esc("2").replace("e\\u0073c", "esc")));
    m
}

async fn same_as_whole(settings: ManagerSettings) -> Vec<Observed> {
    let mut local = Side::start(Probe::default(), true, settings.clone()).await;
    let mut whole = Side::start(Probe::default(), false, settings).await;
    let mut ids: BTreeSet<String> = "abcdefghijkpqz".chars().map(String::from).collect();
    ids.extend((0..21).map(|i| format!("l{i}")));
    ids.insert("esc".to_owned());
    let mut seen = Vec::new();
    for (i, (key, body)) in messages().into_iter().enumerate() {
        let by_section = local.send(key, body.as_bytes(), &ids).await;
        let by_message = whole.send(key, body.as_bytes(), &ids).await;
        assert_eq!(by_section, by_message, "message {i}: {key} {body}");
        seen.push(by_section);
    }
    local.h.stop().await.unwrap();
    whole.h.stop().await.unwrap();
    seen
}

fn restarted(o: &Observed) -> Vec<&str> {
    o.running
        .iter()
        .filter(|(_, (_, restarted))| *restarted)
        .map(|(label, _)| label.as_str())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn section_by_section_is_the_same_as_whole_messages() {
    let seen = same_as_whole(test_settings()).await;
    // Not vacuous: what the sequence does.
    assert_eq!(
        restarted(&seen[0]),
        [
            "general.systems_config/fake_systems/a",
            "general.systems_config/fake_systems/b"
        ]
    );
    assert_eq!(
        restarted(&seen[1]),
        ["general.systems_config/fake_systems/b"]
    );
    assert!(restarted(&seen[2]).is_empty());
    assert!(seen[5]
        .running
        .contains_key("general.systems_config/fake_systems/x"));
    // Errors are logged (counted) again for every message that has them.
    assert!(seen[11].config_errors > seen[10].config_errors);
    assert!(seen[10].config_errors > seen[9].config_errors);
    // The panicking planner left c running.
    assert!(seen[14]
        .running
        .contains_key("general.systems_config/fake_systems/c"));
    assert!(seen[20].running.is_empty());
    // A monitorables message after every message that parses.
    assert!(seen.iter().take(20).all(|o| !o.monitorables.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn section_by_section_is_the_same_as_whole_messages_in_a_shard() {
    for index in 0..2 {
        let settings = ManagerSettings {
            shard: Some(Shard { index, count: 2 }),
            queue_suffix: format!("_shard{index}"),
            ..test_settings()
        };
        same_as_whole(settings).await;
    }
}
