//! Manager behaviour on the in-memory bus with paused time, driven by fake planners and strategies,
//! and once end to end on the real RabbitMQ (`amqp`).

// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]
#[cfg(test)]
mod harness;

#[cfg(test)]
mod amqp;
#[cfg(test)]
mod broker_outage;
#[cfg(test)]
mod configs;
#[cfg(test)]
mod heartbeats;
#[cfg(test)]
mod incremental;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod logs;
#[cfg(test)]
mod outage;
#[cfg(test)]
mod scheduling;
#[cfg(test)]
mod slow_lane;
#[cfg(test)]
mod supervision;
