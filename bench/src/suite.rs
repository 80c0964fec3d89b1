//! `bench suite`: the whole benchmark in one run.
//!
//! 1. Start the exporter stand-in (`bench serve`, its own process) and load-check it.
//! 2. With RabbitMQ runs asked for: create a private vhost (`rabbitmqctl add_vhost`), deleted at
//!    the end.
//! 3. For every size (ascending), every approach: a fresh `bench run` child process (so memory
//!    figures start from zero), its result line collected, the server's CPU over the run added.
//!    Sizes beyond `--max-processes` / `--max-threads`, or that the machine's limits
//!    (`ulimit -u`, `pid_max`, memory) cannot hold, are recorded as skipped with the reason.
//! 4. `results.json` (rewritten after every run), `results.md`, `plot.svg`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::approaches::Approach;
use super::proc::{self, Limits};
use super::report;
use super::run::RunResult;
use super::server::{self, ServerCheck};
use super::BenchError;

/// The suite's inputs.
#[derive(Debug, Clone)]
pub(crate) struct SuiteArgs {
    pub(crate) sizes: Vec<usize>,
    pub(crate) approaches: Vec<Approach>,
    pub(crate) amqp_approaches: Vec<Approach>,
    pub(crate) amqp_sizes: Vec<usize>,
    pub(crate) amqp_url: String,
    pub(crate) rabbitmqctl: PathBuf,
    pub(crate) max_processes: usize,
    pub(crate) max_threads: usize,
    pub(crate) fixture: PathBuf,
    pub(crate) out_dir: PathBuf,
    pub(crate) period: Duration,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) sample_every: Duration,
    pub(crate) workers: usize,
}

impl SuiteArgs {
    /// The smoke-test variant: 5 monitorables, 1 s period, 1 s warm-up, 2 s measured.
    pub(crate) fn quick(mut self) -> Self {
        self.sizes = vec![5];
        self.amqp_sizes = vec![5];
        self.amqp_approaches.retain(|a| *a == Approach::Manager);
        self.period = Duration::from_secs(1);
        self.warmup = Duration::from_secs(1);
        self.measure = Duration::from_secs(2);
        self.sample_every = Duration::from_millis(250);
        self.workers = self.workers.min(4);
        self
    }
}

/// The machine the suite ran on.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    pub(crate) nproc: usize,
    pub(crate) mem_total_bytes: u64,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) limits: Limits,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct SuiteResults {
    /// Wall-clock time the suite started (unix seconds).
    pub(crate) started_unix_s: u64,
    /// Total duration, seconds.
    pub(crate) duration_s: f64,
    /// The command line.
    pub(crate) command: String,
    /// The machine.
    pub(crate) machine: Machine,
    /// Fixture size, bytes.
    pub(crate) fixture_bytes: usize,
    /// The exporter stand-in's load check.
    pub(crate) server_check: ServerCheck,
    /// Period, seconds.
    pub(crate) period_s: f64,
    /// Warm-up, seconds.
    pub(crate) warmup_s: f64,
    /// Measured time per run, seconds.
    pub(crate) measure_s: f64,
    /// Every run, in order.
    pub(crate) runs: Vec<RunResult>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let limits = proc::limits();
    Machine {
        cpu_model,
        nproc: limits.cpus,
        mem_total_bytes: limits.mem_total.unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned()),
        rustc: Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        limits,
    }
}

/// The exporter stand-in child; it exits when its stdin closes (when this is dropped, or if the
/// suite dies).
struct ServerChild {
    child: Child,
    _stdin: Option<ChildStdin>,
    url: String,
}

