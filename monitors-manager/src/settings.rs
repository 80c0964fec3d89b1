//! The manager's settings (built by the binary from flags and PANIC's environment variables).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use monitor_core::PeriodGroup;

/// Capped exponential backoff with jitter, for restarts and build retries (the workspace's one
/// backoff: attempt `n` waits `min(max, initial * 2^n)`, scaled by a random factor in
/// `[1 - jitter, 1]`; the default is 1 s doubling up to 60 s with jitter 0.5).
pub use monitor_bus::backoff::Backoff;

/// PANIC's name for the monitors manager in heartbeats and monitorable messages.
pub const DEFAULT_MANAGER_NAME: &str = "Monitors Manager";

/// One shard of a sharded deployment: this manager runs only the specs whose
/// `hash(routing key, spec id) % count == index`.
///
/// The hash is [`monitor_core::plan::fingerprint`] (stable across runs and machines) of the routing
/// key and the spec id only, never of the spec's fingerprint, so a config change never moves a
/// monitor to another shard. Each shard should consume its own config queue (see
/// [`ManagerSettings::queue_suffix`]) bound to the same keys, so every shard sees every message; its
/// manager name carries ` (shard i/N)` so that the monitorable store keeps the shards' lists apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This manager's shard, `0..count`.
    pub index: u32,
    /// Number of shards, at least 1.
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Everything the manager can be told.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// Name in manager heartbeats and monitorable messages (default `Monitors Manager`); with a
    /// shard, ` (shard i/N)` is appended.
    pub manager_name: String,
    /// Period per monitor family; a missing group uses [`PeriodGroup::default_period`].
    pub periods: BTreeMap<PeriodGroup, Duration>,
    /// The least bound on polls in flight across all monitors (at least 1, default 256): a permit
    /// is held while a strategy runs its round, not while its results are published. The bound
    /// grows with the monitors' rate of rounds, see [`ManagerSettings::round_budget`].
    pub max_in_flight: usize,
    /// The mean round duration the main pool of permits is sized for (default 1 s): the bound on
    /// polls in flight is `clamp(⌈Σ round_budget / period⌉, max_in_flight, max_in_flight_cap)`
    /// over the running monitors, the rounds due per second times this duration (Little's law),
    /// so the pool can start every round on its tick while rounds take up to this long on
    /// average. 100,000 monitors at 60 s get 1,667 permits. Zero: the bound stays
    /// `max_in_flight`, whatever the number of monitors.
    pub round_budget: Duration,
    /// The most the bound on polls in flight grows to (default 4,096; a cap below
    /// `max_in_flight` means no growth: the bound stays `max_in_flight`): each poll in flight may
    /// hold a socket, so this also bounds the sockets of polls.
    pub max_in_flight_cap: usize,
    /// Permits of the slow lane (default 64, at least 1): monitors whose last round was slow (ran
    /// longer than [`ManagerSettings::slow_round_percent`] of its timeout, or timed out) run
    /// their rounds under these instead of the main pool, until a round is fast again. At most
    /// the main pool's bound (at most `max_in_flight_cap`) plus `slow_in_flight` rounds are in
    /// flight.
    pub slow_in_flight: usize,
    /// A round is slow when it runs longer than this percentage of its timeout (default 10: 1 s at
    /// a 10 s period). A main-pool round still running then leaves the main pool for the slow
    /// lane, or, when the slow lane is full, is cut off (counted in
    /// [`ManagerStatus::rounds_cut_off`](crate::ManagerStatus::rounds_cut_off)). 100 disables the
    /// mid-round move: only rounds that time out make a monitor slow.
    pub slow_round_percent: u32,
    /// How long rounds in flight may take to finish after shutdown is requested.
    pub shutdown_grace: Duration,
    /// Appended to the config and heartbeat queue names (tests, shards).
    pub queue_suffix: String,
    /// Prefetch of the config queue.
    pub config_prefetch: u16,
    /// Run only one shard of the specs.
    pub shard: Option<Shard>,
    /// Backoff of restarts after a death and of build retries.
    pub restart_backoff: Backoff,
    /// A monitor is hung when no round finished within `hung_periods` periods plus the round
    /// timeout (default 3).
    pub hung_periods: u32,
    /// The largest phase window (default 60 s): a group's phases are spread over at most
    /// `min(period, max_phase_spread)`, so 10,000 monitors started together do not poll together,
    /// yet a GitHub monitor (period 3600 s) added to a running manager gives its first data within
    /// a minute, not within an hour. See [`ManagerSettings::phase_window`].
    pub max_phase_spread: Duration,
    /// How much a group's phase window grows per monitor of the group (default 10 ms: the
    /// window is sized for at most 100 first rounds a second, until it reaches its cap).
    pub phase_spread_per_monitor: Duration,
    /// The smallest phase window (default 1 s; never above the cap): a handful of monitors give
    /// their first data within about a second of starting.
    pub min_phase_spread: Duration,
    /// Declare the monitorable store's queue (`monitorable_store_input_queue`, bound `*.*`) at
    /// start, as PANIC's start-up did, so that no monitorables message is lost when the manager
    /// publishes before the store is up. On for RabbitMQ deployments; off by default (embedded, no
    /// store consumes it and the queue would only grow).
    pub declare_monitorable_store_queue: bool,
    /// Config messages with a larger body (in bytes) are logged, counted as config errors and
    /// acked without being parsed (default [`DEFAULT_MAX_CONFIG_BYTES`], 16 MiB): a runaway or
    /// hostile publisher cannot make the manager hold a huge JSON tree (RabbitMQ itself lets
    /// through bodies up to 128 MiB by default).
    pub max_config_bytes: usize,
    /// Bound, in bytes, of the outbox where rounds leave what they publish (data and worker
    /// heartbeats) while the broker is slow or away (default [`DEFAULT_OUTBOX_BYTES`], 256 MiB).
    /// Rounds never wait for the broker; when the outbox is full the oldest rounds are dropped
    /// and counted ([`ManagerStatus::outbox_dropped`](crate::ManagerStatus::outbox_dropped)).
    pub outbox_bytes: usize,
}

