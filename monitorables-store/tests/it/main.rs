//! The store's tests that may run alongside others, in one binary:
//!
//! * `conformance`: one suite for every `MonitorablesStore` (memory and real Redis);
//! * `service`: the store service on the in-memory bus (paused time with `MemoryStore`; real time,
//!   waiting for conditions with a deadline, with `RedisStore`);
//! * `amqp`: store services on the real RabbitMQ (a private vhost).
//!
//! `tests/redis_restart.rs` is a second binary because it restarts the machine's Redis and must run
//! alone (cargo runs test binaries one after another).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]

mod common;

mod amqp;
mod conformance;
mod service;
mod tls;
