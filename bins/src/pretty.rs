//! The embedded default's readable output: one line per round, for a person at a terminal.
//!
//! ```text
//! 16:20:31  system             System monitor (local_host)  cpu 7.85 %  ram 34.09 %  disk 44.37 %
//! 16:20:31  system             System monitor (local_host)  error 5004: System local_host is unreachable
//! 16:20:40  node.substrate     Substrate node monitor (polkadot_validator)  websocket: best 101 …
//! ```
//!
//! The time is the round's `meta_data.time` in UTC (`HH:MM:SS`), then the raw-data routing key, the
//! monitor's name and a short summary of the main figures decoded from PANIC's envelope for that
//! key (spec §4): system CPU, RAM and disk use; the latest GitHub release or DockerHub tag; a
//! node's height and syncing; a validator's bond status; a network's proposals or referendums;
//! a contracts monitor's feeds. An error envelope gives its code and message. Multi-source bodies
//! (`{"prometheus": …, "cosmos_rest": …}`) give one `source: …` part per enabled source. A body
//! this module does not know is shown as compact JSON (cut at [`MAX_UNKNOWN`] characters): the
//! readable form never hides a message. JSON lines ([`crate::sink::line`]) stay the default when
//! stdout is not a terminal.

use serde_json::{Map, Value};

/// Longest summary of a body this module cannot decode (characters).
pub const MAX_UNKNOWN: usize = 200;

/// Width the routing key is padded to.
const KEY_WIDTH: usize = 18;

/// One readable line (with its newline) for a raw-data message.
pub fn line(routing_key: &str, body: &[u8]) -> String {
    let mut out = match serde_json::from_slice::<Value>(body) {
        Ok(v) => render(routing_key, &v),
        Err(_) => format!(
            "{:8}  {routing_key:KEY_WIDTH$} (not JSON) {}",
            "--:--:--",
            cut(&String::from_utf8_lossy(body))
        ),
    };
    out.push('\n');
    out
}

/// The envelope sources of a body: `("", envelope)` for a flat envelope (`{"result"|"error": …}`),
/// else every `(source, envelope)` whose value is an object (disabled sources are `{}`).
fn envelopes(body: &Value) -> Vec<(&str, &Map<String, Value>)> {
    let Some(obj) = body.as_object() else {
        return Vec::new();
    };
    if obj.contains_key("result") || obj.contains_key("error") {
        return vec![("", obj)];
    }
    obj.iter()
        .filter_map(|(k, v)| v.as_object().map(|o| (k.as_str(), o)))
        .collect()
}

