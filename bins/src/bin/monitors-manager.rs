//! `monitors-manager`: PANIC's monitors managers in one process.
//!
//! * `monitors-manager --config-dir DIR [--output FILE]`: the embedded default, no broker: the
//!   in-memory bus, the config folder applied at start and watched, raw data as JSON lines.
//! * `monitors-manager --amqp-url URL` (or env `AMQP_URL`): the manager on RabbitMQ, consuming
//!   configs from the `config` exchange.
//! * `monitors-manager check --config-dir DIR` (or `--config-file FILE`): what a run of that
//!   config would start and every problem with file, line and field; polls nothing; exit status 1
//!   on any problem (`bins::check`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bins::data_metrics::{DataMetrics, TapBus};
use bins::metrics::{self, BusHealth, Endpoint, MetricsServer, Probe};
use bins::{check, cli, config_dir, pretty, sink};
use clap::{Parser, Subcommand, ValueEnum};
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, MemoryBus};
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS};
use monitor_core::PeriodGroup;
use monitor_strategies::StrategySettings;
use monitors_manager::{ManagerSettings, MonitorsManager, Shard};
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;

/// PANIC's monitors side in one process: one supervised task per monitored system, node,
/// repository or chain.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Args {
    /// `check`: read a config folder or file and report, polling nothing.
    #[command(subcommand)]
    command: Option<Command>,

    /// Embedded mode: how raw data is written: `auto` (readable lines when stdout is a terminal,
    /// else JSON lines), `json` or `pretty`.
    #[arg(long, value_enum, default_value_t = Format::Auto, requires = "config_dir")]
    format: Format,

    /// Embedded mode: read PANIC's config folder (general/systems_config.ini,
    /// chains/<base>/<sub>/nodes_config.ini, …), apply it and watch it; no broker.
    #[arg(long, value_name = "DIR", conflicts_with = "amqp_url")]
    config_dir: Option<PathBuf>,

    /// RabbitMQ mode: the broker URL (amqp://user:pass@host:5672/%2f). Env: AMQP_URL.
    #[arg(long, value_name = "URL")]
    amqp_url: Option<String>,

    #[command(flatten)]
    amqp_tls: bins::tls::AmqpTlsArgs,

    /// Embedded mode: write raw data to this file (appended) instead of stdout. If writing fails
    /// (disk full, closed pipe), the error is logged and the manager stops with status 2.
    #[arg(long, value_name = "FILE", requires = "config_dir")]
    output: Option<PathBuf>,

    /// At least this many monitoring rounds may be in flight across all monitors; the bound grows
    /// with the monitors' rate of rounds (see --round-budget), up to --max-in-flight-cap.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_in_flight: usize,

    /// The most rounds in flight the bound grows to (a socket each).
    #[arg(long, value_name = "N", default_value_t = monitors_manager::DEFAULT_MAX_IN_FLIGHT_CAP)]
    max_in_flight_cap: usize,

    /// The mean round duration the bound on rounds in flight is sized for: rounds due per second
    /// × this (0s: the bound stays --max-in-flight).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = cli::parse_duration)]
    round_budget: Duration,

    /// Run only the monitors of shard I of N (several managers on one RabbitMQ), e.g. `0/3`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,

    /// Hosts (scheme, host, port) that may keep HTTP connections alive between rounds at one time
    /// (2 idle connections each; a system monitor keeping its own connection to its exporter takes
    /// one of these places); requests to the others close their connection, as PANIC's did.
    #[arg(long, value_name = "N", default_value_t = monitor_strategies::DEFAULT_MAX_KEPT_HOSTS as u32,
        value_parser = clap::value_parser!(u32).range(1..))]
    max_kept_hosts: u32,

    /// Timeout of one HTTP request (always kept below each monitor type's period).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cli::parse_duration)]
    request_timeout: Duration,

    /// Largest accepted response body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,

    /// Verify TLS certificates of monitored endpoints (node_exporter, Prometheus, Cosmos, Substrate
    /// websockets, …).
    /// PANIC does not; public services (GitHub, DockerHub) are always verified.
    #[arg(long)]
    verify_monitored_tls: bool,

    /// Serve `/metrics` (Prometheus text) and `/health` on this address, e.g. 127.0.0.1:9400.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// How long in-flight rounds may take to finish at shutdown.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cli::parse_duration)]
    shutdown_grace: Duration,

    /// Bound, in bytes, of the outbox holding what monitors publish while the broker is slow or
    /// away; when it is full the oldest rounds are dropped and counted on /metrics. Env:
    /// OUTBOX_BYTES.
    #[arg(long, value_name = "BYTES", env = "OUTBOX_BYTES",
        default_value_t = monitors_manager::DEFAULT_OUTBOX_BYTES)]
    outbox_bytes: usize,
}

