//! The integration tests of `monitor-bus`, one binary: the conformance suite run on both buses, the
//! RabbitMQ-only behaviour, and the fault tests that force-close connections in a vhost of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]

mod amqp_bus;
mod amqp_fault;
mod common;
mod conformance;
mod tls;
