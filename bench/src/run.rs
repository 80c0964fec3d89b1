//! One measured run (`bench run`: one approach, one size, in a fresh process) and the worker
//! processes of the processes approach (`bench worker`).

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::approaches::{self, strategy_settings, system_monitor, Approach, RunCtx, Started};
use super::proc::{self, MemStatus};
use super::record::{Clock, Grid, Lateness, Recorder, Window};
use super::sink::Sink;
use super::BenchError;

/// What `bench run` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct RunArgs {
    /// The approach.
    pub(crate) approach: Approach,
    /// Monitorables.
    pub(crate) size: usize,
    /// Exporter URL.
    pub(crate) url: String,
    /// Round period.
    pub(crate) period: Duration,
    /// Warm-up (not measured).
    pub(crate) warmup: Duration,
    /// Measured time.
    pub(crate) measure: Duration,
    /// RabbitMQ URL (in-memory bus if `None`).
    pub(crate) amqp_url: Option<String>,
    /// Workers of the queue approach.
    pub(crate) workers: usize,
    /// RSS sampling interval.
    pub(crate) sample_every: Duration,
}

/// The result of one run, as written to `results.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunResult {
    /// Approach name.
    pub(crate) approach: String,
    /// `memory` or `rabbitmq`.
    pub(crate) bus: String,
    /// Monitorables asked for.
    pub(crate) size: usize,
    /// Set when the run was not made (and why).
    pub(crate) skipped: Option<String>,
    /// Monitorables actually started.
    pub(crate) running: usize,
    /// Period, seconds.
    pub(crate) period_s: f64,
    /// Warm-up, seconds.
    pub(crate) warmup_s: f64,
    /// Measured time, seconds.
    pub(crate) measure_s: f64,
    /// Workers (queue approach).
    pub(crate) workers: Option<usize>,
    /// Seconds to start every monitor.
    pub(crate) startup_s: f64,
    /// Rounds whose tick fell in the window.
    pub(crate) rounds: u64,
    /// Rounds the schedule asks for in the window (`running × measure / period`).
    pub(crate) expected_rounds: f64,
    /// `result` envelopes.
    pub(crate) results: u64,
    /// `error` envelopes (exporter unreachable or too slow: not the same work).
    pub(crate) error_envelopes: u64,
    /// Rounds that returned `Err`.
    pub(crate) round_errors: u64,
    /// Failed raw-data publishes.
    pub(crate) publish_failures: u64,
    /// Raw-data messages consumed from the bus in the window.
    pub(crate) received: u64,
    /// Heartbeats consumed in the window (the manager publishes one per round).
    pub(crate) heartbeats: u64,
    /// Rounds per second.
    pub(crate) rounds_per_s: f64,
    /// Raw-data messages per second through the bus.
    pub(crate) publishes_per_s: f64,
    /// CPU seconds used in the window (every thread and every worker process).
    pub(crate) cpu_s: f64,
    /// CPU seconds per 1,000 rounds.
    pub(crate) cpu_s_per_1000_rounds: f64,
    /// Cores busy on average (`cpu_s / measure_s`).
    pub(crate) cpu_cores: f64,
    /// Sum of `VmHWM` (peak RSS) over the processes, bytes.
    pub(crate) rss_peak_bytes: u64,
    /// Mean of the summed `VmRSS` samples in the window, bytes.
    pub(crate) rss_steady_bytes: u64,
    /// Mean of the summed `RssAnon` samples (without shared binary pages), bytes.
    pub(crate) rss_anon_steady_bytes: u64,
    /// `rss_steady_bytes / running`.
    pub(crate) rss_per_monitorable_bytes: f64,
    /// OS processes (max over samples).
    pub(crate) os_processes: u64,
    /// OS threads (max over samples).
    pub(crate) os_threads: u64,
    /// Schedule lateness of the rounds in the window.
    pub(crate) lateness: Lateness,
    /// The exporter's CPU, in cores, during the run (filled by the suite).
    pub(crate) server_cpu_cores: Option<f64>,
    /// The manager's own counters (manager approach).
    pub(crate) manager: Option<serde_json::Value>,
    /// Remarks.
    pub(crate) notes: Vec<String>,
}

