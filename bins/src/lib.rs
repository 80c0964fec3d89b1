//! `bins`: the thin binaries of panic-monitors. Only they read env and flags, install tracing and
//! own the shutdown signal.

pub mod check;
pub mod cli;
pub mod config_dir;
pub mod data_metrics;
pub mod fds;
pub mod metrics;
pub mod pretty;
pub mod sink;
pub mod tls;
