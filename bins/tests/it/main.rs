//! The binaries' end-to-end tests, one test binary (`cargo test -p bins --test it`): each module
//! runs the real binaries (`CARGO_BIN_EXE_*`) against local servers, the machine's RabbitMQ (a
//! vhost per test, deleted after) and Redis (a key namespace per test, deleted after), so the
//! tests can run in parallel with each other; none stops or restarts a shared service.
//!
//! * [`embedded`]: the embedded default (`--config-dir`), hot reload, `/metrics` and `/health`;
//! * [`embedded_faults`]: an unwritable output, a deleted config folder, symlink loops;
//! * [`example`]: the embedding example (`examples/embedded.rs`) run briefly;
//! * [`stack`]: every binary together on RabbitMQ and Redis, and two shards;
//! * [`cli_errors`]: bad flags and env values, an unreachable broker until SIGTERM;
//! * [`broker_loss`]: SIGTERM while the broker refuses the services (in the test's own vhost);
//! * [`config_restore`]: configs kept in the config stream across a SIGKILL and for late shards;
//! * [`operators`]: the first round soon after start, the start-up line, `--format pretty`, and
//!   `check` on good and broken config folders;
//! * [`tls`]: every binary on `amqps://` and `rediss://` (a TLS RabbitMQ node and a TLS Redis of
//!   the test's own), the wrong CA, a missing client certificate, no verification;
//! * [`common`]: the helpers they share.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// test code: a failed unwrap is a failed test
// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]

mod broker_loss;
mod cli_errors;
mod common;
mod config_restore;
mod embedded;
mod embedded_faults;
mod example;
mod operators;
mod prometheus;
mod stack;
mod substrate;
mod tls;
