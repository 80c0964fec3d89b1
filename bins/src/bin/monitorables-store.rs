//! `monitorables-store`: merges the managers' monitorable lists into Redis for PANIC's API
//! (`<namespace>:monitorables:<base_chain>`), or shows what is stored.

use std::process::ExitCode;
use std::sync::Arc;

use bins::cli;
use clap::{Parser, Subcommand};
use monitorables_store::{
    run_store_service, show, MonitorablesStore, RedisStore, StoreServiceSettings, DEFAULT_NAMESPACE,
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

    /// The Redis key namespace (PANIC's UNIQUE_ALERTER_IDENTIFIER).
    #[arg(long, global = true, value_name = "NS", env = "UNIQUE_ALERTER_IDENTIFIER", default_value = DEFAULT_NAMESPACE)]
    namespace: String,

    /// The broker URL (for the service). Env: AMQP_URL.
    #[arg(long, value_name = "URL", env = "AMQP_URL")]
    amqp_url: Option<String>,

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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitorables-store: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let store = RedisStore::open(&args.redis_url, &args.namespace).map_err(|e| e.to_string())?;
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
            cli::with_signals(|shutdown| serve(url, store, shutdown)).await
        }
    }
}

/// Connect, run the store service until `shutdown`, close the connection.
async fn serve(url: String, store: RedisStore, shutdown: CancellationToken) -> Result<(), String> {
    let Some(bus) = cli::connect_amqp(&url, "panic-monitors store", &shutdown).await? else {
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
