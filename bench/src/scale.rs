//! `bench evm-scale`: N EVM node monitors in one `MonitorsManager` (issue #14), through its public
//! API as the `manager` approach: fed `chains.ethereum.bench_<k>.evm_nodes_config` messages over
//! the in-memory bus, each monitor's round the real `EvmNodeMonitor` (`eth_blockNumber` then
//! `eth_syncing`, two JSON-RPC POSTs) against the JSON-RPC stand-in (`bench serve --json-rpc`, its
//! own process) at T distinct loopback addresses (monitor `i` polls target `i mod T`).
//!
//! Measured over the window: RSS, CPU of every thread of this process (the manager, the drains,
//! the harness), schedule lateness (as the `manager` approach: from each monitor's first build, a
//! lower bound; the upper bound from `run`'s call is in the notes), result and error envelopes,
//! and the file descriptors this process holds (`/proc/self/fd`), against `ulimit -n`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monitor_bus::{declare_bound_queue, publish_json};
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS};
use monitor_core::plan::Planner;
use monitor_core::PeriodGroup;
use monitor_strategies::{EvmNodeConfig, EvmNodeMonitor, EvmNodesPlanner, StrategySettings};
use monitors_manager::{ManagerSettings, MonitorsManager};
use tokio_util::sync::CancellationToken;

use super::approaches::{monitor_loop, ManagerRounds, TimedPlanner};
use super::children::loopback_addr;
use super::proc;
use super::record::{Grid, Lateness, Recorder, Window};
use super::sink::Sink;
use super::BenchError;

/// What `bench evm-scale` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ScaleArgs {
    pub(crate) monitors: usize,
    pub(crate) targets: usize,
    /// The stand-in's port (on every loopback address).
    pub(crate) port: u16,
    pub(crate) period: Duration,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) sample_every: Duration,
    /// Sections per config message (one message per `chains.ethereum.bench_<k>`).
    pub(crate) per_message: usize,
    /// Strategy settings (connection limits included).
    pub(crate) settings: StrategySettings,
    /// The manager's bound on rounds in flight: floor, round budget, cap.
    pub(crate) in_flight: (usize, Duration, usize),
    /// No manager: one bare tokio task per monitor (the same `EvmNodeMonitor`, a fixed-rate
    /// loop, rounds handed to the bus), for a side-by-side comparison.
    pub(crate) bare: bool,
}

/// One second of the window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Second {
    /// Seconds since the window's start.
    pub(crate) t: u32,
    /// Rounds counted (ticks in the window) that started during this second.
    pub(crate) started: u64,
    /// Rounds in flight at the end of the second.
    pub(crate) in_flight: u64,
    /// The main pool's bound at the end of the second.
    pub(crate) permits: u64,
    /// File descriptors of this process at the end of the second.
    pub(crate) fds: u64,
}

/// One `evm-scale` run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScaleResult {
    pub(crate) monitors: usize,
    pub(crate) targets: usize,
    pub(crate) config_messages: usize,
    pub(crate) period_s: f64,
    pub(crate) warmup_s: f64,
    pub(crate) measure_s: f64,
    /// `manager` or `bare`.
    pub(crate) approach: String,
    /// Monitors started (first builds).
    pub(crate) running: usize,
    /// From `run` to the last first build, seconds.
    pub(crate) startup_s: f64,
    pub(crate) rounds: u64,
    pub(crate) expected_rounds: f64,
    pub(crate) results: u64,
    pub(crate) error_envelopes: u64,
    pub(crate) round_errors: u64,
    pub(crate) cpu_s: f64,
    pub(crate) cpu_ms_per_round: f64,
    pub(crate) cores: f64,
    pub(crate) rss_steady_bytes: u64,
    pub(crate) rss_peak_bytes: u64,
    /// `rss_steady_bytes / monitors`.
    pub(crate) rss_per_monitor_bytes: f64,
    /// File descriptors of this process: most and mean over the window's samples.
    pub(crate) fds_peak: u64,
    pub(crate) fds_mean: f64,
    /// `ulimit -n` (soft).
    pub(crate) ulimit_n: Option<u64>,
    pub(crate) lateness: Lateness,
    /// Lateness p99 against the grid anchored at `run`'s call (upper bound), ms.
    pub(crate) lateness_upper_p99_ms: f64,
    /// The stand-in's CPU over the window, seconds (filled by the caller).
    pub(crate) stand_in_cpu_s: f64,
    /// The stand-in's file descriptors at the window's end (filled by the caller).
    pub(crate) stand_in_fds: u64,
    /// The manager's own counters at the end.
    pub(crate) manager: serde_json::Value,
    /// The manager's settings of the bound on rounds in flight: floor, budget (s), cap.
    pub(crate) in_flight_settings: (usize, f64, usize),
    /// Rounds due per second (monitors / period).
    pub(crate) due_per_second: f64,
    /// Rounds started per second over the window: least, mean, most.
    pub(crate) started_per_second: (u64, f64, u64),
    /// Rounds in flight at the seconds' ends: mean, most; the main pool's bound at the end.
    pub(crate) in_flight_mean_max: (f64, u64),
    pub(crate) permits_end: u64,
    /// Every second of the window.
    pub(crate) timeline: Vec<Second>,
    pub(crate) notes: Vec<String>,
}

