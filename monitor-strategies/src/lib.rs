//! `monitor-strategies`: one strategy per PANIC monitor type, each turning a validated config into a
//! [`monitor_core::Monitor`]. Strategies know nothing of RabbitMQ, Redis or the manager.
//!
//! # Layout
//!
//! * [`settings`]: [`StrategySettings`], shared by every strategy (HTTP clients, timeouts, body cap,
//!   URL templates); built by the binaries, the library reads no env;
//! * [`http`]: the one HTTP layer (timeout, size-capped body, PANIC's transport error classes);
//! * [`prometheus`]: Prometheus text parsing and PANIC's metric query;
//! * [`system`]: the System monitor (node_exporter, spec §4.1);
//! * [`planners`]: the [`monitor_core::Planner`]s and [`registry`], everything the manager runs;
//! * `testing` (feature `testing`): a local HTTP server for strategy tests.

pub mod http;
pub mod planners;
pub mod prometheus;
pub mod settings;
pub mod system;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use http::{Http, HttpError, HttpErrorKind, HttpResponse};
pub use planners::{registry, SystemsPlanner};
pub use settings::{StrategySettings, Target};
pub use system::{SystemConfig, SystemMonitor};
