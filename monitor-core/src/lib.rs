//! `monitor-core`: the shared vocabulary of panic-monitors.
//!
//! Everything PANIC's wire contract fixes lives here, so that strategies, the manager, the stores and
//! the binaries agree on it:
//!
//! * [`keys`]: exchange names, raw-data, health and monitorable routing keys, config keys parsed into
//!   (base chain, sub chain, config type) and built back, and topic matching;
//! * [`config`]: config messages `{id: {field: string}}` with PANIC's string booleans and lists;
//! * [`errors`]: PANIC's error codes 5000–5034 with their message templates;
//! * [`envelope`]: result/error envelopes, heartbeat and monitorable messages;
//! * [`monitor`]: the [`Monitor`] strategy trait (one round, state in `&mut self`);
//! * [`plan`]: [`plan::Planner`]s turn config messages into [`plan::MonitorSpec`]s the manager runs;
//! * [`redact`]: [`redact_url`] and [`redact_urls`], which keep passwords out of logs and errors.
//!
//! It knows no transport: the bus is `monitor-bus`, which strategies never depend on.

pub mod config;
pub mod envelope;
pub mod errors;
pub mod keys;
pub mod monitor;
pub mod plan;
pub mod redact;

pub use config::{ConfigError, ConfigMessage, RawConfig, RawSection, Section};
pub use envelope::{MetaData, WorkerHeartbeat};
pub use errors::{ErrorCode, PanicError};
pub use keys::{ConfigKey, ConfigType, MonitorableKey, MonitorableType, RawDataKey};
pub use monitor::{Monitor, Publication, RoundError};
pub use plan::{MonitorSpec, PeriodGroup, Plan, Planner, SectionPlanner};
pub use redact::{redact_url, redact_urls};