/// The config messages: `(routing key, sections)`, `per_message` sections each.
pub(crate) fn evm_messages(
    monitors: usize,
    targets: usize,
    port: u16,
    per_message: usize,
) -> Vec<(String, serde_json::Value)> {
    let per = per_message.max(1);
    (0..monitors.div_ceil(per))
        .map(|k| {
            let mut sections = serde_json::Map::new();
            for i in k * per..((k + 1) * per).min(monitors) {
                let id = format!("bench_evm_{i}");
                let addr = loopback_addr(i % targets.max(1));
                sections.insert(
                    id.clone(),
                    serde_json::json!({
                        "id": id,
                        "parent_id": format!("chain_bench_{k}"),
                        "name": format!("evm_{i}"),
                        "node_http_url": format!("http://{addr}:{port}"),
                        "monitor_node": "true",
                    }),
                );
            }
            (
                format!("chains.ethereum.bench_{k}.evm_nodes_config"),
                serde_json::Value::Object(sections),
            )
        })
        .collect()
}

/// Open file descriptors of this process.
fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Open file descriptors of `pid`.
pub(crate) fn fds_of(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

#[derive(Debug, Default)]
struct Sampled {
    cpu_s: f64,
    rss_steady: u64,
    rss_peak: u64,
    fds_peak: u64,
    fds_mean: f64,
}

/// Sample this process over `window` (a thread of its own).
fn sample(window: Window, every: Duration) -> Sampled {
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let cpu0: std::collections::HashMap<u32, f64> = proc::thread_cpu_seconds(proc::self_pid())
        .into_iter()
        .collect();
    let mut out = Sampled::default();
    let (mut n, mut rss_sum, mut fd_sum) = (0u64, 0u128, 0u128);
    loop {
        let m = proc::mem_status(proc::self_pid()).unwrap_or_default();
        let f = fds();
        rss_sum += u128::from(m.rss);
        fd_sum += u128::from(f);
        n += 1;
        out.rss_peak = out.rss_peak.max(m.hwm).max(m.rss);
        out.fds_peak = out.fds_peak.max(f);
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        std::thread::sleep(every.min(window.end - now));
    }
    out.cpu_s = proc::thread_cpu_seconds(proc::self_pid())
        .into_iter()
        .map(|(tid, c)| c - cpu0.get(&tid).copied().unwrap_or(0.0))
        .sum();
    out.rss_steady = u64::try_from(rss_sum / u128::from(n.max(1))).unwrap_or(u64::MAX);
    out.fds_mean = fd_sum as f64 / n.max(1) as f64;
    out
}

/// `args.monitors` bare tokio tasks, each an `EvmNodeMonitor` in a fixed-rate loop (phases spread
/// evenly over the period), measured as the manager is.
// Owns its tasks: they end at the window's end and are awaited.
#[allow(clippy::disallowed_methods)]
async fn evm_scale_bare(args: ScaleArgs) -> Result<ScaleResult, BenchError> {
    let t_start = Instant::now();
    let window = Window {
        start: t_start + args.warmup,
        end: t_start + args.warmup + args.measure,
    };
    let recorder = Arc::new(Recorder::new(window)?);
    let sink = Sink::open(None, Arc::clone(&recorder)).await?;
    let sampler = {
        let every = args.sample_every;
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || sample(window, every))
            .map_err(|e| BenchError::io("spawning the sampler thread", e))?
    };
    let http = args
        .settings
        .evm_http(PeriodGroup::Node)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let grid = Grid {
        epoch: Instant::now(),
        period: args.period,
        n: args.monitors,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.monitors {
        let config = EvmNodeConfig {
            node_id: format!("bench_evm_{i}"),
            parent_id: format!("chain_bench_{}", i / args.per_message.max(1)),
            node_name: format!("evm_{i}"),
            node_http_url: format!(
                "http://{}:{}",
                loopback_addr(i % args.targets.max(1)),
                args.port
            ),
        };
        let monitor = EvmNodeMonitor::new(config, http.clone());
        let recorder = Arc::clone(&recorder);
        let bus = Arc::clone(&sink.bus);
        tasks.spawn(async move {
            monitor_loop(i, monitor, grid, &recorder, &*bus, window.end).await;
        });
    }
    let startup = t_start.elapsed();
    let mut timeline: Vec<Second> = Vec::new();
    let mut last_rounds = 0u64;
    let mut next_second = window.start + Duration::from_secs(1);
    tokio::time::sleep_until(window.start.into()).await;
    while Instant::now() < window.end {
        tokio::time::sleep_until(next_second.min(window.end).into()).await;
        let counted = recorder.rounds.load(Ordering::Relaxed);
        timeline.push(Second {
            t: u32::try_from(timeline.len()).unwrap_or(u32::MAX),
            started: counted - last_rounds,
            in_flight: 0,
            permits: 0,
            fds: fds(),
        });
        last_rounds = counted;
        next_second += Duration::from_secs(1);
    }
    let sampled = tokio::task::spawn_blocking(move || sampler.join())
        .await
        .map_err(|e| BenchError::Setup(format!("sampler: {e}")))?
        .map_err(|_| BenchError::Setup("the sampler thread panicked".into()))?;
    while tasks.join_next().await.is_some() {}
    sink.close().await;
    let mut result = summarise(&args, &recorder, &sampled, timeline);
    result.approach = "bare".to_owned();
    result.running = args.monitors;
    result.startup_s = startup.as_secs_f64();
    result.notes.push(
        "bare: one tokio task per monitor, no manager; lateness against the task's own grid"
            .to_owned(),
    );
    Ok(result)
}

/// The fields every approach fills the same way.
fn summarise(
    args: &ScaleArgs,
    r: &Recorder,
    sampled: &Sampled,
    timeline: Vec<Second>,
) -> ScaleResult {
    let rounds_n = r.rounds.load(Ordering::Relaxed);
    let measure_s = args.measure.as_secs_f64();
    let n = timeline.len().max(1) as f64;
    ScaleResult {
        monitors: args.monitors,
        targets: args.targets,
        config_messages: 0,
        period_s: args.period.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        measure_s,
        rounds: rounds_n,
        expected_rounds: args.monitors as f64 * measure_s / args.period.as_secs_f64(),
        results: r.results.load(Ordering::Relaxed),
        error_envelopes: r.error_envelopes.load(Ordering::Relaxed),
        round_errors: r.round_errors.load(Ordering::Relaxed),
        cpu_s: sampled.cpu_s,
        cpu_ms_per_round: if rounds_n > 0 {
            sampled.cpu_s * 1000.0 / rounds_n as f64
        } else {
            0.0
        },
        cores: sampled.cpu_s / measure_s,
        rss_steady_bytes: sampled.rss_steady,
        rss_peak_bytes: sampled.rss_peak,
        rss_per_monitor_bytes: sampled.rss_steady as f64 / args.monitors.max(1) as f64,
        fds_peak: sampled.fds_peak,
        fds_mean: sampled.fds_mean,
        ulimit_n: proc::limits().max_open_files,
        lateness: r.lateness(),
        due_per_second: args.monitors as f64 / args.period.as_secs_f64(),
        started_per_second: (
            timeline.iter().map(|s| s.started).min().unwrap_or(0),
            timeline.iter().map(|s| s.started as f64).sum::<f64>() / n,
            timeline.iter().map(|s| s.started).max().unwrap_or(0),
        ),
        in_flight_mean_max: (
            timeline.iter().map(|s| s.in_flight as f64).sum::<f64>() / n,
            timeline.iter().map(|s| s.in_flight).max().unwrap_or(0),
        ),
        timeline,
        ..ScaleResult::default()
    }
}

/// Run `args.monitors` EVM node monitors (in the manager, or bare with `args.bare`) and measure.
pub(crate) async fn evm_scale(args: ScaleArgs) -> Result<ScaleResult, BenchError> {
    if args.bare {
        evm_scale_bare(args).await
    } else {
        evm_scale_manager(args).await
    }
}

/// Run the manager with `args.monitors` EVM node monitors and measure it.
// Owns the manager task: `run` is awaited after the window.
#[allow(clippy::disallowed_methods)]
async fn evm_scale_manager(args: ScaleArgs) -> Result<ScaleResult, BenchError> {
    let t_start = Instant::now();
    let window = Window {
        start: t_start + args.warmup,
        end: t_start + args.warmup + args.measure,
    };
    let recorder = Arc::new(Recorder::new(window)?);
    let sink = Sink::open(None, Arc::clone(&recorder)).await?;
    let (max_in_flight, round_budget, max_in_flight_cap) = args.in_flight;
    let settings = ManagerSettings {
        periods: [(PeriodGroup::Node, args.period)].into_iter().collect(),
        queue_suffix: "_bench".to_owned(),
        shutdown_grace: Duration::from_secs(5),
        max_in_flight,
        round_budget,
        max_in_flight_cap,
        ..ManagerSettings::default()
    };
    settings.validate().map_err(BenchError::Usage)?;
    let bus = &*sink.bus;
    declare_bound_queue(
        bus,
        &settings.configs_queue(),
        CONFIG_EXCHANGE,
        &MANAGER_CONFIG_BINDINGS,
    )
    .await?;
    let rounds = Arc::new(Mutex::new(ManagerRounds::default()));
    let inner: Arc<dyn Planner> = Arc::new(EvmNodesPlanner::new(Arc::new(args.settings.clone())));
    let messages = evm_messages(args.monitors, args.targets, args.port, args.per_message);
    let sampler = {
        let every = args.sample_every;
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || sample(window, every))
            .map_err(|e| BenchError::io("spawning the sampler thread", e))?
    };
    let t0 = Instant::now();
    let planner = TimedPlanner::wrap(
        inner,
        Arc::clone(&recorder),
        Arc::clone(&rounds),
        t0,
        (
            args.period,
            settings.phase_window(PeriodGroup::Node, args.monitors),
        ),
    )
    .sized_like(&settings, PeriodGroup::Node);
    let builds = Arc::clone(&planner.builds);
    let manager = MonitorsManager::new(Arc::clone(&sink.bus), vec![Arc::new(planner)], settings);
    let status = manager.status_handle();
    let token = CancellationToken::new();
    let run = tokio::spawn(manager.run(token.clone()));
    let n_messages = messages.len();
    for (key, sections) in &messages {
        publish_json(bus, CONFIG_EXCHANGE, key, sections).await?;
    }
    drop(messages);
    let mut startup = None;
    let mut timeline: Vec<Second> = Vec::new();
    let mut last_rounds = 0u64;
    let mut next_second = window.start + Duration::from_secs(1);
    while Instant::now() < window.end {
        let now = Instant::now();
        if now >= next_second {
            let counted = recorder.rounds.load(Ordering::Relaxed);
            timeline.push(Second {
                t: u32::try_from(timeline.len()).unwrap_or(u32::MAX),
                started: counted - last_rounds,
                in_flight: status.rounds_in_flight(),
                permits: status.round_permits(),
                fds: fds(),
            });
            last_rounds = counted;
            next_second += Duration::from_secs(1);
        }
        if startup.is_none() && builds.started() >= args.monitors {
            let last = builds
                .last_first_build
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or(t0);
            startup = Some(last.saturating_duration_since(t0));
        }
        let step = if startup.is_none() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(1000)
        };
        let now = Instant::now();
        let left = window.end.saturating_duration_since(now);
        let to_second = if now >= window.start {
            next_second.saturating_duration_since(now)
        } else {
            window.start.saturating_duration_since(now) + Duration::from_secs(1)
        };
        tokio::time::sleep(step.min(left).min(to_second)).await;
        if run.is_finished() {
            break;
        }
    }
    let sampled = tokio::task::spawn_blocking(move || sampler.join())
        .await
        .map_err(|e| BenchError::Setup(format!("sampler: {e}")))?
        .map_err(|_| BenchError::Setup("the sampler thread panicked".into()))?;
    let s = status.status();
    let permits_end = status.round_permits();
    token.cancel();
    match run.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(BenchError::Setup(format!("the manager failed: {e}"))),
        Err(e) => return Err(BenchError::Setup(format!("the manager task failed: {e}"))),
    }
    sink.close().await;
    let upper = rounds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .upper_p99_ms();
    let mut notes = Vec::new();
    if startup.is_none() {
        notes.push(format!(
            "only {} of {} monitors were started",
            builds.started(),
            args.monitors
        ));
    }
    notes.push(format!(
        "lateness from each monitor's first build (a lower bound); from the manager's start (an \
         upper bound, adding the {:.2} s the manager took to start every monitor) p99 reads \
         {upper:.2} ms",
        startup.unwrap_or_default().as_secs_f64()
    ));
    Ok(ScaleResult {
        approach: "manager".to_owned(),
        config_messages: n_messages,
        running: builds.started(),
        startup_s: startup.unwrap_or_default().as_secs_f64(),
        lateness_upper_p99_ms: upper,
        manager: serde_json::json!({
            "rounds_ok": s.rounds_ok,
            "rounds_err": s.rounds_err,
            "rounds_timed_out": s.rounds_timed_out,
            "rounds_cut_off": s.rounds_cut_off,
            "slow_monitors": s.slow_monitors,
            "publishes_ok": s.publishes_ok,
            "deaths": s.deaths,
            "build_failures": s.build_failures,
            "config_errors": s.config_errors,
            "outbox_dropped": s.outbox_dropped,
        }),
        in_flight_settings: (max_in_flight, round_budget.as_secs_f64(), max_in_flight_cap),
        permits_end,
        notes,
        ..summarise(&args, &recorder, &sampled, timeline)
    })
}

