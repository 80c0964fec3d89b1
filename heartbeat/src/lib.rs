//! `heartbeat`: PANIC's heartbeat messages, and the health checker that pings components and keeps
//! their heartbeats.
//!
//! # Layout
//!
//! * [`publish`]: building and publishing worker heartbeats (`heartbeat.worker`, after each
//!   successful round of a monitor or write of the store) and manager heartbeats
//!   (`heartbeat.manager`, in reply to a ping) on `health_check`; an unroutable heartbeat is not an
//!   error (in the embedded mode nothing listens). The monitors manager and the monitorables store
//!   both publish through it.
//! * [`health_checker`]: the ping publisher and the heartbeat handler, writing to a
//!   [`health_checker::HeartbeatSink`]: in memory, or (feature `redis`, on by default) PANIC's
//!   `c1_` keys in Redis with [`health_checker::RedisHeartbeatSink`].
//!
//! * [`redis_connection`] (feature `redis`): how the workspace opens Redis (plain or `rediss://`),
//!   shared by the sink and the monitorables store.
//!
//! The manager depends on this crate without default features, so it does not compile Redis.

pub mod health_checker;
pub mod publish;
#[cfg(feature = "redis")]
pub mod redis_connection;

pub use publish::{
    manager_heartbeat, publish_manager_heartbeat, publish_worker_heartbeat, worker_heartbeat,
    Published,
};