/// Default [`ManagerSettings::outbox_bytes`]: 256 MiB. A system monitor's round is about 1–2 KB
/// of data plus a heartbeat (~0.2 KB) and ~0.2 KB of bookkeeping: at 10,000 system monitors
/// (period 60 s, ~167 rounds/s, ~400 KB/s) that holds about 10 minutes of outage; at a 10 s
/// period about 2 minutes.
pub const DEFAULT_OUTBOX_BYTES: usize = 256 * 1024 * 1024;

/// Default [`ManagerSettings::max_in_flight_cap`]: 4,096 polls in flight at most (a socket each,
/// well below a `ulimit -n` of 20,000 beside the kept connections).
pub const DEFAULT_MAX_IN_FLIGHT_CAP: usize = 4096;

/// Default [`ManagerSettings::max_config_bytes`]: 16 MiB, far above any real PANIC config (a
/// config of 50,000 sections is about 7 MB).
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// `_shard_<i>_of_<n>`, or nothing without sharding.
pub fn shard_suffix(shard: Option<Shard>) -> String {
    shard.map_or_else(String::new, |s| {
        format!("_shard_{}_of_{}", s.index, s.count)
    })
}

/// The config queue a manager of `shard` consumes (what `panic-config --shards N` declares).
pub fn configs_queue_name(shard: Option<Shard>, queue_suffix: &str) -> String {
    format!(
        "{}{}{queue_suffix}",
        monitor_core::keys::MANAGER_CONFIGS_QUEUE,
        shard_suffix(shard)
    )
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            manager_name: DEFAULT_MANAGER_NAME.to_owned(),
            periods: BTreeMap::new(),
            max_in_flight: 256,
            round_budget: Duration::from_secs(1),
            max_in_flight_cap: DEFAULT_MAX_IN_FLIGHT_CAP,
            slow_in_flight: 64,
            slow_round_percent: 10,
            shutdown_grace: Duration::from_secs(10),
            queue_suffix: String::new(),
            config_prefetch: 16,
            shard: None,
            restart_backoff: Backoff::default(),
            hung_periods: 3,
            max_phase_spread: Duration::from_secs(60),
            phase_spread_per_monitor: Duration::from_millis(10),
            min_phase_spread: Duration::from_secs(1),
            declare_monitorable_store_queue: false,
            max_config_bytes: DEFAULT_MAX_CONFIG_BYTES,
            outbox_bytes: DEFAULT_OUTBOX_BYTES,
        }
    }
}

impl ManagerSettings {
    /// The period of a group.
    pub fn period(&self, group: PeriodGroup) -> Duration {
        self.periods
            .get(&group)
            .copied()
            .unwrap_or_else(|| group.default_period())
    }

    /// The window the phase of a monitor of `group` is drawn from, when the group has `monitors`
    /// monitors (itself included): `clamp(phase_spread_per_monitor × monitors, min_phase_spread,
    /// min(period, max_phase_spread))` (the floor never above the cap). The manager decides it
    /// when it starts a monitor, with the group's count once the config message is applied (see
    /// the `schedule` module); public so that a harness can compute the grid the manager ticks on.
    pub fn phase_window(&self, group: PeriodGroup, monitors: usize) -> Duration {
        let cap = self.period(group).min(self.max_phase_spread);
        let n = u32::try_from(monitors).unwrap_or(u32::MAX);
        self.phase_spread_per_monitor
            .saturating_mul(n)
            .max(self.min_phase_spread)
            .min(cap)
    }

    /// The timeout of one round of a group: its period, so a hung round ends before the next tick.
    /// Strategies must keep their own request timeouts below it.
    pub fn round_timeout(&self, group: PeriodGroup) -> Duration {
        self.period(group)
    }

    /// When a round of `group` counts as slow: [`ManagerSettings::slow_round_percent`] of its
    /// timeout.
    pub fn slow_after(&self, group: PeriodGroup) -> Duration {
        self.round_timeout(group) * self.slow_round_percent.min(100) / 100
    }