/// One row of the result, Markdown.
pub(crate) fn markdown(r: &ScaleResult) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    format!(
        "| approach | monitors | targets | period s | rounds (expected) | errors | CPU ms / round | cores | RSS steady / peak MiB | KiB / monitor | lateness p50 / p99 / max ms | fds peak (ulimit -n) | start-up s |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n\
         | {} | {} | {} | {} | {} ({:.0}) | {} | {:.3} | {:.2} | {:.1} / {:.1} | {:.2} | {:.2} / {:.2} / {:.1} | {} ({}) | {:.2} |\n\n\
         rounds started per second {} / {:.0} / {} (least / mean / most; due {:.0}); in flight mean {:.0}, most {}; \
         main-pool bound {} (floor {}, budget {} s, cap {}); stand-in CPU {:.2} s\n\n{}\n",
        r.approach,
        r.monitors,
        r.targets,
        r.period_s,
        r.rounds,
        r.expected_rounds,
        r.error_envelopes + r.round_errors,
        r.cpu_ms_per_round,
        r.cores,
        mib(r.rss_steady_bytes),
        mib(r.rss_peak_bytes),
        r.rss_per_monitor_bytes / 1024.0,
        r.lateness.p50_ms,
        r.lateness.p99_ms,
        r.lateness.max_ms,
        r.fds_peak,
        r.ulimit_n.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        r.startup_s,
        r.started_per_second.0,
        r.started_per_second.1,
        r.started_per_second.2,
        r.due_per_second,
        r.in_flight_mean_max.0,
        r.in_flight_mean_max.1,
        r.permits_end,
        r.in_flight_settings.0,
        r.in_flight_settings.1,
        r.in_flight_settings.2,
        r.stand_in_cpu_s,
        r.notes
            .iter()
            .map(|n| format!("- {n}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cover_every_monitor_once() {
        let m = evm_messages(25, 7, 8545, 10);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].0, "chains.ethereum.bench_0.evm_nodes_config");
        let total: usize = m.iter().map(|(_, s)| s.as_object().unwrap().len()).sum();
        assert_eq!(total, 25);
        assert_eq!(
            m[2].1["bench_evm_24"]["node_http_url"],
            format!("http://{}:8545", loopback_addr(24 % 7))
        );
    }
}
