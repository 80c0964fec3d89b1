//! `bench`: the benchmark harness of issue #8 (processes vs threads vs tasks vs a bounded queue,
//! up to 10,000 monitorables). `bench --help` lists the subcommands; `docs/BENCHMARKS.md` has the
//! results and the commands that produced them.
//!
//! ```text
//! cargo build --release -p bench
//! $CARGO_TARGET_DIR/release/bench suite --out-dir docs/bench
//! ```
//!
//! It is a crate of its own so that the product binaries (`bins`) carry none of its dependencies
//! (`hdrhistogram`, `plotters`); it drives the real `MonitorsManager` and takes the manager's tick
//! phases from [`monitors_manager::phase`].
//!
//! What it measures: the same monitoring work (GET a node_exporter-like
//! endpoint over loopback, parse, build the envelope, publish) run by one OS process per
//! monitorable, one OS thread per monitorable, our `MonitorsManager` (one tokio task per
//! monitorable), a bounded work queue with W workers, and a bare tokio loop, at several sizes,
//! measuring memory, CPU, throughput and schedule lateness. See `docs/BENCHMARKS.md`.
//!
//! * [`suite`]: the orchestrator (`bench suite`): starts the exporter stand-in, checks its
//!   capacity, runs every (approach, size, bus) in a fresh `bench run` process, writes
//!   `results.json`, `results.md` and `plot.svg`;
//! * [`run`]: one measured run, and the worker processes of the processes approach;
//! * [`approaches`]: the five ways of running the monitors;
//! * [`server`]: the exporter stand-in and its load check;
//! * [`sink`]: the bus rounds publish to, and its drains;
//! * [`record`]: lateness histogram, counters, windows and tick grids;
//! * [`proc`]: `/proc` readers;
//! * [`report`]: the Markdown table and the SVG plot;
//! * [`compare`]: `bench prometheus-compare`, the release manager beside Prometheus (#14);
//! * [`scale`]: `bench evm-scale`, 100,000 EVM node monitors in one manager (#14);
//! * [`react`]: `bench react`, starting 10,000 monitors from one message and changing one section;
//! * [`children`]: the child processes those side-by-sides own;
//! * [`floor`]: one system round in-process for callgrind (`bench callgrind-round`).

mod approaches;
mod children;
mod cli;
mod compare;
mod fetch;
mod floor;
mod proc;
mod react;
mod record;
mod report;
mod run;
mod scale;
mod server;
mod sink;
mod suite;

use monitor_bus::BusError;

/// What can stop the harness.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// Bad flags or inputs.
    #[error("{0}")]
    Usage(String),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// Setting up or running an approach failed.
    #[error("{0}")]
    Setup(String),
}

impl BenchError {
    /// An I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}

fn main() -> std::process::ExitCode {
    cli::main()
}