/// Memory and CPU over the window.
#[derive(Debug, Default)]
struct Sampled {
    cpu_s: f64,
    rss_steady: u64,
    rss_anon_steady: u64,
    rss_peak: u64,
    processes: u64,
    threads: u64,
}

fn totals(pids: &[u32]) -> (MemStatus, u64) {
    let mut total = proc::mem_status(proc::self_pid()).unwrap_or_default();
    let mut alive = 1;
    for &pid in pids {
        if let Some(s) = proc::mem_status(pid) {
            total.add(s);
            alive += 1;
        }
    }
    (total, alive)
}

/// CPU seconds of every live thread of this process and of `pids`, keyed by (pid, tid).
fn cpu_by_pid(pids: &[u32]) -> HashMap<(u32, u32), f64> {
    std::iter::once(proc::self_pid())
        .chain(pids.iter().copied())
        .flat_map(|p| {
            proc::thread_cpu_seconds(p)
                .into_iter()
                .map(move |(tid, c)| ((p, tid), c))
        })
        .collect()
}

/// CPU used between two readings: per thread alive at the end (a thread started in between counts
/// from zero). Monitor threads and worker processes stay alive past the window end so that none is
/// missed.
fn cpu_between(before: &HashMap<(u32, u32), f64>, after: &HashMap<(u32, u32), f64>) -> f64 {
    after
        .iter()
        .map(|(pid, c)| c - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

/// Samples this process and `pids` over `window` (a thread of its own, so a busy runtime does not
/// delay it).
fn sample(window: Window, pids: Arc<Mutex<Vec<u32>>>, every: Duration) -> Sampled {
    let pid_list = || pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let list = pid_list();
    let cpu0 = cpu_by_pid(&list);
    let mut out = Sampled::default();
    let mut n: u64 = 0;
    let (mut rss_sum, mut anon_sum) = (0u128, 0u128);
    loop {
        let list = pid_list();
        let (t, alive) = totals(&list);
        rss_sum += u128::from(t.rss);
        anon_sum += u128::from(t.rss_anon);
        n += 1;
        out.processes = out.processes.max(alive);
        out.threads = out.threads.max(t.threads);
        out.rss_peak = out.rss_peak.max(t.hwm).max(t.rss);
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        std::thread::sleep(every.min(window.end - now));
    }
    let list = pid_list();
    out.cpu_s = cpu_between(&cpu0, &cpu_by_pid(&list));
    out.rss_steady = u64::try_from(rss_sum / u128::from(n.max(1))).unwrap_or(u64::MAX);
    out.rss_anon_steady = u64::try_from(anon_sum / u128::from(n.max(1))).unwrap_or(u64::MAX);
    out
}

/// Run one approach at one size and measure it.
pub(crate) async fn run(args: RunArgs) -> Result<RunResult, BenchError> {
    if args.amqp_url.is_some() && matches!(args.approach, Approach::Threads | Approach::Processes) {
        return Err(BenchError::Usage(format!(
            "the {} approach runs on the in-memory bus only (one bus per thread or process)",
            args.approach
        )));
    }
    // The window is fixed before the bus is opened so that the drains count into it.
    let epoch = Instant::now() + Duration::from_millis(300);
    let window = Window {
        start: epoch + args.warmup,
        end: epoch + args.warmup + args.measure,
    };
    let recorder = Arc::new(Recorder::new(window)?);
    let sink = Sink::open(args.amqp_url.as_deref(), Arc::clone(&recorder)).await?;
    let pids = Arc::new(Mutex::new(Vec::new()));
    let ctx = Arc::new(RunCtx {
        url: args.url.clone(),
        size: args.size,
        grid: Grid {
            epoch,
            period: args.period,
            n: args.size,
        },
        recorder: Arc::clone(&recorder),
        bus: Arc::clone(&sink.bus),
        settings: strategy_settings(args.period),
        workers: args.workers,
        pids: Arc::clone(&pids),
        notes: Arc::new(Mutex::new(Vec::new())),
    });
    let every = args.sample_every;
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sample(window, pids, every))
        .map_err(|e| BenchError::io("spawning the sampler thread", e))?;
    let started: Started = approaches::run(args.approach, Arc::clone(&ctx)).await?;
    let sampled = tokio::task::spawn_blocking(move || sampler.join())
        .await
        .map_err(|e| BenchError::Setup(format!("sampler: {e}")))?
        .map_err(|_| BenchError::Setup("the sampler thread panicked".into()))?;
    // Let the last publishes of the window reach the drains.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.close().await;

    let measure_s = args.measure.as_secs_f64();
    let rounds = recorder.rounds.load(Ordering::Relaxed);
    let received = recorder.received.load(Ordering::Relaxed);
    let notes = ctx.notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunResult {
        approach: args.approach.name().to_owned(),
        bus: if args.amqp_url.is_some() {
            "rabbitmq"
        } else {
            "memory"
        }
        .to_owned(),
        size: args.size,
        skipped: None,
        running: started.running,
        period_s: args.period.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        measure_s,
        workers: (args.approach == Approach::Queue).then_some(args.workers),
        startup_s: started.startup.as_secs_f64(),
        rounds,
        expected_rounds: started.running as f64 * measure_s / args.period.as_secs_f64(),
        results: recorder.results.load(Ordering::Relaxed),
        error_envelopes: recorder.error_envelopes.load(Ordering::Relaxed),
        round_errors: recorder.round_errors.load(Ordering::Relaxed),
        publish_failures: recorder.publish_failures.load(Ordering::Relaxed),
        received,
        heartbeats: recorder.heartbeats.load(Ordering::Relaxed),
        rounds_per_s: rounds as f64 / measure_s,
        publishes_per_s: received as f64 / measure_s,
        cpu_s: sampled.cpu_s,
        cpu_s_per_1000_rounds: if rounds > 0 {
            sampled.cpu_s * 1000.0 / rounds as f64
        } else {
            0.0
        },
        cpu_cores: sampled.cpu_s / measure_s,
        rss_peak_bytes: sampled.rss_peak,
        rss_steady_bytes: sampled.rss_steady,
        rss_anon_steady_bytes: sampled.rss_anon_steady,
        rss_per_monitorable_bytes: sampled.rss_steady as f64 / started.running.max(1) as f64,
        os_processes: sampled.processes,
        os_threads: sampled.threads,
        lateness: recorder.lateness(),
        server_cpu_cores: None,
        manager: started.manager,
        notes,
    })
}

