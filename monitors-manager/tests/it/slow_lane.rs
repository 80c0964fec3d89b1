//! Issue #13 (4): healthy monitors are never starved by unhealthy targets. 1,000 monitors whose
//! targets never answer (rounds that hang until the timeout, or answer just before it) beside 50
//! healthy ones, default in-flight settings, 10 s period: every healthy round starts within 1 s of
//! its tick, from the first period on.

use std::time::Duration;

use monitors_manager::{phase, ManagerSettings};
use serde_json::json;
use tokio::time::Instant;

use crate::harness::{test_settings, FakePlanner, Harness, Probe};

const GENERAL: &str = "general.systems_config";
const PERIOD: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn a_thousand_unanswered_targets_do_not_delay_fifty_healthy_monitors() {
    let probe = Probe::default();
    let settings = test_settings();
    let defaults = ManagerSettings::default();
    assert_eq!(settings.max_in_flight, defaults.max_in_flight);
    assert_eq!(settings.slow_in_flight, defaults.slow_in_flight);
    assert_eq!(settings.slow_round_percent, defaults.slow_round_percent);
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings.clone()).await;
    let mut body = serde_json::Map::new();
    for i in 0..1000 {
        let id = format!("dead{i:04}");
        // Half never answer (cut off by the round timeout), half answer just before it (a
        // strategy's own request timeout).
        let s = if i % 2 == 0 {
            json!({"id": id, "name": id, "monitor": "true", "behaviour": "hang"})
        } else {
            json!({"id": id, "name": id, "monitor": "true", "behaviour": "sleep", "round_secs": "9"})
        };
        body.insert(id, s);
    }
    for i in 0..50 {
        let id = format!("ok{i:02}");
        body.insert(id.clone(), json!({"id": id, "name": id, "monitor": "true"}));
    }
    let t0 = Instant::now();
    h.config(GENERAL, &serde_json::Value::Object(body).to_string())
        .await;
    let handled = Instant::now();
    h.advance(Duration::from_secs(120)).await;

    for i in 0..50 {
        let id = format!("ok{i:02}");
        let starts = probe.stats(&id).round_starts;
        let phase = phase(&format!("Fake monitor ({id})"), &id, PERIOD);
        // The monitor's epoch is when the manager handled the config: between t0 and `handled`.
        let first_tick = t0 + phase;
        assert!(starts.len() >= 11, "{id}: {} rounds", starts.len());
        assert!(
            starts[0] >= first_tick
                && starts[0] - first_tick <= Duration::from_secs(1) + (handled - t0),
            "{id}: first round {:?} after its tick",
            starts[0] - first_tick
        );
        for (k, start) in starts.iter().enumerate() {
            let tick = starts[0] + PERIOD * k as u32;
            assert!(
                *start >= tick && *start - tick <= Duration::from_secs(1),
                "{id}: round {k} started {:?} after its tick",
                start.saturating_duration_since(tick)
            );
        }
    }
    let status = h.status();
    // The bound on concurrent work holds: main pool plus slow lane.
    assert!(
        probe.max_in_flight() <= settings.max_in_flight + settings.slow_in_flight,
        "{}",
        probe.max_in_flight()
    );
    assert!(status.slow_monitors >= 900, "{}", status.slow_monitors);
    assert!(status.slow_monitors <= 1000, "{}", status.slow_monitors);
    for i in 0..50 {
        let m = crate::harness::monitor(&status, &format!("Fake monitor (ok{i:02})"));
        assert_eq!(m.deaths, 0);
    }
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_monitor_moves_to_the_slow_lane_and_back_when_fast_again() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    // Rounds of 3 s at a 10 s period: slow (over 1 s) but within the timeout.
    let body = json!({
        "s": {"id": "s", "name": "s", "monitor": "true", "behaviour": "sleep", "round_secs": "3"},
        // The first incarnation's rounds hang; after the restart (hung) they are fast.
        "f": {"id": "f", "name": "f", "monitor": "true", "behaviour": "hang_first"},
    });
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(25)).await;
    let status = h.status();
    assert_eq!(status.slow_monitors, 2, "{status:?}");
    assert_eq!(
        status.rounds_cut_off, 0,
        "the slow lane had room: moved, not cut off"
    );
    assert!(
        probe.stats("s").rounds_finished >= 2,
        "slow rounds still finish"
    );
    h.advance(Duration::from_secs(60)).await;
    let status = h.status();
    let f = crate::harness::monitor(&status, "Fake monitor (f)");
    assert_eq!(f.deaths, 1, "{f:?}");
    assert!(f.rounds_ok >= 1, "{f:?}");
    assert_eq!(status.slow_monitors, 1, "f is fast again, s is still slow");
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn when_the_slow_lane_is_full_slow_rounds_are_cut_off_at_their_threshold() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        slow_in_flight: 1,
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let mut body = serde_json::Map::new();
    for i in 0..5 {
        let id = format!("h{i}");
        body.insert(
            id.clone(),
            json!({"id": id, "name": id, "monitor": "true", "behaviour": "hang"}),
        );
    }
    h.config(GENERAL, &serde_json::Value::Object(body).to_string())
        .await;
    h.advance(Duration::from_secs(15)).await;
    let status = h.status();
    assert_eq!(status.slow_monitors, 5);
    assert!(status.rounds_cut_off >= 3, "{status:?}");
    assert!(probe.max_in_flight() <= 256 + 1);
    h.stop().await.unwrap();
}