fn render(routing_key: &str, body: &Value) -> String {
    let sources = envelopes(body);
    let meta = sources.iter().find_map(|(_, env)| {
        env.get("result")
            .or_else(|| env.get("error"))
            .and_then(|e| e.get("meta_data"))
    });
    let time = meta
        .and_then(|m| m.get("time"))
        .and_then(Value::as_f64)
        .map_or_else(|| "--:--:--".to_owned(), clock);
    let name = meta
        .and_then(|m| m.get("monitor_name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let mut parts = Vec::new();
    for (source, env) in &sources {
        let summary = if let Some(error) = env.get("error") {
            error_summary(error)
        } else if let Some(data) = env.get("result").and_then(|r| r.get("data")) {
            data_summary(routing_key, source, data)
        } else {
            continue; // a disabled source: `{}`
        };
        parts.push(if source.is_empty() {
            summary
        } else {
            format!("{source}: {summary}")
        });
    }
    if parts.is_empty() {
        parts.push(cut(&body.to_string()));
    }
    format!(
        "{time:8}  {routing_key:KEY_WIDTH$} {name}  {}",
        parts.join("  ")
    )
}

/// `HH:MM:SS` (UTC) of UNIX seconds.
fn clock(unix: f64) -> String {
    if !unix.is_finite() || unix < 0.0 {
        return "--:--:--".to_owned();
    }
    // Truncation to whole seconds is what a clock shows.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = unix as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn error_summary(error: &Value) -> String {
    let code = error.get("code").map_or("?".to_owned(), Value::to_string);
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    format!("error {code}: {message}")
}

/// A figure as written: numbers as JSON prints them, strings bare, null as `-`.
fn fig(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "yes".to_owned(),
        Some(Value::Bool(false)) => "no".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// A percentage rounded to 2 decimals.
fn pct(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) => format!("{:.2} %", (x * 100.0).round() / 100.0),
        None => "-".to_owned(),
    }
}

fn data_summary(routing_key: &str, source: &str, data: &Value) -> String {
    let g = |k: &str| data.get(k);
    match (routing_key, source) {
        ("system", _) => format!(
            "cpu {}  ram {}  disk {}",
            pct(g("system_cpu_usage")),
            pct(g("system_ram_usage")),
            pct(g("system_storage_usage"))
        ),
        ("github", _) => match data.get("0") {
            Some(r) => format!(
                "latest release {} ({})",
                fig(r.get("tag_name")),
                fig(r.get("release_name"))
            ),
            None => "no releases".to_owned(),
        },
        ("dockerhub", _) => {
            let tags: Vec<&Value> = data
                .as_object()
                .map_or(Vec::new(), |o| o.values().collect());
            let latest = tags.iter().max_by(|a, b| {
                let t = |v: &Value| v.get("last_updated").and_then(Value::as_f64).unwrap_or(0.0);
                t(a).total_cmp(&t(b))
            });
            match latest {
                Some(t) => format!(
                    "latest tag {} ({} tags)",
                    fig(t.get("tag_name")),
                    tags.len()
                ),
                None => "no tags".to_owned(),
            }
        }
        ("node.evm", _) => format!(
            "height {}  syncing {}",
            fig(g("current_height")),
            fig(g("syncing"))
        ),
        ("node.chainlink", _) => {
            let balance = g("balance").filter(|b| b.get("balance").is_some());
            let mut s = format!("head {}", fig(g("head_tracker_current_head")));
            if let Some(b) = balance {
                s.push_str(&format!(
                    "  balance {} {}",
                    fig(b.get("balance")),
                    fig(b.get("symbol"))
                ));
            }
            s.push_str(&format!(
                "  gas bumps {}",
                fig(g("tx_manager_num_gas_bumps_total"))
            ));
            s
        }
        ("node.cosmos", "prometheus") => format!(
            "height {}  voting power {}",
            fig(g("tendermint_consensus_latest_block_height")),
            fig(g("tendermint_consensus_validator_power"))
        ),
        ("node.cosmos", "cosmos_rest") => format!(
            "bond {}  jailed {}",
            fig(g("bond_status")),
            fig(g("jailed"))
        ),
        ("node.cosmos", "tendermint_rpc") => {
            let blocks = g("historical")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("syncing {}  {blocks} new blocks", fig(g("is_syncing")))
        }
        ("node.substrate", _) => {
            let mut s = format!(
                "best {}  finalized {}  target {}",
                fig(g("best_height")),
                fig(g("finalized_height")),
                fig(g("target_height"))
            );
            if g("active").is_some_and(|a| !a.is_null()) {
                s.push_str(&format!(
                    "  active {}  elected {}",
                    fig(g("active")),
                    fig(g("elected"))
                ));
            }
            s
        }
        ("contracts.chainlink", _) => {
            let feeds = data.as_object().map_or(0, Map::len);
            format!("{feeds} feeds")
        }
        ("network.cosmos", _) => {
            let proposals = g("proposals").and_then(Value::as_array);
            let total = proposals.map_or(0, Vec::len);
            let voting = proposals.map_or(0, |p| {
                p.iter()
                    .filter(|p| p.get("status").and_then(Value::as_str) == Some("voting_period"))
                    .count()
            });
            format!("{total} proposals ({voting} in voting)")
        }
        ("network.substrate", _) => format!(
            "referendums {}  proposals {}  grandpa stalled {}",
            fig(g("referendum_count")),
            fig(g("public_prop_count")),
            fig(g("grandpa_stalled"))
        ),
        _ => cut(&data.to_string()),
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_UNKNOWN {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_UNKNOWN).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn show(key: &str, body: Value) -> String {
        line(key, body.to_string().as_bytes())
    }

    #[test]
    fn system_result_and_error() {
        let meta = json!({"monitor_name": "System monitor (host)", "time": 1_700_000_431.25});
        let ok = json!({"result": {"meta_data": meta, "data": {
            "system_cpu_usage": 7.85, "system_ram_usage": 34.09, "system_storage_usage": 44.371}}});
        assert_eq!(
            show("system", ok),
            "22:20:31  system             System monitor (host)  cpu 7.85 %  ram 34.09 %  \
             disk 44.37 %\n"
        );
        let err = json!({"error": {"meta_data": meta, "code": 5004,
            "message": "System host is unreachable"}});
        assert_eq!(
            show("system", err),
            "22:20:31  system             System monitor (host)  error 5004: System host is \
             unreachable\n"
        );
    }

    #[test]
    fn multi_source_bodies_show_each_enabled_source() {
        let meta = json!({"monitor_name": "Cosmos node monitor (n)", "time": 0.0});
        let body = json!({
            "prometheus": {"result": {"meta_data": meta,
                "data": {"tendermint_consensus_latest_block_height": 120.0,
                         "tendermint_consensus_validator_power": 0.0}}},
            "cosmos_rest": {},
            "tendermint_rpc": {"error": {"meta_data": meta, "code": 5015, "message": "down"}},
        });
        let l = show("node.cosmos", body);
        assert!(l.starts_with("00:00:00  node.cosmos"), "{l}");
        assert!(
            l.contains("prometheus: height 120.0  voting power 0.0"),
            "{l}"
        );
        assert!(l.contains("tendermint_rpc: error 5015: down"), "{l}");
        assert!(!l.contains("cosmos_rest"), "{l}");
    }

    #[test]
    fn releases_tags_and_nodes() {
        let meta = json!({"monitor_name": "m", "time": 3600.0});
        let gh = json!({"result": {"meta_data": meta, "data": {
            "0": {"release_name": "v2 final", "tag_name": "v2.0.0"},
            "1": {"release_name": "v1", "tag_name": "v1.0.0"}}}});
        assert!(show("github", gh).contains("latest release v2.0.0 (v2 final)"));
        let dh = json!({"result": {"meta_data": meta, "data": {
            "0": {"tag_name": "old", "last_updated": 1.0},
            "1": {"tag_name": "new", "last_updated": 2.0}}}});
        assert!(show("dockerhub", dh).contains("latest tag new (2 tags)"));
        let evm = json!({"result": {"meta_data": meta, "data": {
            "current_height": 19_000_000, "syncing": false}}});
        assert!(show("node.evm", evm).contains("height 19000000  syncing no"));
    }

    #[test]
    fn unknown_and_non_json_bodies_are_kept() {
        let l = show("something.new", json!({"x": 1}));
        assert!(l.contains("{\"x\":1}"), "{l}");
        let l = line("system", b"not json");
        assert!(l.contains("(not JSON) not json"), "{l}");
        let long = "y".repeat(500);
        assert!(show("k", json!({ "x": long })).chars().count() < 300);
    }
}
