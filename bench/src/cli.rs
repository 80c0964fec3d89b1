//! The command line of `bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::approaches::Approach;
use super::run::{RunArgs, WorkerArgs};
use super::suite::SuiteArgs;
use super::BenchError;

/// Benchmark harness: the same system-monitor work (GET a node_exporter-like endpoint over
/// loopback, parse, build the envelope, publish) run as one OS process per monitorable, one OS
/// thread per monitorable, our MonitorsManager (one tokio task per monitorable), a bounded work
/// queue with W workers, and a bare tokio loop; measures RSS, CPU per 1,000 rounds, rounds/s,
/// publishes/s and schedule lateness (p50/p99/max).
///
/// Usually: `bench suite` (everything, written to --out-dir). The other subcommands are the
/// pieces the suite runs in child processes.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log filter (tracing `EnvFilter` syntax), to stderr.
    #[arg(
        long,
        global = true,
        default_value = "warn,lapin=error",
        env = "BENCH_LOG"
    )]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run every approach at every size (each in a fresh process) and write results.json,
    /// results.md and plot.svg.
    Suite(SuiteCli),
    /// One measured run of one approach at one size; prints one JSON line (a result row).
    Run(RunCli),
    /// Serve the fixture at http://ADDR/metrics until stdin closes (the exporter stand-in).
    Serve(ServeCli),
    /// Load-check a running exporter stand-in: requests/s and the server's CPU per request.
    CheckServer(CheckCli),
    /// Re-render results.md and plot.svg from a results.json.
    Report {
        /// The results.json written by `bench suite`.
        #[arg(long)]
        results: PathBuf,
        /// Where to write results.md and plot.svg (default: next to results.json).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// The release `monitors-manager --config-dir` and Debian's Prometheus polling the same N
    /// node_exporter targets at the same period, measured over one window: CPU per round vs per
    /// scrape, RSS (issue #14). Writes results.json and results.md to --out-dir.
    PrometheusCompare(CompareCli),
    /// N EVM node monitors in one MonitorsManager (public API, in-memory bus) against the
    /// JSON-RPC stand-in at T distinct loopback addresses: RSS, CPU, lateness, errors, file
    /// descriptors (issue #14). Prints the row and writes --out (JSON) if given.
    EvmScale(ScaleCli),
    /// Reacting at scale: publish → all N monitors started from one N-section message, and
    /// publish → restart of the one monitor whose section changed (the others must not restart).
    React(ReactCli),
    /// (internal) A poller that only fetches, for `prometheus-compare --floors`: polls the
    /// targets of --targets-file every --period and drops the bodies; writes its counts to
    /// --count-file.
    #[command(hide = true)]
    FetchFloor(FetchFloorCli),
    /// (internal) One monitor loop as one OS process; prints one JSON report line.
    #[command(hide = true)]
    Worker(WorkerCli),
    /// One system round in-process on a body from memory, repeated, for callgrind (issue #14):
    /// `valgrind --tool=callgrind --toggle-collect='bench::floor::measured' bench callgrind-round`.
    CallgrindRound(CallgrindCli),
}

/// `bench fetch-floor`.
#[derive(Debug, Args)]
struct FetchFloorCli {
    /// `http` (reqwest, the manager's shared HTTP layer), `hyper` (the same layer's kept
    /// connection, as the system monitor fetches: hyper's connection-level client polled in the
    /// task) or `raw` (a kept TCP connection, a fixed request).
    #[arg(long, value_enum)]
    client: super::fetch::Client,
    /// One `IP:PORT` per line.
    #[arg(long)]
    targets_file: PathBuf,
    /// Period, seconds.
    #[arg(long, default_value_t = 10.0)]
    period: f64,
    /// Where "OK FAILED" is written every 250 ms.
    #[arg(long)]
    count_file: PathBuf,
}

/// `bench callgrind-round`.
#[derive(Debug, Args)]
struct CallgrindCli {
    /// The body.
    #[arg(
        long,
        default_value = "/work/shared/fixtures/node_exporter/metrics.txt"
    )]
    fixture: PathBuf,
    /// `after` (the round now), `before` (the round before #14) or `floor`.
    #[arg(long, value_enum, default_value = "after")]
    mode: super::floor::Mode,
    /// Rounds counted.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
}

