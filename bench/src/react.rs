//! `bench react`: how fast the real `MonitorsManager` (public API, in-memory bus) reacts to config
//! messages at scale (issue #14).
//!
//! 1. **Start**: one `general.systems_config` message with N sections is published; measured is
//!    the time from just before the publish to the last of the N monitors' first build (its
//!    supervisor's first step: the monitor is started). Their rounds then poll the exporter
//!    stand-in, spread over the phase window.
//! 2. **Change one section**: the same N-section message with one section's `exporter_url`
//!    changed is published, `--changes` times (a different section each time); measured is the time
//!    from just before the publish (the body already encoded) to the changed monitor's new build
//!    (parse, plan, diff, stop the old incarnation, start the new). Every other build is counted: none of the other N − 1 may be
//!    restarted (`others_restarted`, checked by the smoke test; the manager's own tests assert it
//!    too).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monitor_bus::{declare_bound_queue, publish_json};
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS};
use monitor_core::PeriodGroup;
use monitors_manager::{ManagerSettings, MonitorsManager};
use tokio_util::sync::CancellationToken;

use super::approaches::{strategy_settings, systems_config, BuildLog, ManagerRounds, TimedPlanner};
use super::record::{Recorder, Window};
use super::sink::Sink;
use super::BenchError;

/// What `bench react` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ReactArgs {
    pub(crate) sections: usize,
    pub(crate) changes: usize,
    pub(crate) period: Duration,
    /// The exporter stand-in's URL.
    pub(crate) url: String,
}

/// What `bench react` measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReactResult {
    pub(crate) sections: usize,
    pub(crate) period_s: f64,
    /// Bytes of the config message.
    pub(crate) message_bytes: usize,
    /// Publish → the last first build, ms.
    pub(crate) start_all_ms: f64,
    /// Per change: publish → the changed monitor's new build, ms.
    pub(crate) change_ms: Vec<f64>,
    pub(crate) change_median_ms: f64,
    pub(crate) change_max_ms: f64,
    /// Changed monitors rebuilt (should be `changes`).
    pub(crate) changed_restarted: usize,
    /// Builds of monitors whose section did not change, after their first (should be 0).
    pub(crate) others_restarted: usize,
    pub(crate) notes: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// Wait (polling every millisecond) until `done`, at most `within`; `false` on timeout.
async fn wait_until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

fn rebuilt(builds: &BuildLog, id: &str) -> Option<Instant> {
    builds
        .rebuilds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, t)| *t)
}