/// The embedded mode's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Readable when stdout is a terminal (and no `--output`), else JSON lines.
    Auto,
    /// One JSON line per message: `{"routing_key": …, "body": …}`.
    Json,
    /// One readable line per round: time, routing key, monitor, main figures or the error.
    Pretty,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a PANIC config folder (or one file) and print what would run: monitors per type, each
    /// with its target, and every problem with file, line and field. Polls nothing; exit status 1
    /// on any problem, 2 when the folder cannot be read.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The config folder (general/systems_config.ini, chains/<base>/<sub>/nodes_config.ini, …).
    #[arg(long, value_name = "DIR", required_unless_present = "config_file")]
    config_dir: Option<PathBuf>,

    /// One config file; its routing key is its path from the folder that makes it a config key
    /// (`…/general/systems_config.ini` is `general.systems_config`).
    #[arg(long, value_name = "FILE", conflicts_with = "config_dir")]
    config_file: Option<PathBuf>,
}

/// `monitors-manager check`: print the report; 0 when nothing is wrong, 1 on problems, 2 when the
/// folder cannot be read.
fn run_check(args: &CheckArgs) -> ExitCode {
    let periods = match cli::periods_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("monitors-manager: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = ManagerSettings {
        periods,
        ..ManagerSettings::default()
    };
    let planners = monitor_strategies::registry(StrategySettings::default());
    let report = match (&args.config_dir, &args.config_file) {
        (_, Some(file)) => check::check_file(file, &planners),
        (Some(dir), None) => match check::check_dir(dir, &planners) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("monitors-manager: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("monitors-manager: check needs --config-dir DIR or --config-file FILE");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.render(|g| settings.period(g)));
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One line saying what runs: monitors per type (planner) with their period, and where the raw
/// data goes.
fn what_runs(status: &monitors_manager::ManagerStatus, output: &str) -> String {
    let kinds = status.by_kind();
    let total: usize = kinds.iter().map(|k| k.monitors).sum();
    let parts: Vec<String> = kinds
        .iter()
        .map(|k| {
            format!(
                "{} {} every {} s",
                k.planner,
                k.monitors,
                k.period.as_secs_f64()
            )
        })
        .collect();
    if parts.is_empty() {
        format!("running no monitors; raw data: {output}")
    } else {
        format!(
            "running {total} monitors ({}); raw data: {output}",
            parts.join(", ")
        )
    }
}

/// Log [`what_runs`] once at least `configs` config messages were handled and the manager's
/// monitors did not change for `settle`; gives up when `done` is cancelled.
async fn announce(
    status: monitors_manager::StatusHandle,
    configs: u64,
    settle: Duration,
    output: String,
    done: CancellationToken,
) {
    let step = Duration::from_millis(100);
    let mut last = None;
    let mut stable = Duration::ZERO;
    loop {
        if done
            .run_until_cancelled(tokio::time::sleep(step))
            .await
            .is_none()
        {
            return;
        }
        let now = status.status();
        let seen = (now.config_messages, now.monitors.len());
        if now.config_messages < configs {
            continue;
        }
        if last == Some(seen) {
            stable += step;
        } else {
            stable = Duration::ZERO;
            last = Some(seen);
        }
        if stable >= settle {
            tracing::info!("{}", what_runs(&now, &output));
            return;
        }
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not I/N"))?;
    let index: u32 = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a number"))?;
    let count: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!("shard `{s}`: need 0 <= I < N"));
    }
    Ok(Shard { index, count })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Check(check)) = &args.command {
        return run_check(check);
    }
    cli::init_logging();
    cli::exit_status("monitors-manager", run(args).await)
}

fn settings(args: &Args) -> Result<(ManagerSettings, StrategySettings), String> {
    let mut manager = ManagerSettings {
        max_in_flight: args.max_in_flight,
        max_in_flight_cap: args.max_in_flight_cap,
        round_budget: args.round_budget,
        shard: args.shard,
        shutdown_grace: args.shutdown_grace,
        outbox_bytes: args.outbox_bytes,
        ..ManagerSettings::default()
    };
    manager.periods = cli::periods_from_env()?;
    manager.validate()?;
    let mut strategies = StrategySettings::default()
        .with_request_timeout(args.request_timeout)
        .with_max_body_bytes(args.max_body_bytes)
        .with_verify_tls_monitored(args.verify_monitored_tls);
    strategies.connections.max_kept_hosts = args.max_kept_hosts as usize;
    // Substrate nodes are monitored endpoints too: the flag covers their `wss://` websockets.
    strategies.substrate =
        monitor_strategies::SubstrateSettings::with_ws_config(monitor_strategies::WsConfig {
            verify_tls: args.verify_monitored_tls,
            ..strategies.substrate.ws.clone()
        });
    for group in PeriodGroup::ALL {
        let t = cli::timeout_below_period(args.request_timeout, manager.period(group));
        strategies = strategies.with_group_timeout(group, t);
    }
    if let Ok(t) = std::env::var("GITHUB_RELEASES_TEMPLATE") {
        strategies.github.releases_template = t;
    }
    if let Ok(t) = std::env::var("DOCKERHUB_TAGS_TEMPLATE") {
        strategies.dockerhub.tags_template = t;
    }
    // Sent as a bearer token to GitHub, never logged; lifts the 60 requests/hour limit.
    let token = std::env::var("GITHUB_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    strategies = strategies.with_github_token(token.as_deref());
    fit_open_file_limit(&mut manager, &mut strategies);
    Ok((manager, strategies))
}

/// Raise the open-file limit to the hard limit, and where the socket bounds still do not fit
/// under it, lower them and say so (`bins::fds`).
fn fit_open_file_limit(manager: &mut ManagerSettings, strategies: &mut StrategySettings) {
    match bins::fds::raise_limit() {
        Ok(limit) => {
            if let Some(lowered) = bins::fds::fit(limit, manager, &mut strategies.connections) {
                tracing::warn!("{lowered}");
            }
        }
        Err(e) => tracing::warn!(
            error = %e,
            "could not read or raise the open-file limit; the socket bounds are left as set"
        ),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let (manager_settings, strategy_settings) = settings(&args)?;
    cli::with_signals(|shutdown| run_until(args, manager_settings, strategy_settings, shutdown))
        .await
}

/// Run the manager (embedded or on RabbitMQ) until `shutdown` or a fatal error.
async fn run_until(
    args: Args,
    manager_settings: ManagerSettings,
    strategy_settings: StrategySettings,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let planners = monitor_strategies::registry(strategy_settings);
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    if let Some(dir) = args.config_dir.clone() {
        return run_embedded(
            dir,
            args.output.clone(),
            args.format,
            metrics_listener,
            manager_settings,
            planners,
            shutdown,
        )
        .await;
    }
    let url = args
        .amqp_url
        .clone()
        .or_else(|| std::env::var("AMQP_URL").ok())
        .ok_or("give --config-dir DIR (embedded, no broker) or --amqp-url URL (or AMQP_URL)")?;
    args.amqp_tls.warn_if_insecure(&url);
    let tls = args.amqp_tls.options();
    let Some(bus) =
        cli::connect_amqp_with_tls(&url, "panic-monitors manager", &tls, &shutdown).await?
    else {
        return Ok(());
    };
    tracing::info!(url = %cli::redact_url(&url), "monitors manager running on RabbitMQ");
    // As PANIC's start-up: the store's queue exists before the first monitorables message.
    let manager_settings = ManagerSettings {
        declare_monitorable_store_queue: true,
        ..manager_settings
    };
    let configs_queue = manager_settings.configs_queue();
    // With --metrics-addr the manager publishes through a tap that keeps the latest data.
    let (manager_bus, data) = tap(bus.clone() as Arc<dyn Bus>, metrics_listener.is_some());
    let manager = MonitorsManager::new(manager_bus, planners, manager_settings);
    tracing::info!("waiting for configs on queue `{configs_queue}` (the `config` exchange)");
    let metrics_server = metrics_listener.map(|listener| {
        let b = bus.clone();
        let stalls = manager.consumer_stalls();
        let probe: Probe = Arc::new(move || BusHealth {
            connected: b.is_connected(),
            outbox: u64::try_from(b.outbox_len()).unwrap_or(u64::MAX),
            dropped: b.dropped(),
            reconnections: b.reconnections(),
            consumer_restarts: b.consumer_restarts(),
            consumer_stalls: stalls.load(std::sync::atomic::Ordering::Relaxed),
        });
        let endpoint = Endpoint {
            status: manager.status_handle(),
            probe,
            data,
        };
        MetricsServer::start(listener, endpoint, &shutdown)
    });
    let done = CancellationToken::new();
    let announced = announce(
        manager.status_handle(),
        1,
        Duration::from_secs(1),
        format!("the `raw_data` exchange on {}", cli::redact_url(&url)),
        done.clone(),
    );
    let run = async {
        let r = manager.run(shutdown).await;
        done.cancel();
        r
    };
    let (result, ()) = tokio::join!(run, announced);
    let result = result.map_err(|e| e.to_string());
    bus.close().await;
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    result
}

// Owns its tasks: the sink, the manager, the watcher and the forwarder are each awaited (the
// forwarder after an abort) before this returns.
#[allow(clippy::disallowed_methods)]
async fn run_embedded(
    dir: PathBuf,
    output: Option<PathBuf>,
    format: Format,
    metrics_listener: Option<tokio::net::TcpListener>,
    settings: ManagerSettings,
    planners: Vec<Arc<dyn monitor_core::Planner>>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    // A bad folder at start-up is an error; later bad changes are logged and skipped.
    let initial = config_dir::read_dir(&dir).map_err(|e| e.to_string())?;
    let writer: Box<dyn AsyncWrite + Send + Unpin> = match &output {
        Some(path) => Box::new(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| format!("cannot open output {}: {e}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let pretty = match format {
        Format::Pretty => true,
        Format::Json => false,
        Format::Auto => output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let (render, output_desc): (sink::Render, String) = {
        let place = output
            .as_ref()
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
        if pretty {
            (pretty::line, format!("{place} (readable lines)"))
        } else {
            (sink::line, format!("{place} (JSON lines)"))
        }
    };
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    // Declare what the manager and the sink consume before anything is published.
    let bindings: Vec<&str> = MANAGER_CONFIG_BINDINGS.to_vec();
    declare_bound_queue(
        bus.as_ref(),
        &settings.configs_queue(),
        CONFIG_EXCHANGE,
        &bindings,
    )
    .await
    .map_err(|e| e.to_string())?;
    sink::declare(bus.as_ref())
        .await
        .map_err(|e| e.to_string())?;

    let sink_stop = CancellationToken::new();
    // The output is the embedded manager's only product: when it cannot be written (disk full,
    // closed pipe) the error is logged at once and the whole process stops, rather than
    // monitoring into a queue nobody reads.
    let sink_task = tokio::spawn({
        let (bus, sink_stop, shutdown) = (bus.clone(), sink_stop.clone(), shutdown.clone());
        async move {
            let r = sink::run_rendered(bus, writer, sink_stop, render).await;
            if let Err(e) = &r {
                tracing::error!(error = %e, "raw data output failed: stopping");
                shutdown.cancel();
            }
            r
        }
    });
    let (manager_bus, data) = tap(bus.clone(), metrics_listener.is_some());
    let manager = MonitorsManager::new(manager_bus, planners, settings);
    let status = manager.status_handle();
    let metrics_server = metrics_listener.map(|listener| {
        let probe: Probe = Arc::new(|| BusHealth {
            connected: true,
            ..BusHealth::default()
        });
        let endpoint = Endpoint {
            status: manager.status_handle(),
            probe,
            data,
        };
        MetricsServer::start(listener, endpoint, &shutdown)
    });
    let manager_task = tokio::spawn(manager.run(shutdown.clone()));
    tracing::info!(dir = %dir.display(), files = initial.len(), "embedded monitors manager running");
    let configs = u64::try_from(initial.len()).unwrap_or(u64::MAX);
    for msg in initial {
        publish_config(bus.as_ref(), &msg).await;
    }
    // What runs, once the folder is applied (bounded: a manager that stopped is not waited for).
    let applied = shutdown.child_token();
    let stop_announcing = applied.clone();
    let announcing = tokio::time::timeout(
        Duration::from_secs(10),
        announce(
            status,
            configs,
            Duration::from_millis(200),
            output_desc,
            applied,
        ),
    );
    if announcing.await.is_err() {
        tracing::warn!("the config folder was not applied within 10 s");
    }
    stop_announcing.cancel();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    // The watcher stops with the process, or when the manager has stopped for another reason.
    let watch_stop = shutdown.child_token();
    let watcher = tokio::spawn(config_dir::watch(
        dir.clone(),
        Duration::from_millis(300),
        tx,
        watch_stop.clone(),
    ));
    let forward = {
        let bus = bus.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                tracing::info!(routing_key = %msg.routing_key, "config changed");
                publish_config(bus.as_ref(), &msg).await;
            }
        })
    };
    let manager_result = manager_task.await;
    watch_stop.cancel();
    // The manager has flushed its last rounds: let the sink drain, then stop.
    sink_stop.cancel();
    let sink_result = match sink_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("raw data output failed: {e}")),
        Err(e) => Err(format!("raw data output task failed: {e}")),
    };
    match watcher.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "config folder watch failed"),
        Err(e) => tracing::error!(error = %e, "config folder watch task failed"),
    }
    forward.abort();
    if let Err(e) = forward.await {
        if e.is_panic() {
            tracing::error!(error = %e, "config forwarding task panicked");
        }
    }
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    match manager_result {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(e) => return Err(format!("manager task failed: {e}")),
    }
    sink_result
}

/// The bus for the manager: with `--metrics-addr`, one that shows every raw-data publication to a
/// [`DataMetrics`] (served on /metrics) on its way.
fn tap(bus: Arc<dyn Bus>, metrics: bool) -> (Arc<dyn Bus>, Option<Arc<DataMetrics>>) {
    if !metrics {
        return (bus, None);
    }
    let data = Arc::new(DataMetrics::new());
    (Arc::new(TapBus::new(bus, data.clone())), Some(data))
}

async fn publish_config(bus: &dyn Bus, msg: &config_dir::ConfigFileMessage) {
    if let Err(e) =
        monitor_bus::publish_json(bus, CONFIG_EXCHANGE, &msg.routing_key, &msg.body).await
    {
        tracing::error!(routing_key = %msg.routing_key, error = %e, "could not hand a config to the manager");
    }
}
