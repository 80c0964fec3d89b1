//! The health checker on the in-memory bus, in one test binary:
//!
//! * `memory`: with memory sinks, on paused time (they only wait for time to pass);
//! * `redis_sink` (feature `redis`): storing into the machine's real Redis (a unique namespace per
//!   test, deleted at the end), on real time, waiting for conditions with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod memory;
#[cfg(feature = "redis")]
mod redis_sink;