/// Shared timing flags.
#[derive(Debug, Clone, Args)]
struct Timing {
    /// Round period of every monitor, seconds.
    #[arg(long, default_value_t = 10.0)]
    period: f64,
    /// Warm-up before measuring (monitors start, connections open), seconds; at least a period
    /// is advisable.
    #[arg(long, default_value_t = 15.0)]
    warmup: f64,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 60.0)]
    measure: f64,
    /// Worker tasks of the queue approach.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// RSS sampling interval, seconds.
    #[arg(long, default_value_t = 1.0)]
    sample_every: f64,
}

#[derive(Debug, Args)]
struct SuiteCli {
    /// Monitorable counts.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1_000, 10_000])]
    sizes: Vec<usize>,
    /// Approaches on the in-memory bus.
    #[arg(long, value_delimiter = ',', default_values = ["processes", "threads", "manager", "queue", "bare"])]
    approaches: Vec<Approach>,
    /// Approaches also run on RabbitMQ (threads and processes are in-memory only).
    #[arg(long, value_delimiter = ',', default_values = ["manager", "bare"])]
    amqp_approaches: Vec<Approach>,
    /// Sizes of the RabbitMQ runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000])]
    amqp_sizes: Vec<usize>,
    /// RabbitMQ to publish to (a private vhost is created with rabbitmqctl and deleted after).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672")]
    amqp_url: String,
    /// Skip the RabbitMQ runs.
    #[arg(long)]
    no_amqp: bool,
    /// rabbitmqctl, to create and delete the private vhost.
    #[arg(long, default_value = "/usr/sbin/rabbitmqctl", env = "RABBITMQCTL")]
    rabbitmqctl: PathBuf,
    /// Largest size run with one OS process per monitorable.
    #[arg(long, default_value_t = 1_000)]
    max_processes: usize,
    /// Largest size run with one OS thread per monitorable.
    #[arg(long, default_value_t = 10_000)]
    max_threads: usize,
    /// The exporter body served.
    #[arg(
        long,
        default_value = "/work/shared/fixtures/node_exporter/metrics.txt"
    )]
    fixture: PathBuf,
    /// Where results.json, results.md and plot.svg go.
    #[arg(long, default_value = "docs/bench")]
    out_dir: PathBuf,
    /// Tiny smoke run: 5 monitorables, 1 s period, 1 s warm-up, 2 s measured, every approach,
    /// RabbitMQ for the manager only (overrides the sizes and timings).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    timing: Timing,
}

#[derive(Debug, Args)]
struct RunCli {
    /// The approach.
    #[arg(long)]
    approach: Approach,
    /// Monitorables.
    #[arg(long)]
    size: usize,
    /// The exporter URL (http://IP:PORT/metrics).
    #[arg(long)]
    url: String,
    /// RabbitMQ URL including the vhost (in-memory bus if absent).
    #[arg(long)]
    amqp_url: Option<String>,
    #[command(flatten)]
    timing: Timing,
}

#[derive(Debug, Args)]
struct CompareCli {
    /// Targets (distinct loopback addresses on the stand-in's port), as many systems for the
    /// manager and as many scrape targets for Prometheus.
    #[arg(long, default_value_t = 2_000)]
    targets: usize,
    /// Period of both (SYSTEM_MONITOR_PERIOD_SECONDS and scrape_interval), seconds.
    #[arg(long, default_value_t = 10.0)]
    period: f64,
    /// Warm-up before the window, seconds (at least two periods is advisable).
    #[arg(long, default_value_t = 25.0)]
    warmup: f64,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 60.0)]
    measure: f64,
    /// RSS sampling interval, seconds.
    #[arg(long, default_value_t = 1.0)]
    sample_every: f64,
    /// The body to serve; default: captured at run time from --exporter-bin.
    #[arg(long)]
    body: Option<PathBuf>,
    /// node_exporter, run once to capture its /metrics.
    #[arg(long, default_value = "/usr/bin/prometheus-node-exporter")]
    exporter_bin: PathBuf,
    /// The manager binary (default: `monitors-manager` beside this executable).
    #[arg(long)]
    manager_bin: Option<PathBuf>,
    /// Prometheus.
    #[arg(long, default_value = "/usr/bin/prometheus")]
    prometheus_bin: PathBuf,
    /// Where results.json, results.md, the body and the generated configs go.
    #[arg(long, default_value = "docs/bench/prometheus")]
    out_dir: PathBuf,
    /// One after the other (each its own warm-up and window) instead of both at once.
    #[arg(long)]
    sequential: bool,
    /// Keep the work folder (TSDB, raw output).
    #[arg(long)]
    keep_work: bool,
    /// Also run three fetch-only pollers in the same window (`fetch-floor raw`: a kept TCP
    /// connection and a fixed request; `fetch-floor hyper`: the manager's kept-connection path,
    /// hyper's connection-level client polled in each target's task; `fetch-floor http`: reqwest, the manager's shared HTTP
    /// layer), bodies read whole and dropped: what the fetch alone costs per round.
    #[arg(long, conflicts_with = "sequential")]
    floors: bool,
}

