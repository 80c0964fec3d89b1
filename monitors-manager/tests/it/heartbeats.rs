//! Pings and manager heartbeats.

use std::time::Duration;

use monitor_bus::Bus;
use monitors_manager::ManagerSettings;
use serde_json::json;

use crate::harness::{manager_heartbeat_capture, test_settings, FakePlanner, Harness, Probe};

#[tokio::test(start_paused = true)]
async fn ping_is_acked_and_answered_with_running_and_dead_monitors() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        queue_suffix: "_hb_test".to_owned(),
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let mut hb = manager_heartbeat_capture(&h.bus, "manager_hb").await;

    // No monitor yet: empty lists.
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.component_name, "Monitors Manager");
    assert!(beat.running_processes.is_empty());
    assert!(beat.dead_processes.is_empty());
    assert!(beat.timestamp > 0.0);
    let queue = "monitors_manager_heartbeat_queue_hb_test";
    assert_eq!(h.bus.queue_len(queue), Some(0));
    assert_eq!(h.bus.unacked_len(queue), Some(0), "the ping was acked");

    let body = json!({
        "b": {"id": "b", "name": "b", "monitor": "true"},
        "a": {"id": "a", "name": "a", "monitor": "true"},
        "p": {"id": "p", "name": "p", "monitor": "true", "behaviour": "panic_first"},
        "f": {"id": "f", "name": "f", "monitor": "true", "behaviour": "fail_build"},
    });
    h.config("general.systems_config", &body.to_string()).await;
    let status = h.status.clone();
    h.wait_for("p to die and recover", || {
        let s = status.status();
        s.monitors_named("Fake monitor (p)")
            .iter()
            .any(|m| m.deaths == 1 && m.rounds_ok >= 1)
    })
    .await;

    let beat = h.ping(&mut hb).await;
    assert_eq!(
        beat.running_processes,
        ["Fake monitor (a)", "Fake monitor (b)"]
    );
    assert_eq!(
        beat.dead_processes,
        ["Fake monitor (f)", "Fake monitor (p)"]
    );
    // The death of p is reported once; f stays dead while it fails.
    let beat = h.ping(&mut hb).await;
    assert_eq!(
        beat.running_processes,
        ["Fake monitor (a)", "Fake monitor (b)", "Fake monitor (p)"]
    );
    assert_eq!(beat.dead_processes, ["Fake monitor (f)"]);
    assert_eq!(h.status().pings, 3);

    // A removed monitor is reported nowhere.
    h.config(
        "general.systems_config",
        &json!({"a": {"id": "a", "name": "a", "monitor": "true"}}).to_string(),
    )
    .await;
    h.advance(Duration::from_secs(1)).await;
    let beat = h.ping(&mut hb).await;
    assert_eq!(beat.running_processes, ["Fake monitor (a)"]);
    assert!(beat.dead_processes.is_empty());
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_ping_with_nobody_listening_for_heartbeats_is_still_acked() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    h.bus
        .publish("health_check", "ping", bytes::Bytes::from_static(b"ping"))
        .await
        .unwrap();
    let status = h.status.clone();
    h.wait_for("the ping to be handled", || status.status().pings == 1)
        .await;
    let queue = h.settings.heartbeat_queue();
    let bus = h.bus.clone();
    h.wait_for("the ping to be acked", || {
        bus.unacked_len(&queue) == Some(0)
    })
    .await;
    h.stop().await.unwrap();
}
