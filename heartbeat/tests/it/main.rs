//! The health checker on the in-memory bus, in one test binary:
//!
//! * `memory`: with memory sinks, on paused time (they only wait for time to pass);
//! * `redis_sink` (feature `redis`): storing into the machine's real Redis (a unique namespace per
//!   test, deleted at the end), on real time, waiting for conditions with a deadline;
//! * `amqp_outage` (feature `redis`): the health checker on the real RabbitMQ (a vhost of its own)
//!   under a load of heartbeats while its connection is force-closed and refused: the `c1_` keys
//!   keep moving, and shutdown returns mid-outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]

#[cfg(feature = "redis")]
mod amqp_outage;
mod helpers;
mod memory;
#[cfg(feature = "redis")]
mod redis_sink;
#[cfg(feature = "redis")]
mod tls;
