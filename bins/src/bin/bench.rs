//! `bench`: the benchmark harness of issue #8 (processes vs threads vs tasks vs a bounded queue,
//! up to 10,000 monitorables). `bench --help` lists the subcommands; `docs/BENCHMARKS.md` has the
//! results and the commands that produced them.
//!
//! ```text
//! cargo build --release -p bins --bin bench
//! $CARGO_TARGET_DIR/release/bench suite --out-dir docs/bench
//! ```

#[path = "../bench/mod.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    bench::cli::main()
}