/// Run the two measurements.
// Owns the manager task: `run` is awaited at the end.
#[allow(clippy::disallowed_methods)]
pub(crate) async fn react(args: ReactArgs) -> Result<ReactResult, BenchError> {
    let n = args.sections.max(1);
    // Rounds are not what is measured here: a window that never opens.
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let recorder = Arc::new(Recorder::new(Window {
        start: far,
        end: far,
    })?);
    let sink = Sink::open(None, Arc::clone(&recorder)).await?;
    let mut message = systems_config(n, &args.url);
    let message_bytes = message.to_string().len();
    let defaults = ManagerSettings::default();
    let settings = ManagerSettings {
        periods: [(PeriodGroup::System, args.period)].into_iter().collect(),
        queue_suffix: "_bench".to_owned(),
        shutdown_grace: Duration::from_secs(5),
        // 100,000 sections are above the default bound (16 MiB): room for the changed URLs.
        max_config_bytes: defaults.max_config_bytes.max(message_bytes + 64 * 1024),
        ..defaults
    };
    let bus = &*sink.bus;
    declare_bound_queue(
        bus,
        &settings.configs_queue(),
        CONFIG_EXCHANGE,
        &MANAGER_CONFIG_BINDINGS,
    )
    .await?;
    let planner = TimedPlanner::new(
        strategy_settings(args.period),
        recorder,
        Arc::new(Mutex::new(ManagerRounds::default())),
        Instant::now(),
        (args.period, settings.phase_window(PeriodGroup::System, n)),
    );
    let builds = Arc::clone(&planner.builds);
    let manager = MonitorsManager::new(Arc::clone(&sink.bus), vec![Arc::new(planner)], settings);
    let status = manager.status_handle();
    let token = CancellationToken::new();
    let run = tokio::spawn(manager.run(token.clone()));
    // The manager's own start (topology, restoring its config state) is not what is measured:
    // an empty message first, and the measurements once it has been handled.
    publish_json(
        bus,
        CONFIG_EXCHANGE,
        "general.systems_config",
        &serde_json::json!({}),
    )
    .await?;
    if !wait_until(Duration::from_secs(30), || {
        status.status().config_messages >= 1
    })
    .await
    {
        return Err(BenchError::Setup(
            "the manager did not handle a config message within 30 s".into(),
        ));
    }
    let mut notes = Vec::new();

    // 1. Start N monitors from one message.
    let t_pub = Instant::now();
    publish_json(bus, CONFIG_EXCHANGE, "general.systems_config", &message).await?;
    let all = wait_until(Duration::from_secs(120), || builds.started() >= n).await;
    if !all {
        notes.push(format!(
            "only {} of {n} monitors started within 120 s",
            builds.started()
        ));
    }
    let last = builds
        .last_first_build
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(t_pub);
    let start_all_ms = last.saturating_duration_since(t_pub).as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. Change one section at a time.
    let mut changed: HashSet<String> = HashSet::new();
    let mut change_ms = Vec::new();
    for c in 0..args.changes {
        let i = (c * 7919 + 1) % n;
        let id = format!("bench_system_{i}");
        if let Some(section) = message.get_mut(&id) {
            section["exporter_url"] = serde_json::Value::from(format!("{}?change={c}", args.url));
        }
        changed.insert(id.clone());
        // Encoded before the clock starts: what is measured is the manager's reaction, not the
        // publisher's encoding of a 1.6 MB message (several ms at 10,000 sections).
        let body = serde_json::to_vec(&message)
            .map_err(|e| BenchError::Setup(format!("encoding the message: {e}")))?;
        let t = Instant::now();
        bus.publish(
            CONFIG_EXCHANGE,
            "general.systems_config",
            bytes::Bytes::from(body),
        )
        .await?;
        if wait_until(Duration::from_secs(60), || rebuilt(&builds, &id).is_some()).await {
            if let Some(at) = rebuilt(&builds, &id) {
                change_ms.push(at.saturating_duration_since(t).as_secs_f64() * 1000.0);
            }
        } else {
            notes.push(format!("{id} was not restarted within 60 s of its change"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late restarts of the others would show here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rebuilds = builds
        .rebuilds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let changed_restarted = rebuilds
        .iter()
        .filter(|(id, _)| changed.contains(id))
        .count();
    let others: Vec<&String> = rebuilds
        .iter()
        .filter(|(id, _)| !changed.contains(id))
        .map(|(id, _)| id)
        .collect();
    if let Some(first) = others.first() {
        notes.push(format!(
            "{} unchanged monitors were rebuilt, e.g. {first}",
            others.len()
        ));
    }
    token.cancel();
    match run.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(BenchError::Setup(format!("the manager failed: {e}"))),
        Err(e) => return Err(BenchError::Setup(format!("the manager task failed: {e}"))),
    }
    sink.close().await;
    Ok(ReactResult {
        sections: n,
        period_s: args.period.as_secs_f64(),
        message_bytes,
        start_all_ms,
        change_median_ms: median(&change_ms),
        change_max_ms: change_ms.iter().copied().fold(0.0, f64::max),
        change_ms,
        changed_restarted,
        others_restarted: others.len(),
        notes,
    })
}

/// The result as Markdown.
pub(crate) fn markdown(r: &ReactResult) -> String {
    format!(
        "| sections | message bytes | publish → all {} started | change of one section: publish → its restart, median / max ({} changes) | changed restarted | others restarted |\n\
         |--:|--:|--:|--:|--:|--:|\n\
         | {} | {} | {:.0} ms | {:.1} / {:.1} ms | {} | {} |\n{}",
        r.sections,
        r.change_ms.len(),
        r.sections,
        r.message_bytes,
        r.start_all_ms,
        r.change_median_ms,
        r.change_max_ms,
        r.changed_restarted,
        r.others_restarted,
        r.notes
            .iter()
            .map(|n| format!("- {n}\n"))
            .collect::<String>()
    )
}
