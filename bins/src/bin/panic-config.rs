//! `panic-config`: publishes a PANIC config folder to the `config` exchange, as PANIC's (legacy)
//! config manager did, and with `--watch` keeps doing so on every change.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bins::{cli, config_dir};
use clap::Parser;
use monitor_bus::Bus;
use monitor_bus::{declare_bound_queue, publish_json};
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS};
use monitors_manager::{configs_queue_name, Shard};
use tokio_util::sync::CancellationToken;

/// Publish PANIC's config folder to RabbitMQ's `config` exchange (persistent, confirmed).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The broker URL. Env: AMQP_URL.
    #[arg(long, value_name = "URL", env = "AMQP_URL")]
    amqp_url: String,

    #[command(flatten)]
    amqp_tls: bins::tls::AmqpTlsArgs,

    /// The config folder (general/systems_config.ini, chains/<base>/<sub>/nodes_config.ini, …).
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,

    /// Keep running and publish every created, changed or deleted file (deleted: `{}`).
    #[arg(long)]
    watch: bool,

    /// Do not declare the monitors manager's config queue. By default it is declared (durable,
    /// bound to every config key) so configs published before the manager starts are kept, as
    /// PANIC's start-up did.
    #[arg(long)]
    no_declare_manager_queue: bool,

    /// The managers run sharded (`monitors-manager --shard i/N`): declare the config queue of each
    /// of the N shards instead of the unsharded one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: Option<u32>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    cli::exit_status("panic-config", run(args).await)
}

async fn run(args: Args) -> Result<(), String> {
    args.amqp_tls.warn_if_insecure(&args.amqp_url);
    let initial = config_dir::read_dir(&args.config_dir).map_err(|e| e.to_string())?;
    cli::with_signals(|shutdown| publish_folder(args, initial, shutdown)).await
}

/// Connect, declare, publish the folder (and with `--watch` every change until `shutdown`), close
/// the connection.
async fn publish_folder(
    args: Args,
    initial: Vec<config_dir::ConfigFileMessage>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let tls = args.amqp_tls.options();
    let Some(bus) =
        cli::connect_amqp_with_tls(&args.amqp_url, "panic-config", &tls, &shutdown).await?
    else {
        return Ok(());
    };
    bus.declare_exchange(CONFIG_EXCHANGE)
        .await
        .map_err(|e| e.to_string())?;
    if !args.no_declare_manager_queue {
        let queues: Vec<String> = match args.shards {
            None => vec![configs_queue_name(None, "")],
            Some(count) => (0..count)
                .map(|index| configs_queue_name(Some(Shard { index, count }), ""))
                .collect(),
        };
        for queue in queues {
            declare_bound_queue(
                bus.as_ref(),
                &queue,
                CONFIG_EXCHANGE,
                &MANAGER_CONFIG_BINDINGS,
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    let mut failures = 0usize;
    for msg in &initial {
        if !publish(bus.as_ref(), msg).await {
            failures += 1;
        }
    }
    tracing::info!(
        published = initial.len() - failures,
        failed = failures,
        "config folder published"
    );
    if args.watch {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        // Owned: awaited below once the channel closes.
        #[allow(clippy::disallowed_methods)]
        let watcher = tokio::spawn(config_dir::watch(
            args.config_dir.clone(),
            Duration::from_millis(300),
            tx,
            shutdown.clone(),
        ));
        while let Some(msg) = rx.recv().await {
            publish(bus.as_ref(), &msg).await;
        }
        match watcher.await {
            Ok(r) => r.map_err(|e| e.to_string())?,
            Err(e) => return Err(format!("watch task failed: {e}")),
        }
    }
    bus.close().await;
    if failures > 0 {
        return Err(format!("{failures} config file(s) could not be published"));
    }
    Ok(())
}

async fn publish(bus: &dyn Bus, msg: &config_dir::ConfigFileMessage) -> bool {
    match publish_json(bus, CONFIG_EXCHANGE, &msg.routing_key, &msg.body).await {
        Ok(()) => {
            tracing::info!(routing_key = %msg.routing_key, "config published");
            true
        }
        Err(e) => {
            tracing::error!(routing_key = %msg.routing_key, error = %e, "config not published");
            false
        }
    }
}