#[derive(Debug, Args)]
struct ScaleCli {
    /// EVM node monitors.
    #[arg(long, default_value_t = 100_000)]
    monitors: usize,
    /// Distinct targets (loopback addresses on the stand-in's port); monitor i polls target
    /// i mod T.
    #[arg(long, default_value_t = 100_000)]
    targets: usize,
    /// Period of the node monitors (NODE_MONITOR_PERIOD_SECONDS), seconds.
    #[arg(long, default_value_t = 60.0)]
    period: f64,
    /// Warm-up, seconds (at least the phase window, min(period, 60 s), plus start-up).
    #[arg(long, default_value_t = 75.0)]
    warmup: f64,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 120.0)]
    measure: f64,
    /// Sampling interval (RSS, fds), seconds.
    #[arg(long, default_value_t = 1.0)]
    sample_every: f64,
    /// Sections per config message (one chain each).
    #[arg(long, default_value_t = 10_000)]
    per_message: usize,
    /// Hosts that may keep connections alive (ConnectionLimits::max_kept_hosts).
    #[arg(long, default_value_t = monitor_strategies::DEFAULT_MAX_KEPT_HOSTS)]
    max_kept_hosts: usize,
    /// Idle connections kept per host.
    #[arg(long, default_value_t = monitor_strategies::DEFAULT_MAX_IDLE_PER_HOST)]
    max_idle_per_host: usize,
    /// Rounds that may hold one connection for both requests to a host without a keep-alive
    /// place (ConnectionLimits::max_held; 0: a connection per request).
    #[arg(long, default_value_t = monitor_strategies::DEFAULT_MAX_HELD)]
    max_held: usize,
    /// The manager's least bound on rounds in flight (ManagerSettings::max_in_flight).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// The mean round duration the bound is sized for, seconds (ManagerSettings::round_budget;
    /// 0: the bound stays --max-in-flight, the manager before #14's fix).
    #[arg(long, default_value_t = 1.0)]
    round_budget: f64,
    /// The most the bound grows to (ManagerSettings::max_in_flight_cap).
    #[arg(long, default_value_t = monitors_manager::DEFAULT_MAX_IN_FLIGHT_CAP)]
    max_in_flight_cap: usize,
    /// No manager: one bare tokio task per monitor (the same strategy and bus), for comparison.
    #[arg(long)]
    bare: bool,
    /// Write the result (JSON) here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReactCli {
    /// Sections (system monitors) in the message.
    #[arg(long, default_value_t = 10_000)]
    sections: usize,
    /// Changes of one section measured (a different section each).
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Period of the system monitors, seconds.
    #[arg(long, default_value_t = 60.0)]
    period: f64,
    /// The exporter body the stand-in serves.
    #[arg(
        long,
        default_value = "/work/shared/fixtures/node_exporter/metrics.txt"
    )]
    fixture: PathBuf,
    /// Write the result (JSON) here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeCli {
    /// The body to serve.
    #[arg(
        long,
        default_value = "/work/shared/fixtures/node_exporter/metrics.txt"
    )]
    fixture: PathBuf,
    /// Address to bind (port 0: any free port; the bound address is printed). `0.0.0.0:PORT`
    /// serves every loopback address (127.0.0.0/8) and drops other peers.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Be an EVM node stand-in (JSON-RPC `eth_blockNumber`, `eth_syncing`) instead of an
    /// exporter.
    #[arg(long)]
    json_rpc: bool,
}

#[derive(Debug, Args)]
struct CheckCli {
    /// The exporter URL (http://IP:PORT/metrics).
    #[arg(long)]
    url: String,
    /// The server's process id (for its CPU).
    #[arg(long)]
    pid: u32,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

#[derive(Debug, Args)]
struct WorkerCli {
    #[arg(long)]
    url: String,
    #[arg(long)]
    index: usize,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    period_ms: u64,
    #[arg(long)]
    epoch_ms: u128,
    #[arg(long)]
    window_start_ms: u128,
    #[arg(long)]
    window_end_ms: u128,
}

fn seconds(what: &str, s: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| BenchError::Usage(format!("--{what} must be a positive number of seconds")))
}

