//! Supervision: panics, failing builds, hung rounds, round errors, stops in the middle of a round.

use std::time::Duration;

use monitors_manager::TaskState;
use serde_json::json;

use crate::harness::{
    manager_heartbeat_capture, monitor, names, raw_capture, test_settings, Capture, FakePlanner,
    Harness, Probe,
};

const GENERAL: &str = "general.systems_config";

fn with(name: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut s = json!({"id": name, "name": name, "monitor": "true"});
    for (k, v) in fields.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[tokio::test(start_paused = true)]
async fn panicking_strategy_is_restarted_and_others_undisturbed() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let body = json!({
        "steady": with("steady", json!({})),
        "once": with("once", json!({"behaviour": "panic_first"})),
        "always": with("always", json!({"behaviour": "panic"})),
        "ctor": with("ctor", json!({"behaviour": "panic_build"})),
    });
    h.config(GENERAL, &body.to_string()).await;

    let status = h.status.clone();
    h.wait_for("the once-panicking monitor to recover", || {
        let s = status.status();
        monitor(&s, "Fake monitor (once)").rounds_ok >= 2
    })
    .await;
    assert_eq!(
        probe.stats("once").builds,
        2,
        "rebuilt once after its panic"
    );
    let once = monitor(&h.status(), "Fake monitor (once)").clone();
    assert_eq!(once.deaths, 1);
    assert_eq!(once.state, TaskState::Running);

    // The always-panicking one keeps being rebuilt, with backoff (never more than one build per
    // round period plus backoff, so far fewer builds than seconds elapsed).
    h.advance(Duration::from_secs(120)).await;
    let always = probe.stats("always");
    assert!(always.builds >= 4, "{always:?}");
    assert!(always.builds < 30, "{always:?}");
    // Each death is followed by a rebuild (the last one may still be in its backoff).
    let deaths = monitor(&h.status(), "Fake monitor (always)").deaths;
    let builds = u64::from(always.builds);
    assert!(
        deaths == builds || deaths == builds - 1,
        "{deaths} deaths, {builds} builds"
    );

    // A panicking constructor is a death too, retried with backoff.
    let ctor = probe.stats("ctor");
    assert!(ctor.builds >= 4, "{ctor:?}");
    let ctor_deaths = monitor(&h.status(), "Fake monitor (ctor)").deaths;
    assert!(ctor_deaths >= 4, "{ctor_deaths}");

    // The steady monitor was never rebuilt and ran every period.
    let steady = probe.stats("steady");
    assert_eq!(steady.builds, 1);
    assert!(steady.rounds_finished >= 12, "{steady:?}");
    let status = h.status();
    assert_eq!(
        status.deaths,
        1 + monitor(&status, "Fake monitor (always)").deaths
            + monitor(&status, "Fake monitor (ctor)").deaths
    );
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn build_failure_is_retried_and_reported_dead() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut hb = manager_heartbeat_capture(&h.bus, "manager_hb").await;
    let body = json!({
        "ok": with("ok", json!({})),
        "broken": with("broken", json!({"behaviour": "fail_build"})),
        "flaky": with("flaky", json!({"behaviour": "fail_build", "fail_builds": "3"})),
    });
    h.config(GENERAL, &body.to_string()).await;
    h.advance(Duration::from_secs(3)).await;

    let status = h.status();
    assert_eq!(
        monitor(&status, "Fake monitor (broken)").state,
        TaskState::Failing
    );
    assert_eq!(status.states.failing, 2);
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.running_processes, ["Fake monitor (ok)"]);
    assert_eq!(
        beat.dead_processes,
        ["Fake monitor (broken)", "Fake monitor (flaky)"]
    );

    // Backoff 1, 2, 4 s then the fourth build of `flaky` succeeds and it runs rounds.
    let status = h.status.clone();
    h.wait_for("flaky to build and run", || {
        monitor(&status.status(), "Fake monitor (flaky)").rounds_ok >= 1
    })
    .await;
    assert_eq!(probe.stats("flaky").builds, 4);
    h.advance(Duration::from_secs(60)).await;
    let broken = probe.stats("broken");
    assert!(broken.builds >= 5, "{broken:?}");
    assert_eq!(broken.rounds_started, 0);

    // Failing is reported dead on every heartbeat while it lasts; recovered monitors run.
    let beat = h.ping(&mut hb).await;
    assert_eq!(
        beat.running_processes,
        ["Fake monitor (flaky)", "Fake monitor (ok)"]
    );
    assert_eq!(beat.dead_processes, ["Fake monitor (broken)"]);
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.dead_processes, ["Fake monitor (broken)"]);
    assert!(h.status().build_failures >= 8);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn hung_round_is_detected_as_dead_and_restarted() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut hb = manager_heartbeat_capture(&h.bus, "manager_hb").await;
    let body = json!({
        "stuck": with("stuck", json!({"behaviour": "hang_first"})),
        "ok": with("ok", json!({})),
    });
    h.config(GENERAL, &body.to_string()).await;

    let status = h.status.clone();
    h.wait_for("the hung monitor to be restarted", || {
        monitor(&status.status(), "Fake monitor (stuck)").deaths >= 1
    })
    .await;
    let stuck = monitor(&h.status(), "Fake monitor (stuck)").clone();
    // Every round of the first build was cut off by the timeout; none finished.
    assert!(stuck.rounds_timed_out >= 3, "{stuck:?}");
    assert_eq!(stuck.rounds_ok, 0);
    assert_eq!(probe.stats("stuck").rounds_finished, 0);

    // It is reported dead once, while it was restarted at once (not on the ping).
    h.wait_for("the restarted monitor to run a round", || {
        monitor(&status.status(), "Fake monitor (stuck)").rounds_ok >= 1
    })
    .await;
    assert_eq!(probe.stats("stuck").builds, 2);
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.dead_processes, ["Fake monitor (stuck)"]);
    assert_eq!(beat.running_processes, ["Fake monitor (ok)"]);
    let beat = h.ping(&mut hb).await;
    assert!(beat.dead_processes.is_empty());
    assert_eq!(
        beat.running_processes,
        ["Fake monitor (ok)", "Fake monitor (stuck)"]
    );
    assert_eq!(probe.stats("ok").builds, 1);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn always_hanging_monitor_keeps_being_restarted() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let body = json!({"stuck": with("stuck", json!({"behaviour": "hang"}))});
    h.config(GENERAL, &body.to_string()).await;
    // Period 10 s: hung after 3 × 10 + 10 s without a finished round.
    h.advance(Duration::from_secs(200)).await;
    let stuck = monitor(&h.status(), "Fake monitor (stuck)").clone();
    assert!(stuck.deaths >= 3, "{stuck:?}");
    assert_eq!(u64::from(probe.stats("stuck").builds), stuck.deaths + 1);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn round_errors_are_counted_and_still_send_the_worker_heartbeat() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut cap = Capture::new(
        &h.bus,
        "everything",
        &[("raw_data", "#"), ("health_check", "heartbeat.worker")],
    )
    .await;
    h.config(
        GENERAL,
        &json!({"e": with("e", json!({"behaviour": "err"}))}).to_string(),
    )
    .await;
    h.advance(Duration::from_secs(35)).await;
    let status = h.status();
    let e = monitor(&status, "Fake monitor (e)");
    assert!(e.rounds_err >= 3, "{e:?}");
    assert_eq!(e.deaths, 0);
    assert_eq!(probe.stats("e").builds, 1, "an Err round does not restart");
    // Never silence: the fake monitor has nothing to say about its failure (the default
    // `failed_round`), so each failed round is one worker heartbeat and no raw data.
    let got = cap.drain().await;
    assert!(
        got.iter().all(|c| c.routing_key == "heartbeat.worker"),
        "{got:?}"
    );
    assert_eq!(got.len() as u64, e.rounds_err, "{got:?}");
    assert_eq!(status.worker_heartbeats, e.rounds_err);
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn removed_monitor_stops_in_the_middle_of_a_round_and_vanishes() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    let mut raw = raw_capture(&h.bus, "raw").await;
    let mut hb = manager_heartbeat_capture(&h.bus, "manager_hb").await;
    let body = json!({
        "slow": with("slow", json!({"behaviour": "sleep", "round_secs": "8"})),
        "ok": with("ok", json!({})),
    });
    h.config(GENERAL, &body.to_string()).await;
    h.wait_for("a slow round to start", || {
        probe.stats("slow").rounds_started >= 1
    })
    .await;
    assert_eq!(probe.stats("slow").rounds_finished, 0);

    h.config(GENERAL, &json!({"ok": with("ok", json!({}))}).to_string())
        .await;
    assert_eq!(names(&h.status()), ["Fake monitor (ok)"]);
    h.advance(Duration::from_secs(30)).await;
    let slow = probe.stats("slow");
    assert_eq!(slow.rounds_finished, 0, "the round in flight was abandoned");
    assert_eq!(slow.rounds_started, 1, "no further rounds");
    assert!(raw
        .drain()
        .await
        .iter()
        .all(|c| c.body["result"]["data"]["id"] != "slow"));
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.running_processes, ["Fake monitor (ok)"]);
    assert!(beat.dead_processes.is_empty());
    assert_eq!(h.status().rounds_in_flight, 0);
    h.stop().await.unwrap();
}
