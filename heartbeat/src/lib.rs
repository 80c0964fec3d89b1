//! `heartbeat`: manager and worker heartbeats, and (in `health_checker`) the health checker that
//! pings components and stores their heartbeats in Redis.
//!
//! # Layout
//!
//! * [`liveness`]: the bookkeeping behind a manager heartbeat. A [`Liveness`] registry holds one
//!   entry per supervised monitor (state, last finished round, deaths not yet reported, round
//!   counts) and answers "which monitors run, which are dead" ([`Liveness::heartbeat`]), "is this
//!   one hung" ([`Liveness::hung_deadline`]) and "what is the status of everything"
//!   ([`Liveness::snapshot`]). It knows nothing of the bus or of how monitors are run.
//! * [`publish`]: publishing worker heartbeats (`heartbeat.worker`, after each successful round) and
//!   manager heartbeats (`heartbeat.manager`, in reply to a ping) on `health_check`; an unroutable
//!   heartbeat is not an error (in the embedded mode nothing listens).

pub mod health_checker;
pub mod liveness;
pub mod publish;

pub use liveness::{Liveness, StateCounts, TaskKey, TaskState, TaskStatus};
pub use publish::{publish_manager_heartbeat, publish_worker_heartbeat, Published};