/// What `bench worker` is asked to do (times are wall-clock milliseconds, shared across processes).
#[derive(Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// Exporter URL.
    pub(crate) url: String,
    /// This worker's monitor index.
    pub(crate) index: usize,
    /// Number of monitors (for the phase).
    pub(crate) count: usize,
    /// Period, milliseconds.
    pub(crate) period_ms: u64,
    /// Grid origin.
    pub(crate) epoch_ms: u128,
    /// Window start.
    pub(crate) window_start_ms: u128,
    /// Window end.
    pub(crate) window_end_ms: u128,
}

/// What a worker prints (one JSON line) when it is done.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WorkerReport {
    rounds: u64,
    results: u64,
    error_envelopes: u64,
    round_errors: u64,
    publish_failures: u64,
    received: u64,
    lateness_us: Vec<u64>,
}

/// `bench worker`: one monitor loop, as one PANIC monitor process; prints a [`WorkerReport`].
pub(crate) async fn worker(args: WorkerArgs) -> Result<(), BenchError> {
    let clock = Clock::now();
    let window = Window {
        start: clock.to_instant(args.window_start_ms),
        end: clock.to_instant(args.window_end_ms),
    };
    let recorder = Arc::new(Recorder::new(window)?);
    let grid = Grid {
        epoch: clock.to_instant(args.epoch_ms),
        period: Duration::from_millis(args.period_ms),
        n: args.count,
    };
    let sink = Sink::open(None, Arc::clone(&recorder)).await?;
    let settings = strategy_settings(grid.period);
    let monitor = system_monitor(args.index, &args.url, &settings)?;
    approaches::monitor_loop(args.index, monitor, grid, &recorder, &*sink.bus, window.end).await;
    // Stay alive a little past the window end: the parent reads every worker's CPU time then.
    tokio::time::sleep_until((window.end + Duration::from_secs(1)).into()).await;
    sink.close().await;
    let r = &recorder;
    let report = WorkerReport {
        rounds: r.rounds.load(Ordering::Relaxed),
        results: r.results.load(Ordering::Relaxed),
        error_envelopes: r.error_envelopes.load(Ordering::Relaxed),
        round_errors: r.round_errors.load(Ordering::Relaxed),
        publish_failures: r.publish_failures.load(Ordering::Relaxed),
        received: r.received.load(Ordering::Relaxed),
        lateness_us: r.lateness_values_us(),
    };
    let line = serde_json::to_string(&report)
        .map_err(|e| BenchError::Setup(format!("encoding the report: {e}")))?;
    println!("{line}");
    Ok(())
}