impl ServerChild {
    fn start(exe: &PathBuf, fixture: &PathBuf) -> Result<Self, BenchError> {
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--fixture")
            .arg(fixture)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::io("starting the exporter stand-in", e))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("the server's stdout is missing".into()))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| BenchError::io("reading the server's address", e))?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or_else(|| BenchError::Setup(format!("the server said {line:?}")))?
            .to_owned();
        Ok(ServerChild {
            child,
            _stdin: stdin,
            url: format!("http://{addr}/metrics"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self._stdin.take();
        // It exits on EOF; give it a moment, then make sure.
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private RabbitMQ vhost, deleted on drop.
struct Vhost {
    rabbitmqctl: PathBuf,
    name: String,
}

impl Vhost {
    fn create(rabbitmqctl: &PathBuf) -> Result<Self, BenchError> {
        let name = format!("panic-bench-{}", std::process::id());
        let run = |args: &[&str]| -> Result<(), BenchError> {
            let out = Command::new(rabbitmqctl)
                .args(args)
                .output()
                .map_err(|e| BenchError::io(format!("running {}", rabbitmqctl.display()), e))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(BenchError::Setup(format!(
                    "rabbitmqctl {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        };
        run(&["add_vhost", &name])?;
        let vhost = Vhost {
            rabbitmqctl: rabbitmqctl.clone(),
            name,
        };
        run(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(vhost)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new(&self.rabbitmqctl)
            .args(["delete_vhost", &self.name])
            .output();
    }
}

/// File descriptors one monitor thread is budgeted: its runtime's epoll instance and waker
/// eventfd, its connection socket, one more seen (`EMFILE` came at ≈ `ulimit -n` / 4 threads), and
/// one spare for a reconnection (at ulimit -n / 4, a 4,500-thread run still failed 43 % of its
/// connects).
pub(crate) const FDS_PER_THREAD: u64 = 5;

/// The most monitor threads `ulimit -n` allows (a margin kept for the bus, sampler and stdio).
pub(crate) fn thread_fd_cap(limits: &Limits) -> Option<usize> {
    limits
        .max_open_files
        .map(|n| usize::try_from(n.saturating_sub(256) / FDS_PER_THREAD).unwrap_or(usize::MAX))
}

/// Why (approach, size) cannot run here, if it cannot.
fn skip_reason(
    approach: Approach,
    size: usize,
    args: &SuiteArgs,
    limits: &Limits,
    done: &[RunResult],
) -> Option<String> {
    let measured_per_monitorable = done
        .iter()
        .filter(|r| r.approach == approach.name() && r.skipped.is_none() && r.running > 0)
        .max_by_key(|r| r.running)
        .map(|r| r.rss_per_monitorable_bytes);
    let projection = |per: Option<f64>| -> String {
        match (per, limits.mem_available) {
            (Some(per), Some(avail)) => format!(
                "; at the {:.1} MiB per monitorable measured below, {size} would need ≈{:.1} GiB \
                 of the {:.1} GiB available",
                per / 1048576.0,
                per * size as f64 / 1073741824.0,
                avail as f64 / 1073741824.0
            ),
            _ => String::new(),
        }
    };
    match approach {
        Approach::Processes if size > args.max_processes => Some(format!(
            "capped at {} processes (--max-processes){}; every process also takes a pid \
             (pid_max {}) and counts against ulimit -u ({})",
            args.max_processes,
            projection(measured_per_monitorable),
            limits.pid_max.map_or("?".into(), |v| v.to_string()),
            limits
                .max_user_processes
                .map_or("unlimited".into(), |v| v.to_string()),
        )),
        Approach::Threads if size > args.max_threads => Some(format!(
            "capped at {} threads (--max-threads){}",
            args.max_threads,
            projection(measured_per_monitorable)
        )),
        Approach::Threads if thread_fd_cap(limits).is_some_and(|cap| size > cap) => Some(format!(
            "one thread per monitorable needs ≈{FDS_PER_THREAD} file descriptors per thread (its \
             runtime's epoll and eventfd, its socket, a spare); ulimit -n is {} (hard limit too, not \
             raisable without root), so at most ≈{} threads; the largest thread run below is \
             that cap",
            limits.max_open_files.unwrap_or(0),
            thread_fd_cap(limits).unwrap_or(0)
        )),
        Approach::Processes | Approach::Threads => {
            let need = size as u64 + 200;
            let cap = [
                limits.max_user_processes,
                limits.pid_max,
                limits.threads_max,
            ]
            .into_iter()
            .flatten()
            .min();
            match cap {
                Some(cap) if need > cap => Some(format!(
                    "{size} {approach} exceed the machine's task limit ({cap}: the smallest of \
                     ulimit -u, pid_max and threads-max)"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Run the suite.
pub(crate) async fn suite(args: SuiteArgs) -> Result<(), BenchError> {
    let started = Instant::now();
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench executable", e))?;
    let fixture_bytes = std::fs::metadata(&args.fixture)
        .map_err(|e| BenchError::io(format!("reading {}", args.fixture.display()), e))?
        .len() as usize;
    if fixture_bytes == 0 {
        return Err(BenchError::Usage(format!(
            "{} is empty",
            args.fixture.display()
        )));
    }
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", args.out_dir.display()), e))?;
    let machine = machine();
    let server = ServerChild::start(&exe, &args.fixture)?;
    let check_seconds = if args.measure < Duration::from_secs(5) {
        1.0
    } else {
        3.0
    };
    let server_check = server::check(&server.url, server.pid(), 64, check_seconds).await?;
    eprintln!(
        "exporter stand-in at {}: {:.0} req/s from 64 connections, {:.1} µs server CPU per \
         request (≈{:.0} req/s per core)",
        server.url,
        server_check.requests_per_s,
        server_check.server_cpu_us_per_request,
        server_check.capacity_per_core
    );
    let vhost = if args.amqp_approaches.is_empty() || args.amqp_sizes.is_empty() {
        None
    } else {
        Some(Vhost::create(&args.rabbitmqctl)?)
    };
    let amqp_url = vhost
        .as_ref()
        .map(|v| format!("{}/{}", args.amqp_url.trim_end_matches('/'), v.name));

    let mut plan: Vec<(Approach, usize, Option<String>)> = Vec::new();
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    for &size in &sizes {
        for &a in &args.approaches {
            plan.push((a, size, None));
        }
    }
    // Threads as far as the machine allows, when a size is beyond the file descriptor limit.
    if args.approaches.contains(&Approach::Threads) {
        if let Some(cap) = thread_fd_cap(&proc::limits()) {
            let cap = (cap / 500) * 500;
            let max = sizes.iter().copied().max().unwrap_or(0);
            if cap >= 100 && max > cap && cap <= args.max_threads && !sizes.contains(&cap) {
                plan.push((Approach::Threads, cap, None));
            }
        }
    }
    if let Some(url) = &amqp_url {
        let mut sizes = args.amqp_sizes.clone();
        sizes.sort_unstable();
        for &size in &sizes {
            for &a in &args.amqp_approaches {
                if matches!(a, Approach::Threads | Approach::Processes) {
                    continue;
                }
                plan.push((a, size, Some(url.clone())));
            }
        }
    }

    let mut results = SuiteResults {
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        fixture_bytes,
        server_check,
        period_s: args.period.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        measure_s: args.measure.as_secs_f64(),
        ..SuiteResults::default()
    };
    let total = plan.len();
    for (n, (approach, size, amqp)) in plan.into_iter().enumerate() {
        let bus = if amqp.is_some() { "rabbitmq" } else { "memory" };
        let label = format!(
            "[{}/{total}] {approach} on {bus}, {size} monitorables",
            n + 1
        );
        let limits = proc::limits();
        let row = match skip_reason(approach, size, &args, &limits, &results.runs) {
            Some(reason) => {
                eprintln!("{label}: skipped: {reason}");
                skipped(approach, bus, size, reason)
            }
            None => {
                eprintln!("{label}: running");
                let cpu0 = proc::cpu_seconds(server.pid()).unwrap_or(0.0);
                let t0 = Instant::now();
                let mut row = match one_run(&exe, &server.url, approach, size, amqp, &args).await {
                    Ok(row) => row,
                    Err(e) => {
                        eprintln!("{label}: failed: {e}");
                        skipped(approach, bus, size, format!("failed: {e}"))
                    }
                };
                let cpu = proc::cpu_seconds(server.pid()).unwrap_or(cpu0) - cpu0;
                row.server_cpu_cores = Some(cpu / t0.elapsed().as_secs_f64().max(1e-9));
                if row.skipped.is_none() {
                    eprintln!(
                        "{label}: {:.1} rounds/s, {:.3} CPU s/1k rounds, RSS {:.1} MiB, \
                         lateness p99 {:.2} ms",
                        row.rounds_per_s,
                        row.cpu_s_per_1000_rounds,
                        row.rss_steady_bytes as f64 / 1048576.0,
                        row.lateness.p99_ms
                    );
                }
                row
            }
        };
        results.runs.push(row);
        results.duration_s = started.elapsed().as_secs_f64();
        report::write_json(&results, &args.out_dir)?;
    }
    drop(vhost);
    drop(server);
    results.duration_s = started.elapsed().as_secs_f64();
    report::write_all(&results, &args.out_dir)?;
    eprintln!(
        "done in {:.0} s: {}",
        results.duration_s,
        args.out_dir.display()
    );
    Ok(())
}

fn skipped(approach: Approach, bus: &str, size: usize, reason: String) -> RunResult {
    RunResult {
        approach: approach.name().to_owned(),
        bus: bus.to_owned(),
        size,
        skipped: Some(reason),
        ..RunResult::default()
    }
}

/// One `bench run` child; killed if it overruns its schedule by far.
async fn one_run(
    exe: &PathBuf,
    url: &str,
    approach: Approach,
    size: usize,
    amqp: Option<String>,
    args: &SuiteArgs,
) -> Result<RunResult, BenchError> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("run")
        .args(["--approach", approach.name()])
        .args(["--size", &size.to_string()])
        .args(["--url", url])
        .args(["--period", &args.period.as_secs_f64().to_string()])
        .args(["--warmup", &args.warmup.as_secs_f64().to_string()])
        .args(["--measure", &args.measure.as_secs_f64().to_string()])
        .args(["--workers", &args.workers.to_string()])
        .args([
            "--sample-every",
            &args.sample_every.as_secs_f64().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(u) = &amqp {
        cmd.args(["--amqp-url", u]);
    }
    let child = cmd
        .spawn()
        .map_err(|e| BenchError::io("starting a bench run", e))?;
    let budget = args.warmup
        + args.measure
        + Duration::from_secs(60)
        + Duration::from_millis(20 * size as u64);
    let out = tokio::time::timeout(budget, child.wait_with_output())
        .await
        .map_err(|_| BenchError::Setup(format!("the run did not finish within {budget:?}")))?
        .map_err(|e| BenchError::io("waiting for a bench run", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            BenchError::Setup(format!("the run exited with {} and no result", out.status))
        })?;
    serde_json::from_str(line).map_err(|e| BenchError::Setup(format!("bad result line: {e}")))
}
