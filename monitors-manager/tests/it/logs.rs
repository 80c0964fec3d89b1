//! Issue #13 (5): logs stay proportional. With nothing bound to `raw_data`, warnings are one line
//! per routing key per minute, not one per round; worker heartbeats are still sent; no log line
//! carries payload bytes; a flood of bad config messages writes a bounded number of lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::harness::{test_settings, Capture, FakePlanner, Harness, Probe};

const GENERAL: &str = "general.systems_config";

/// Everything the test's subscriber writes.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }
}

fn capture_logs() -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (lines, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(start_paused = true)]
async fn unroutable_raw_data_logs_once_per_routing_key_per_minute_and_heartbeats_go_on() {
    let (lines, _guard) = capture_logs();
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    // Heartbeats are consumed; nothing is bound to raw_data.
    let mut hb = Capture::new(&h.bus, "hb", &[("health_check", "heartbeat.worker")]).await;
    let mut body = serde_json::Map::new();
    for i in 0..100 {
        let id = format!("m{i:03}");
        // Half publish `system`, half `system` then `github`: two routing keys.
        let behaviour = if i % 2 == 0 { "ok" } else { "two" };
        body.insert(
            id.clone(),
            json!({"id": id, "name": id, "monitor": "true", "behaviour": behaviour}),
        );
    }
    h.config(GENERAL, &serde_json::Value::Object(body).to_string())
        .await;
    let mut heartbeats = 0;
    // Ten periods of 10 s (two rate-limit windows).
    for _ in 0..10 {
        h.advance(Duration::from_secs(10)).await;
        heartbeats += hb.drain().await.len();
    }
    let status = h.status();
    assert!(status.rounds_ok >= 100 * 9, "{}", status.rounds_ok);
    // One unroutable publish per round of an `ok` monitor, two per round of a `two` monitor
    // (counted per monitor: a monitor whose phase falls in the first milliseconds of its 1 s
    // window has one more round in these 100 s than the others).
    let unroutable: u64 = (0..100)
        .map(|i| {
            let rounds = u64::from(probe.stats(&format!("m{i:03}")).rounds_finished);
            if i % 2 == 0 {
                rounds
            } else {
                2 * rounds
            }
        })
        .sum();
    assert_eq!(status.publishes_unroutable, unroutable);
    assert_eq!(status.publishes_failed, 0);
    assert_eq!(
        status.worker_heartbeats, status.rounds_ok,
        "heartbeats go on"
    );
    assert_eq!(heartbeats as u64, status.rounds_ok);

    let warnings = lines.warnings();
    // Two routing keys, two windows: at most 4 lines (not ~1,500).
    assert!(
        (2..=4).contains(&warnings.len()),
        "{} warnings: {warnings:#?}",
        warnings.len()
    );
    assert!(
        warnings.iter().all(|l| l.contains("unroutable")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "the second window's lines say how many were left out: {warnings:#?}"
    );
    let text = lines.text();
    assert!(!text.contains("meta_data"), "payload in the logs");
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_bad_config_messages_writes_a_bounded_number_of_lines() {
    let (lines, _guard) = capture_logs();
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    for i in 0..500 {
        let body = if i % 2 == 0 {
            Bytes::from_static(b"{not json")
        } else {
            // A section without a name: a plan error.
            Bytes::from(json!({"s": {"id": "s", "monitor": "true"}}).to_string())
        };
        h.config_bytes(GENERAL, body).await;
    }
    let status = h.status();
    assert_eq!(status.config_messages, 500);
    assert_eq!(status.config_errors, 500);
    let warnings = lines.warnings();
    assert!(
        !warnings.is_empty() && warnings.len() <= 10,
        "{} warnings: {warnings:#?}",
        warnings.len()
    );
    assert!(!lines.text().contains("not json"), "payload in the logs");
    h.stop().await.unwrap();
}
