//! Embedding the monitors manager in a host service: the host owns the tokio runtime and its own
//! shutdown token; the manager runs on an in-memory bus inside it, is given one system to monitor
//! by a config message on the `config` exchange (as PANIC's config manager would publish it), and
//! the host reads the raw data from a queue of its own bound on `raw_data`.
//!
//! ```text
//! cargo run -p bins --example embedded -- [--seconds N] [--exporter-url URL]
//! ```
//!
//! It prints one line per raw-data message (`<routing key> <body>`) until ctrl-c or, with
//! `--seconds N`, for N seconds. The system is polled every 2 s at `--exporter-url` (default
//! `http://127.0.0.1:9100/metrics`, a local node_exporter); with none running it prints PANIC's
//! error envelope (`"code": 5004`, system unreachable) every period.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use monitor_bus::{declare_bound_queue, publish_json, Bus, MemoryBus};
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS, RAW_DATA_EXCHANGE};
use monitor_core::PeriodGroup;
use monitor_strategies::{registry, StrategySettings};
use monitors_manager::{ManagerSettings, MonitorsManager};
use tokio_util::sync::CancellationToken;

/// How often the example's system is polled.
const PERIOD: Duration = Duration::from_secs(2);

/// The host's queue for raw data, bound to every key of `raw_data`.
const RAW_DATA_QUEUE: &str = "host_raw_data";

/// What can stop the example.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Run a manager for one system at `exporter_url` on an in-memory bus until `shutdown`, handing
/// every raw-data message (routing key, body) to `on_raw_data`. Returns once the manager has
/// stopped (rounds in flight finished).
pub(crate) async fn run(
    exporter_url: &str,
    shutdown: CancellationToken,
    mut on_raw_data: impl FnMut(&str, &[u8]),
) -> Result<(), Error> {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let settings = ManagerSettings {
        periods: [(PeriodGroup::System, PERIOD)].into_iter().collect(),
        ..ManagerSettings::default()
    };
    // Requests always end before the next round is due.
    let strategies =
        StrategySettings::default().with_group_timeout(PeriodGroup::System, PERIOD / 2);

    // Declare the manager's config queue and the host's raw-data queue before anything is
    // published, so that nothing is unroutable.
    let config_queue = settings.configs_queue();
    declare_bound_queue(
        bus.as_ref(),
        &config_queue,
        CONFIG_EXCHANGE,
        &MANAGER_CONFIG_BINDINGS,
    )
    .await?;
    declare_bound_queue(bus.as_ref(), RAW_DATA_QUEUE, RAW_DATA_EXCHANGE, &["#"]).await?;
    let mut raw_data = bus.consume(RAW_DATA_QUEUE, 16).await?;

    // One system, as PANIC's config manager publishes `general/systems_config.ini`.
    let config = serde_json::json!({
        "system_1": {
            "id": "system_1",
            "parent_id": "GENERAL",
            "name": "example system",
            "exporter_url": exporter_url,
            "monitor_system": "true",
        }
    });
    publish_json(
        bus.as_ref(),
        CONFIG_EXCHANGE,
        "general.systems_config",
        &config,
    )
    .await?;

    let manager = MonitorsManager::new(Arc::clone(&bus), registry(strategies), settings);
    let read_raw_data = async {
        while let Some(Some(delivery)) = shutdown.run_until_cancelled(raw_data.next()).await {
            on_raw_data(&delivery.routing_key, &delivery.body);
            delivery.ack().await?;
        }
        Ok::<(), Error>(())
    };
    let (managed, read) = tokio::join!(manager.run(shutdown.clone()), read_raw_data);
    managed?;
    read
}

/// `--seconds N` and `--exporter-url URL`.
fn parse_args() -> Result<(Option<Duration>, String), String> {
    let mut seconds = None;
    let mut url = "http://127.0.0.1:9100/metrics".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = args.next().ok_or("--seconds needs a number")?;
                let n: u64 = n
                    .parse()
                    .map_err(|_| format!("--seconds {n}: not a number"))?;
                seconds = Some(Duration::from_secs(n));
            }
            "--exporter-url" => url = args.next().ok_or("--exporter-url needs a URL")?,
            other => {
                return Err(format!(
                    "unknown argument {other} (--seconds N, --exporter-url URL)"
                ))
            }
        }
    }
    Ok((seconds, url))
}

fn main() -> ExitCode {
    let (seconds, url) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("embedded: {e}");
            return ExitCode::from(2);
        }
    };
    // The host's own runtime and its own shutdown.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("embedded: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let host_stops = async {
            match seconds {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        () = tokio::time::sleep(d) => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        let work = run(&url, shutdown.clone(), |key, body| {
            println!("{key} {}", String::from_utf8_lossy(body));
        });
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            () = host_stops => {
                shutdown.cancel();
                work.await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded: {e}");
            ExitCode::FAILURE
        }
    }
}