/// Spawn one `bench worker` per monitor, wait for them all, and merge their reports.
pub(crate) async fn spawn_workers(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench executable", e))?;
    let clock = Clock::now();
    let window = ctx.recorder.window;
    let t0 = Instant::now();
    let mut children = Vec::with_capacity(ctx.size);
    for i in 0..ctx.size {
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .args(["--url", &ctx.url])
            .args(["--index", &i.to_string()])
            .args(["--count", &ctx.size.to_string()])
            .args(["--period-ms", &ctx.grid.period.as_millis().to_string()])
            .args(["--epoch-ms", &clock.to_unix_ms(ctx.grid.epoch).to_string()])
            .args([
                "--window-start-ms",
                &clock.to_unix_ms(window.start).to_string(),
            ])
            .args(["--window-end-ms", &clock.to_unix_ms(window.end).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match cmd.spawn() {
            Ok(child) => {
                ctx.pids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(child.id());
                children.push(child);
            }
            Err(e) => {
                ctx.note(format!(
                    "processes: spawning worker {} of {} failed ({e}); running {i}",
                    i + 1,
                    ctx.size
                ));
                break;
            }
        }
    }
    let running = children.len();
    let startup = t0.elapsed();
    let recorder = Arc::clone(&ctx.recorder);
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for child in children {
            let pid = child.id();
            match child.wait_with_output() {
                Ok(out) => {
                    let report = out
                        .stdout
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|l| serde_json::from_str::<WorkerReport>(&l).ok())
                        .last();
                    match report {
                        Some(r) => merge(&recorder, &r),
                        None => failures.push(format!(
                            "worker {pid} exited with {} and no report",
                            out.status
                        )),
                    }
                }
                Err(e) => failures.push(format!("waiting for worker {pid}: {e}")),
            }
        }
        failures
    })
    .await
    .map_err(|e| BenchError::Setup(format!("waiting for workers: {e}")))?;
    if !failures.is_empty() {
        let n = failures.len();
        let first: Vec<String> = failures.into_iter().take(3).collect();
        ctx.note(format!("processes: {n} workers failed, e.g. {first:?}"));
    }
    Ok(Started {
        running,
        startup,
        manager: None,
    })
}

fn merge(recorder: &Recorder, r: &WorkerReport) {
    recorder.rounds.fetch_add(r.rounds, Ordering::Relaxed);
    recorder.results.fetch_add(r.results, Ordering::Relaxed);
    recorder
        .error_envelopes
        .fetch_add(r.error_envelopes, Ordering::Relaxed);
    recorder
        .round_errors
        .fetch_add(r.round_errors, Ordering::Relaxed);
    recorder
        .publish_failures
        .fetch_add(r.publish_failures, Ordering::Relaxed);
    recorder.received.fetch_add(r.received, Ordering::Relaxed);
    for &us in &r.lateness_us {
        recorder.record_lateness_us(us);
    }
}
