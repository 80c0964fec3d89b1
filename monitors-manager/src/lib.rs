//! `monitors-manager`: the MonitorsManager. It consumes config messages, asks its planners what to
//! run for each, diffs that against what runs, and supervises one task per monitor; it knows
//! nothing of any one chain.
//!
//! ```text
//! MonitorsManager::new(bus, planners, settings).run(shutdown).await
//! ```
//!
//! # Behaviour
//!
//! * **Topology.** Declares the `config`, `raw_data`, `health_check` and `monitorable` exchanges;
//!   consumes `monitors_manager_configs_queue` (bound to every key of
//!   [`monitor_core::keys::MANAGER_CONFIG_BINDINGS`], manual ack, prefetch
//!   [`ManagerSettings::config_prefetch`]) and `monitors_manager_heartbeat_queue` (bound to `ping`
//!   on `health_check`); [`ManagerSettings::queue_suffix`] is appended to both names.
//! * **Configs.** Each message is parsed ([`monitor_core::ConfigMessage::parse`]); for every planner
//!   that accepts its key the plan is diffed against the specs running for (routing key, planner)
//!   by spec id: new → start, missing → stop, fingerprint changed → restart; `{}` plans nothing and
//!   so stops everything under the key. Bad JSON, unknown keys, rejected sections and plan errors
//!   are logged with the routing key (and section id) and disturb nothing else. Then, for the key's
//!   base chain and every monitorable type of the accepting planners, a `MonitorableMessage`
//!   listing every source of that base chain and type of *all* running specs is published to
//!   `monitorable` (`<base_chain>.<type>`; unroutable is logged at debug). The message is acked in
//!   every case.
//! * **Monitors.** One supervised task per spec (see `supervisor`): build (failures retried with
//!   capped jittered backoff, reported dead meanwhile), fixed-rate rounds on a per-monitor phase
//!   (hash of component name and id modulo a window that grows with the monitor's period group,
//!   from 1 s for a handful to `min(period, max_phase_spread)` for thousands: see `schedule`), missed ticks skipped (a round never overlaps itself), at most
//!   a bound of polls in flight across all healthy monitors that grows with their rate of rounds
//!   (from [`ManagerSettings::max_in_flight`] up to [`ManagerSettings::max_in_flight_cap`], sized
//!   by [`ManagerSettings::round_budget`]: see `inflight`) (publishing
//!   holds no permit; slow monitors use the slow lane, below), each round under a
//!   timeout equal to its period. **Strategies must keep their own request timeouts below the
//!   period**, so that a slow target gives an error envelope rather than a cut-off round. A
//!   panicking round is a death: the monitor is rebuilt after a backoff. A monitor with no
//!   finished round for `hung_periods × period + timeout` is hung: it is aborted and restarted at
//!   once.
//! * **The slow lane.** Targets that do not answer must not hold the permits healthy monitors
//!   need. A round is *slow* when it runs longer than [`ManagerSettings::slow_round_percent`] of
//!   its timeout (default 10 %: 1 s at a 10 s period). A monitor whose last round was slow or
//!   timed out is in the slow lane: its rounds take a permit of a separate, smaller pool
//!   ([`ManagerSettings::slow_in_flight`], default 64) and keep their full timeout, until a round
//!   finishes within the threshold again (then it is back in the main pool). A main-pool round
//!   still running at the threshold leaves the main pool at once: it moves to a free slow-lane
//!   permit, or, if the slow lane is full, is cut off (counted in
//!   [`ManagerStatus::rounds_cut_off`] and as timed out); the monitor's next rounds wait for the
//!   slow lane. So a main permit is never held longer than the threshold, healthy rounds start
//!   on their tick even beside 1,000 unanswered targets, and at most the main pool's bound (at
//!   most `max_in_flight_cap`) plus `slow_in_flight` rounds are in flight. The cost: a monitor whose rounds are legitimately slow
//!   (over 10 % of its period) shares the slow lane with the unanswered ones. Waiting for a
//!   permit does not count towards being hung. [`ManagerStatus::slow_monitors`] counts the slow
//!   lane.
//! * **Publishing: the outbox.** A round never waits for the broker. It hands its publications
//!   (to `raw_data`, in order, then the worker heartbeat) to the manager's outbox, a FIFO bounded
//!   in bytes ([`ManagerSettings::outbox_bytes`]), and goes on; one publisher task owned by the
//!   manager drains it into the bus in order (several rounds at once, never two of one monitor).
//!   So a broker outage costs no monitor (waiting for the broker is not hung, rounds keep
//!   polling), and what they produce is delivered when the broker returns. When the outbox is full
//!   the oldest rounds are dropped, counted ([`ManagerStatus::outbox_dropped`]) and logged
//!   (rate-limited). An unroutable message (nothing bound) is counted
//!   ([`ManagerStatus::publishes_unroutable`]) and is not an error: the rest of the round and its
//!   heartbeat are still published; any other failed publish (a nack, a broker error) skips the
//!   rest of that round and its heartbeat.
//! * **Pings.** Each ping is acked and answered on `heartbeat.manager` with the running monitors and
//!   the dead ones (each death once, failing builds while they fail).
//! * **Shutdown.** When the token is cancelled: consumption stops, no new round starts, rounds in
//!   flight finish within [`ManagerSettings::shutdown_grace`] (the rest is aborted), the outbox is
//!   flushed within what is left of it (what is still there is counted in
//!   [`ManagerStatus::outbox_lost_at_shutdown`] and logged), and `run` returns `Ok`.
//! * **Sharding.** With [`ManagerSettings::shard`] `i/N`, only specs whose stable hash of (routing
//!   key, spec id) is `i` modulo `N` run; the manager name gets ` (shard i/N)`, and its config and
//!   ping queues get `_shard_i_of_N` so that every shard sees every config message and every ping.
//!
//! # Layout
//!
//! * `manager`: [`MonitorsManager`] and its main loop (one `select!` over an event enum), config
//!   diffing and monitorables;
//! * `supervisor`: the per-monitor supervisor and incarnation (build, schedule, round, hand to the
//!   outbox);
//! * `inflight`: the main pool of round permits, its bound sized by the monitors' rate of rounds;
//! * `publisher`: the byte-bounded outbox and the publisher task draining it;
//!   a hung incarnation is aborted and awaited by a tracker the manager owns, never detached;
//! * `liveness`: the supervisor's bookkeeping, beside it: per-monitor state, hang clock, the
//!   manager heartbeat's running/dead lists, and every round/death/build-failure count (kept once
//!   there; [`StatusHandle`] reads them). Heartbeat messages are built and published by the
//!   `heartbeat` crate, which the manager uses without its Redis feature;
//! * `schedule`: phases and the tick grid;
//! * [`settings`] — [`ManagerSettings`];
//! * [`status`] — [`ManagerStatus`] and [`StatusHandle`].

mod inflight;
mod liveness;
mod manager;
mod publisher;
mod schedule;
pub mod settings;
pub mod status;
mod supervisor;

pub use manager::{ManagerError, MonitorsManager};
pub use schedule::phase;
pub use settings::{
    configs_queue_name, shard_suffix, Backoff, ManagerSettings, Shard, DEFAULT_MANAGER_NAME,
    DEFAULT_MAX_CONFIG_BYTES, DEFAULT_MAX_IN_FLIGHT_CAP, DEFAULT_OUTBOX_BYTES,
};
pub use status::{
    KindCount, ManagerStatus, StateCounts, StatusHandle, TaskKey, TaskState, TaskStatus,
};
