//! The integration tests of `monitor-bus`, one binary: the conformance suite run on both buses, the
//! RabbitMQ-only behaviour, and the fault tests that force-close connections in a vhost of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod amqp_bus;
mod amqp_fault;
mod common;
mod conformance;
