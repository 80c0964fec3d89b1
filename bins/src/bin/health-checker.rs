//! `health-checker`: PANIC's health checker: pings every component on `health_check` and stores
//! every heartbeat verbatim in Redis at `<namespace>:c1_<component_name>`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bins::cli;
use clap::Parser;
use heartbeat::health_checker::{
    run_health_checker, HealthCheckerSettings, RedisHeartbeatSink, SinkError,
};
use tokio_util::sync::CancellationToken;

/// Ping publisher and heartbeat handler.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The broker URL. Env: AMQP_URL.
    #[arg(long, value_name = "URL", env = "AMQP_URL")]
    amqp_url: String,

    #[command(flatten)]
    amqp_tls: bins::tls::AmqpTlsArgs,

    /// The Redis URL. Env: REDIS_URL.
    #[arg(
        long,
        value_name = "URL",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    redis_url: String,

    #[command(flatten)]
    redis_tls: bins::tls::RedisTlsArgs,

    /// The Redis key namespace (PANIC's UNIQUE_ALERTER_IDENTIFIER).
    #[arg(
        long,
        value_name = "NS",
        env = "UNIQUE_ALERTER_IDENTIFIER",
        default_value = "panic_alerter"
    )]
    namespace: String,

    /// Time between pings.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = cli::parse_duration)]
    ping_interval: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    cli::exit_status("health-checker", run(args).await)
}

async fn run(args: Args) -> Result<(), String> {
    if args.ping_interval.is_zero() {
        return Err("--ping-interval must be positive".to_owned());
    }
    args.amqp_tls.warn_if_insecure(&args.amqp_url);
    args.redis_tls.warn_if_insecure(&args.redis_url);
    let sink = RedisHeartbeatSink::open_with_tls(
        &args.redis_url,
        &args.namespace,
        &args.redis_tls.options(),
    )
    .map_err(|e| e.to_string())?;
    if args.redis_url.starts_with("rediss:") {
        // A certificate that does not verify is a mistake to report at once; Redis being away is
        // not (the sink connects when it comes).
        match sink.ping().await {
            Err(SinkError::Tls(e)) => return Err(format!("{e} ({})", bins::tls::REDIS_TLS_HINT)),
            Err(e) => {
                tracing::warn!(error = %e, "Redis is not answering yet; retrying as heartbeats come")
            }
            Ok(()) => {}
        }
    }
    cli::with_signals(|shutdown| check_health(args, sink, shutdown)).await
}

/// Connect, run the health checker until `shutdown`, close the connection.
async fn check_health(
    args: Args,
    sink: RedisHeartbeatSink,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let tls = args.amqp_tls.options();
    let Some(bus) = cli::connect_amqp_with_tls(
        &args.amqp_url,
        "panic-monitors health checker",
        &tls,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let settings = HealthCheckerSettings {
        ping_interval: args.ping_interval,
        ..HealthCheckerSettings::default()
    };
    let r = run_health_checker(bus.clone(), Arc::new(sink), settings, shutdown)
        .await
        .map_err(|e| e.to_string());
    bus.close().await;
    r
}