    /// How long a monitor of `group` may go without a finished round before it counts as hung.
    pub fn hung_after(&self, group: PeriodGroup) -> Duration {
        self.period(group)
            .saturating_mul(self.hung_periods)
            .saturating_add(self.round_timeout(group))
    }

    /// The manager name as published (with the shard, if any).
    pub fn effective_manager_name(&self) -> String {
        match self.shard {
            Some(shard) => format!("{} (shard {shard})", self.manager_name),
            None => self.manager_name.clone(),
        }
    }

    /// The config queue's name: PANIC's, then the shard's suffix (each shard needs its own copy of
    /// every config message: on a shared queue RabbitMQ would split them between shards), then
    /// [`ManagerSettings::queue_suffix`].
    pub fn configs_queue(&self) -> String {
        configs_queue_name(self.shard, &self.queue_suffix)
    }

    /// The heartbeat (ping) queue's name, suffixed like [`ManagerSettings::configs_queue`] (every
    /// shard answers every ping).
    pub fn heartbeat_queue(&self) -> String {
        format!(
            "{}{}{}",
            monitor_core::keys::MANAGER_HEARTBEAT_QUEUE,
            shard_suffix(self.shard),
            self.queue_suffix
        )
    }

    /// Check the settings; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for group in PeriodGroup::ALL {
            if self.period(group).is_zero() {
                return Err(format!("the period of {group:?} monitors must not be zero"));
            }
        }
        if self.max_config_bytes == 0 {
            return Err("max_config_bytes must be at least 1".to_owned());
        }
        if self.slow_in_flight == 0 || self.slow_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(
                "slow_in_flight must be at least 1 (and at most the semaphore's maximum)"
                    .to_owned(),
            );
        }
        if !(1..=100).contains(&self.slow_round_percent) {
            return Err("slow_round_percent must be between 1 and 100".to_owned());
        }
        if self.outbox_bytes == 0 {
            return Err("outbox_bytes must be at least 1".to_owned());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".to_owned());
        }
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(format!(
                "max_in_flight must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        if self.max_in_flight_cap > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(format!(
                "max_in_flight_cap must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        if let Some(shard) = self.shard {
            if shard.count == 0 || shard.index >= shard.count {
                return Err(format!(
                    "shard {shard} is invalid: need a count of at least 1 and an index below it"
                ));
            }
        }
        if self.restart_backoff.initial.is_zero() {
            return Err("the restart backoff must start above zero".to_owned());
        }
        if !(0.0..=1.0).contains(&self.restart_backoff.jitter) {
            return Err("the restart backoff jitter must be between 0 and 1".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shards_get_their_own_queues() {
        let plain = ManagerSettings::default();
        assert_eq!(plain.configs_queue(), "monitors_manager_configs_queue");
        assert_eq!(plain.heartbeat_queue(), "monitors_manager_heartbeat_queue");
        let sharded = ManagerSettings {
            shard: Some(Shard { index: 1, count: 3 }),
            ..ManagerSettings::default()
        };
        assert_eq!(
            sharded.configs_queue(),
            "monitors_manager_configs_queue_shard_1_of_3"
        );
        assert_eq!(
            sharded.heartbeat_queue(),
            "monitors_manager_heartbeat_queue_shard_1_of_3"
        );
        assert_eq!(
            configs_queue_name(Some(Shard { index: 1, count: 3 }), ""),
            sharded.configs_queue()
        );
    }

    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered_within_bounds() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.delay(10), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let j = Backoff { jitter: 0.5, ..b };
        for attempt in 0..20 {
            let d = j.delay(attempt);
            let full = b.delay(attempt);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?} vs {full:?}");
        }
    }

    #[test]
    fn defaults_and_validation() {
        let s = ManagerSettings::default();
        assert!(s.validate().is_ok());
        assert_eq!(s.period(PeriodGroup::System), Duration::from_secs(60));
        assert_eq!(s.hung_after(PeriodGroup::Node), Duration::from_secs(40));
        assert_eq!(s.effective_manager_name(), "Monitors Manager");
        assert_eq!(s.configs_queue(), "monitors_manager_configs_queue");

        let sharded = ManagerSettings {
            shard: Some(Shard { index: 1, count: 4 }),
            queue_suffix: "_1".to_owned(),
            ..ManagerSettings::default()
        };
        assert_eq!(
            sharded.effective_manager_name(),
            "Monitors Manager (shard 1/4)"
        );
        // The shard's suffix, then the explicit one.
        assert_eq!(
            sharded.heartbeat_queue(),
            "monitors_manager_heartbeat_queue_shard_1_of_4_1"
        );

        for bad in [
            ManagerSettings {
                max_in_flight: 0,
                ..ManagerSettings::default()
            },
            ManagerSettings {
                max_in_flight_cap: usize::MAX,
                ..ManagerSettings::default()
            },
            ManagerSettings {
                shard: Some(Shard { index: 2, count: 2 }),
                ..ManagerSettings::default()
            },
            ManagerSettings {
                shard: Some(Shard { index: 0, count: 0 }),
                ..ManagerSettings::default()
            },
            ManagerSettings {
                periods: [(PeriodGroup::Node, Duration::ZERO)].into_iter().collect(),
                ..ManagerSettings::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
