//! Scheduling and publishing: phase spread, fixed rate, the in-flight bound, data then heartbeat.

use std::collections::BTreeSet;
use std::time::Duration;

use monitors_manager::ManagerSettings;
use serde_json::json;
use tokio::time::Instant;

use crate::harness::{test_settings, Capture, FakePlanner, Harness, Probe};

const GENERAL: &str = "general.systems_config";

fn sections(n: usize, extra: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    for i in 0..n {
        let id = format!("m{i:02}");
        let mut s = json!({"id": id, "name": id, "monitor": "true"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        body.insert(id, s);
    }
    serde_json::Value::Object(body)
}

#[tokio::test(start_paused = true)]
async fn monitors_started_together_start_at_distinct_phases_then_keep_their_rate() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        periods: [(monitor_core::PeriodGroup::System, Duration::from_secs(60))]
            .into_iter()
            .collect(),
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let started = Instant::now();
    h.config(GENERAL, &sections(10, json!({})).to_string())
        .await;
    // The monitors' epoch is when the manager handled the config: between `started` and now.
    let handled = Instant::now() - started;
    h.advance(Duration::from_secs(185)).await;

    let mut firsts = BTreeSet::new();
    for i in 0..10 {
        let s = probe.stats(&format!("m{i:02}"));
        let first = s.round_starts[0];
        // Ten monitors: a phase window of 1 s (see `schedule`), not the 60 s period.
        assert!(
            first - started < handled + Duration::from_secs(1),
            "{i}: {s:?}"
        );
        firsts.insert(first);
        // Fixed rate: every later round exactly one period after the previous one.
        for pair in s.round_starts.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_secs(60), "{i}: {s:?}");
        }
        assert!(s.round_starts.len() >= 3, "{i}: {s:?}");
    }
    assert_eq!(firsts.len(), 10, "every monitor has its own phase");
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_round_skips_missed_ticks_and_never_overlaps_itself() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    // Period 10 s, rounds of 9 s: never two at once for one monitor.
    let body = json!({"slow": {"id": "slow", "name": "slow", "monitor": "true",
        "behaviour": "sleep", "round_secs": "9"}});
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(100)).await;
    let s = probe.stats("slow");
    assert!(s.rounds_finished >= 8, "{s:?}");
    assert_eq!(probe.max_in_flight(), 1);
    for pair in s.round_starts.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(9), "{s:?}");
    }
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_bound_grows_with_the_rate_of_rounds_and_shrinks_back() {
    let probe = Probe::default();
    // Floor 3, sized for rounds of 1 s: 60 monitors at 10 s are due 6 rounds a second, so the
    // pool needs 6 permits; with rounds of 9 s (slow lane off, as above) it stays full.
    let settings = ManagerSettings {
        max_in_flight: 3,
        max_in_flight_cap: 50,
        round_budget: Duration::from_secs(1),
        slow_round_percent: 100,
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    assert_eq!(h.round_permits(), 3);
    h.config(
        GENERAL,
        &sections(60, json!({"behaviour": "sleep", "round_secs": "9"})).to_string(),
    )
    .await;
    let mut seen_in_flight = 0;
    for _ in 0..60 {
        h.advance(Duration::from_millis(500)).await;
        seen_in_flight = seen_in_flight.max(h.status().rounds_in_flight);
    }
    assert_eq!(h.round_permits(), 6);
    assert_eq!(probe.max_in_flight(), 6);
    assert_eq!(seen_in_flight, 6);
    // All removed: back to the floor, and the permits of rounds cut short are not lost.
    h.config(GENERAL, "{}").await;
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(h.round_permits(), 3);
    h.config(
        GENERAL,
        &sections(20, json!({"behaviour": "sleep", "round_secs": "9"})).to_string(),
    )
    .await;
    let before = probe.max_in_flight();
    let mut seen_in_flight = 0;
    for _ in 0..60 {
        h.advance(Duration::from_millis(500)).await;
        seen_in_flight = seen_in_flight.max(h.status().rounds_in_flight);
    }
    assert_eq!(
        h.round_permits(),
        3,
        "20 monitors at 10 s ask for 2: the floor"
    );
    assert_eq!(seen_in_flight, 3);
    assert_eq!(before, 6);
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_bounds_concurrent_rounds() {
    let probe = Probe::default();
    // Rounds of 9 s are slow (over 10 % of their 10 s timeout): with the default they would move
    // to the slow lane. Only timed-out rounds make a monitor slow here, so that this test sees the
    // main pool alone (the slow lane is tested in slow_lane.rs).
    let settings = ManagerSettings {
        max_in_flight: 3,
        slow_round_percent: 100,
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    // 20 monitors, rounds of 9 s every 10 s: far more work than 3 permits allow.
    h.config(
        GENERAL,
        &sections(20, json!({"behaviour": "sleep", "round_secs": "9"})).to_string(),
    )
    .await;
    let mut seen_in_flight = 0;
    for _ in 0..120 {
        h.advance(Duration::from_millis(500)).await;
        seen_in_flight = seen_in_flight.max(h.status().rounds_in_flight);
    }
    assert_eq!(probe.max_in_flight(), 3);
    assert_eq!(seen_in_flight, 3);
    let status = h.status();
    assert!(status.rounds_ok >= 15, "{}", status.rounds_ok);
    // Waiting for a permit is not being hung.
    assert_eq!(status.deaths, 0);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rounds_publish_data_in_order_then_the_worker_heartbeat() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut cap = Capture::new(
        &h.bus,
        "everything",
        &[("raw_data", "#"), ("health_check", "heartbeat.worker")],
    )
    .await;
    let body = json!({"two": {"id": "two", "name": "two", "monitor": "true", "behaviour": "two"}});
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(35)).await;
    let got = cap.drain().await;
    assert!(got.len() >= 9, "{got:?}");
    for (i, chunk) in got.chunks(3).enumerate() {
        let keys: Vec<_> = chunk.iter().map(|c| c.routing_key.as_str()).collect();
        assert_eq!(keys, ["system", "github", "heartbeat.worker"], "round {i}");
        assert_eq!(chunk[0].exchange, "raw_data");
        assert_eq!(chunk[2].exchange, "health_check");
        let round = i as u64 + 1;
        assert_eq!(chunk[0].body["result"]["data"]["round"], round);
        assert_eq!(chunk[1].body["result"]["data"]["round"], round);
        let hb = &chunk[2].body;
        assert_eq!(hb["component_name"], "Fake monitor (two)");
        assert_eq!(hb["is_alive"], true);
        assert!(hb["timestamp"].as_f64().unwrap() > 0.0);
    }
    let status = h.status();
    assert_eq!(status.publishes_ok, 2 * status.rounds_ok);
    assert_eq!(status.worker_heartbeats, status.rounds_ok);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn unroutable_data_is_not_a_failure_the_round_and_its_heartbeat_go_on() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    // Only `github` is bound on raw_data: the first publication (`system`) is unroutable. Issue
    // #13 changed this: unroutable data no longer skips the rest of the round and its heartbeat.
    let mut cap = Capture::new(
        &h.bus,
        "partial",
        &[("raw_data", "github"), ("health_check", "heartbeat.worker")],
    )
    .await;
    let body = json!({"two": {"id": "two", "name": "two", "monitor": "true", "behaviour": "two"}});
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(35)).await;
    let got = cap.drain().await;
    let status = h.status();
    assert!(status.rounds_ok >= 3);
    let keys: Vec<_> = got.iter().map(|c| c.routing_key.as_str()).collect();
    assert_eq!(keys.len() as u64, 2 * status.rounds_ok, "{keys:?}");
    for pair in keys.chunks(2) {
        assert_eq!(pair, ["github", "heartbeat.worker"]);
    }
    assert_eq!(status.publishes_unroutable, status.rounds_ok);
    assert_eq!(status.publishes_ok, status.rounds_ok);
    assert_eq!(status.publishes_failed, 0);
    assert_eq!(status.worker_heartbeats, status.rounds_ok);
    assert_eq!(status.deaths, 0);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_publish_skips_the_rest_of_the_round_and_the_heartbeat() {
    let probe = Probe::default();
    // Queues hold one ready message: `full` (no consumer) fills at the first `system` message, so every later publish to it fails (a real failure, like a nack).
    let bus = monitor_bus::MemoryBus::with_queue_limit(1);
    let mut h = Harness::start_on(bus, vec![FakePlanner::systems(&probe)], test_settings()).await;
    {
        use monitor_bus::Bus;
        h.bus.declare_queue("full").await.unwrap();
        h.bus.bind_queue("full", "raw_data", "#").await.unwrap();
    }
    let mut hb = Capture::new(&h.bus, "hb", &[("health_check", "heartbeat.worker")]).await;
    let body = json!({"two": {"id": "two", "name": "two", "monitor": "true", "behaviour": "two"}});
    h.config(GENERAL, &body.to_string()).await;
    let mut heartbeats = 0;
    for _ in 0..7 {
        h.advance(Duration::from_secs(5)).await;
        heartbeats += hb.drain().await.len();
    }
    let status = h.status();
    assert!(status.rounds_ok >= 3);
    // Round 1: `system` is queued (the queue is now full), `github` fails: no heartbeat. Every
    // later round fails at `system`.
    assert_eq!(status.publishes_ok, 1);
    assert_eq!(status.publishes_failed, status.rounds_ok);
    assert_eq!(status.worker_heartbeats, 0);
    assert_eq!(heartbeats, 0);
    assert_eq!(status.deaths, 0, "a failed publish is not a death");
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unroutable_worker_heartbeat_is_not_an_error() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut cap = Capture::new(&h.bus, "raw", &[("raw_data", "#")]).await;
    let body = json!({"a": {"id": "a", "name": "a", "monitor": "true"}});
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(35)).await;
    let got = cap.drain().await;
    assert!(got.len() >= 3);
    let status = h.status();
    assert_eq!(status.publishes_ok as usize, got.len());
    assert_eq!(status.publishes_failed, 0);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_monitor_added_to_a_running_manager_polls_within_its_phase_window() {
    let probe = Probe::default();
    // A long period (GitHub-like) and a 20 s phase window.
    let settings = ManagerSettings {
        periods: [(monitor_core::PeriodGroup::System, Duration::from_secs(3600))]
            .into_iter()
            .collect(),
        max_phase_spread: Duration::from_secs(20),
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    h.config(GENERAL, &sections(5, json!({})).to_string()).await;
    // The manager has been running for a while when more monitors arrive.
    h.advance(Duration::from_secs(1000)).await;
    let added = Instant::now();
    h.config(GENERAL, &sections(10, json!({})).to_string())
        .await;
    h.advance(Duration::from_secs(21)).await;
    let mut firsts = BTreeSet::new();
    for i in 5..10 {
        let s = probe.stats(&format!("m{i:02}"));
        assert_eq!(s.round_starts.len(), 1, "{i}: {s:?}");
        let first = s.round_starts[0];
        assert!(
            first >= added && first - added <= Duration::from_secs(20),
            "{i}: {s:?}"
        );
        firsts.insert(first);
    }
    assert!(firsts.len() > 1, "phases are spread: {firsts:?}");
    // The first five, unchanged, keep their hourly grid: no extra round.
    for i in 0..5 {
        assert_eq!(
            probe.stats(&format!("m{i:02}")).round_starts.len(),
            1,
            "{i}"
        );
    }
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_phase_window_grows_with_the_group() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        periods: [(monitor_core::PeriodGroup::System, Duration::from_secs(60))]
            .into_iter()
            .collect(),
        ..test_settings()
    };
    let window = settings.phase_window(monitor_core::PeriodGroup::System, 1_000);
    assert_eq!(window, Duration::from_secs(10));
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let started = Instant::now();
    let mut body = serde_json::Map::new();
    for i in 0..1_000 {
        let id = format!("big{i:04}");
        body.insert(id.clone(), json!({"id": id, "name": id, "monitor": "true"}));
    }
    h.config(GENERAL, &serde_json::Value::Object(body).to_string())
        .await;
    // The monitors' epoch is when the manager handled the config: between `started` and now.
    let handled = Instant::now() - started;
    h.advance(Duration::from_secs(12)).await;
    let firsts: Vec<Duration> = (0..1_000)
        .map(|i| {
            let s = probe.stats(&format!("big{i:04}"));
            assert_eq!(s.round_starts.len(), 1, "{i}: {s:?}");
            s.round_starts[0] - started
        })
        .collect();
    // 1,000 monitors: spread over the whole 10 s window, not the 1 s of a handful (the paused
    // clock only moves when every task waits, so a first round is at its tick).
    let (first, last) = (*firsts.iter().min().unwrap(), *firsts.iter().max().unwrap());
    assert!(
        last < handled + window,
        "{last:?} after {handled:?} + {window:?}"
    );
    assert!(last - first > Duration::from_secs(9), "{first:?}..{last:?}");
    let late = firsts
        .iter()
        .filter(|f| **f >= handled + window / 2)
        .count();
    assert!(
        (400..=600).contains(&late),
        "{late} of 1,000 in the second half"
    );
    // What runs, by kind (the start-up line of the binary).
    assert_eq!(
        h.status().by_kind(),
        vec![monitors_manager::KindCount {
            planner: "fake_systems".to_owned(),
            period: Duration::from_secs(60),
            monitors: 1_000,
        }]
    );
    h.stop().await.unwrap();
}