impl Timing {
    fn durations(&self) -> Result<(Duration, Duration, Duration, Duration), BenchError> {
        if self.workers == 0 {
            return Err(BenchError::Usage("--workers must be at least 1".into()));
        }
        Ok((
            seconds("period", self.period)?,
            Duration::try_from_secs_f64(self.warmup)
                .map_err(|_| BenchError::Usage("--warmup must be ≥ 0 seconds".into()))?,
            seconds("measure", self.measure)?,
            seconds("sample-every", self.sample_every)?,
        ))
    }
}

/// Parse the command line and run.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi: bool) -> Result<tokio::runtime::Runtime, BenchError> {
    let mut b = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all()
        .build()
        .map_err(|e| BenchError::io("building the tokio runtime", e))
}

fn dispatch(cmd: Cmd) -> Result<(), BenchError> {
    match cmd {
        Cmd::Suite(s) => {
            let (period, warmup, measure, sample_every) = s.timing.durations()?;
            let args = SuiteArgs {
                sizes: s.sizes,
                approaches: s.approaches,
                amqp_approaches: if s.no_amqp {
                    Vec::new()
                } else {
                    s.amqp_approaches
                },
                amqp_sizes: s.amqp_sizes,
                amqp_url: s.amqp_url,
                rabbitmqctl: s.rabbitmqctl,
                max_processes: s.max_processes,
                max_threads: s.max_threads,
                fixture: s.fixture,
                out_dir: s.out_dir,
                period,
                warmup,
                measure,
                sample_every,
                workers: s.timing.workers,
            };
            let args = if s.quick { args.quick() } else { args };
            runtime(true)?.block_on(super::suite::suite(args))
        }
        Cmd::Run(r) => {
            let (period, warmup, measure, sample_every) = r.timing.durations()?;
            if r.size == 0 {
                return Err(BenchError::Usage("--size must be at least 1".into()));
            }
            let args = RunArgs {
                approach: r.approach,
                size: r.size,
                url: r.url,
                period,
                warmup,
                measure,
                amqp_url: r.amqp_url,
                workers: r.timing.workers,
                sample_every,
            };
            let result = runtime(true)?.block_on(super::run::run(args))?;
            let line = serde_json::to_string(&result)
                .map_err(|e| BenchError::Setup(format!("encoding the result: {e}")))?;
            println!("{line}");
            Ok(())
        }
        Cmd::Serve(s) => {
            let what =
                if s.json_rpc {
                    super::server::Serve::JsonRpc
                } else {
                    super::server::Serve::Metrics(std::fs::read(&s.fixture).map_err(|e| {
                        BenchError::io(format!("reading {}", s.fixture.display()), e)
                    })?)
                };
            runtime(true)?.block_on(super::server::serve(s.addr, what))
        }
        Cmd::PrometheusCompare(c) => {
            let args = super::compare::CompareArgs {
                targets: c.targets,
                period: seconds("period", c.period)?,
                warmup: Duration::try_from_secs_f64(c.warmup)
                    .map_err(|_| BenchError::Usage("--warmup must be ≥ 0 seconds".into()))?,
                measure: seconds("measure", c.measure)?,
                sample_every: seconds("sample-every", c.sample_every)?,
                body: c.body,
                exporter_bin: c.exporter_bin,
                manager_bin: c
                    .manager_bin
                    .unwrap_or_else(|| super::children::sibling_binary("monitors-manager")),
                prometheus_bin: c.prometheus_bin,
                out_dir: c.out_dir,
                sequential: c.sequential,
                keep_work: c.keep_work,
                floors: c.floors,
            };
            let result = super::compare::compare(&args)?;
            print!("{}", super::compare::markdown(&result));
            Ok(())
        }
        Cmd::EvmScale(c) => {
            if c.monitors == 0 || c.targets == 0 {
                return Err(BenchError::Usage(
                    "--monitors and --targets must be at least 1".into(),
                ));
            }
            let period = seconds("period", c.period)?;
            let stand_in = super::children::StandIn::start(&[
                "--json-rpc".into(),
                "--addr".into(),
                "0.0.0.0:0".into(),
            ])?;
            let mut settings = super::approaches::strategy_settings(period);
            settings.connections = monitor_strategies::ConnectionLimits {
                max_kept_hosts: c.max_kept_hosts,
                max_idle_per_host: c.max_idle_per_host,
                max_held: c.max_held,
                ..settings.connections
            };
            let args = super::scale::ScaleArgs {
                monitors: c.monitors,
                targets: c.targets,
                port: stand_in.addr.port(),
                period,
                warmup: Duration::try_from_secs_f64(c.warmup)
                    .map_err(|_| BenchError::Usage("--warmup must be ≥ 0 seconds".into()))?,
                measure: seconds("measure", c.measure)?,
                sample_every: seconds("sample-every", c.sample_every)?,
                per_message: c.per_message,
                settings,
                in_flight: (
                    c.max_in_flight,
                    Duration::try_from_secs_f64(c.round_budget).map_err(|_| {
                        BenchError::Usage("--round-budget must be ≥ 0 seconds".into())
                    })?,
                    c.max_in_flight_cap,
                ),
                bare: c.bare,
            };
            let cpu0 = super::proc::cpu_seconds(stand_in.pid()).unwrap_or(0.0);
            let mut result = runtime(true)?.block_on(super::scale::evm_scale(args))?;
            result.stand_in_cpu_s = super::proc::cpu_seconds(stand_in.pid()).unwrap_or(cpu0) - cpu0;
            result.stand_in_fds = super::scale::fds_of(stand_in.pid());
            drop(stand_in);
            if let Some(path) = &c.out {
                let json = serde_json::to_string_pretty(&result)
                    .map_err(|e| BenchError::Setup(format!("encoding: {e}")))?;
                std::fs::write(path, json)
                    .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
            }
            print!("{}", super::scale::markdown(&result));
            println!(
                "{}",
                serde_json::to_string(&result)
                    .map_err(|e| BenchError::Setup(format!("encoding: {e}")))?
            );
            Ok(())
        }
        Cmd::React(c) => {
            let stand_in = super::children::StandIn::start(&[
                "--fixture".into(),
                c.fixture.clone().into_os_string(),
            ])?;
            let args = super::react::ReactArgs {
                sections: c.sections,
                changes: c.changes,
                period: seconds("period", c.period)?,
                url: format!("http://{}/metrics", stand_in.addr),
            };
            let result = runtime(true)?.block_on(super::react::react(args))?;
            drop(stand_in);
            let json = serde_json::to_string(&result)
                .map_err(|e| BenchError::Setup(format!("encoding: {e}")))?;
            if let Some(path) = &c.out {
                std::fs::write(path, &json)
                    .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
            }
            print!("{}", super::react::markdown(&result));
            println!("{json}");
            Ok(())
        }
        Cmd::FetchFloor(f) => {
            let period = Duration::try_from_secs_f64(f.period)
                .map_err(|e| BenchError::Usage(format!("--period {}: {e}", f.period)))?;
            runtime(true)?.block_on(super::fetch::run(
                f.client,
                f.targets_file,
                period,
                f.count_file,
            ))
        }
        Cmd::CallgrindRound(c) => {
            let body = std::fs::read(&c.fixture)
                .map_err(|e| BenchError::io(format!("reading {}", c.fixture.display()), e))?;
            super::floor::run(c.mode, &body, c.rounds)
        }
        Cmd::CheckServer(c) => {
            let check = runtime(true)?.block_on(super::server::check(
                &c.url,
                c.pid,
                c.connections.max(1),
                c.seconds,
            ))?;
            let line = serde_json::to_string_pretty(&check)
                .map_err(|e| BenchError::Setup(format!("encoding: {e}")))?;
            println!("{line}");
            Ok(())
        }
        Cmd::Report { results, out_dir } => {
            let out_dir = out_dir
                .or_else(|| results.parent().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("."));
            super::report::rerender(&results, &out_dir)
        }
        Cmd::Worker(w) => {
            if w.count == 0 || w.period_ms == 0 {
                return Err(BenchError::Usage(
                    "--count and --period-ms must be positive".into(),
                ));
            }
            runtime(false)?.block_on(super::run::worker(WorkerArgs {
                url: w.url,
                index: w.index,
                count: w.count,
                period_ms: w.period_ms,
                epoch_ms: w.epoch_ms,
                window_start_ms: w.window_start_ms,
                window_end_ms: w.window_end_ms,
            }))
        }
    }
}
