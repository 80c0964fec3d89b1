//! `monitorables-store`: merges the managers' monitorable lists into Redis for PANIC's API
//! (`<namespace>:monitorables:<base_chain>`), or shows what is stored.

use std::process::ExitCode;
use std::sync::Arc;

use bins::cli;
use clap::{Parser, Subcommand};
use monitor_bus::TlsOptions;
use monitorables_store::{
    run_store_service, show, MonitorablesStore, RedisStore, StoreError, StoreServiceSettings,
    DEFAULT_NAMESPACE,
};
use tokio_util::sync::CancellationToken;

/// PANIC's monitorable store on Redis.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = false)]
struct Args {
    /// The Redis URL. Env: REDIS_URL.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    redis_url: String,

    #[command(flatten)]
    redis_tls: bins::tls::RedisTlsArgs,

    /// The Redis key namespace (PANIC's UNIQUE_ALERTER_IDENTIFIER).
    #[arg(long, global = true, value_name = "NS", env = "UNIQUE_ALERTER_IDENTIFIER", default_value = DEFAULT_NAMESPACE)]
    namespace: String,

    /// The broker URL (for the service). Env: AMQP_URL.
    #[arg(long, value_name = "URL", env = "AMQP_URL")]
    amqp_url: Option<String>,

    #[command(flatten)]
    amqp_tls: bins::tls::AmqpTlsArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the store service (the default).
    Run,
    /// Print what is monitored, for people.
    Show {
        /// Only this base chain (general, cosmos, substrate, chainlink).
        #[arg(long, value_name = "B")]
        base_chain: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    cli::exit_status("monitorables-store", run(args).await)
}

async fn run(args: Args) -> Result<(), String> {
    args.redis_tls.warn_if_insecure(&args.redis_url);
    if let Some(url) = &args.amqp_url {
        args.amqp_tls.warn_if_insecure(url);
    }
    let store =
        RedisStore::open_with_tls(&args.redis_url, &args.namespace, &args.redis_tls.options())
            .map_err(|e| e.to_string())?;
    if args.redis_url.starts_with("rediss:") {
        // A certificate that does not verify is a mistake to report at once; Redis being away is
        // not (the store connects when it comes).
        match store.ping().await {
            Err(StoreError::Tls(e)) => return Err(format!("{e} ({})", bins::tls::REDIS_TLS_HINT)),
            Err(e) => tracing::warn!(error = %e, "Redis is not answering yet; retrying"),
            Ok(()) => {}
        }
    }
    match args.command {
        Some(Command::Show { base_chain }) => {
            let text = show(&store, base_chain.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            print!("{text}");
            Ok(())
        }
        None | Some(Command::Run) => {
            let url = args
                .amqp_url
                .ok_or("give --amqp-url URL (or AMQP_URL) to run the store")?;
            let tls = args.amqp_tls.options();
            cli::with_signals(|shutdown| serve(url, tls, store, shutdown)).await
        }
    }
}

/// Connect, run the store service until `shutdown`, close the connection.
async fn serve(
    url: String,
    tls: TlsOptions,
    store: RedisStore,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let Some(bus) =
        cli::connect_amqp_with_tls(&url, "panic-monitors store", &tls, &shutdown).await?
    else {
        return Ok(());
    };
    let store: Arc<dyn MonitorablesStore> = Arc::new(store);
    let r = run_store_service(
        bus.clone(),
        store,
        StoreServiceSettings::default(),
        shutdown,
    )
    .await
    .map_err(|e| e.to_string());
    bus.close().await;
    r
}
