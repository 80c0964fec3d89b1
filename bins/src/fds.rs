//! Open files: the manager raises its soft `RLIMIT_NOFILE` to the hard limit at start, and, where
//! even that is too low for its socket bounds, lowers the bounds to fit instead of failing later
//! with "Too many open files" in the middle of rounds.
//!
//! What the manager may hold open at once is bounded by its settings: a socket per poll in flight
//! (the main pool's cap plus the slow lane) and the idle connections kept alive (hosts × idle per
//! host), plus a few for RabbitMQ, Redis, the output, `/metrics` and Substrate websockets
//! ([`RESERVE`]). A soft limit of 1,024 (the usual default of a login shell, and of a systemd
//! unit without `LimitNOFILE=`) is below the defaults' ≈ 12,400; the hard limit usually is not.

use monitor_strategies::ConnectionLimits;
use monitors_manager::ManagerSettings;

/// Descriptors left for everything that is not a poll or a kept connection: the broker and Redis
/// connections, the output file, `/metrics` and its scrapes, the config folder watcher, the
/// Substrate monitors' websockets, and the runtime's own.
pub const RESERVE: u64 = 256;

/// The bounds use at most this share of the limit (in percent): connections being closed linger
/// briefly, and a Cosmos catch-up opens several sockets to one node at once.
pub const SHARE_PERCENT: u64 = 75;

/// Raise the soft open-file limit as far as the hard limit allows; the soft limit now in force.
pub fn raise_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The sockets `manager` and `connections` may hold at once (polls in flight and kept idle
/// connections; [`RESERVE`] not included).
pub fn sockets_needed(manager: &ManagerSettings, connections: &ConnectionLimits) -> u64 {
    let polls = manager.max_in_flight.max(manager.max_in_flight_cap) + manager.slow_in_flight;
    let kept = connections.max_kept_hosts * connections.max_idle_per_host;
    (polls + kept) as u64
}

/// What [`fit`] lowered, for the warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    /// The open-file limit fitted under.
    pub limit: u64,
    /// What the bounds needed, and what they need now.
    pub needed: (u64, u64),
    /// The main pool's cap on polls in flight, before and after.
    pub polls: (usize, usize),
    /// Hosts kept alive, before and after.
    pub kept_hosts: (usize, usize),
    /// The slow lane's permits, before and after.
    pub slow: (usize, usize),
}

impl std::fmt::Display for Lowered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the open-file limit is {} (`ulimit -n`; `LimitNOFILE=` in a systemd unit), below the \
             {} sockets the bounds allow: polls in flight at most {} (was {}), hosts kept alive {} \
             (was {}), slow lane {} (was {}); raise the limit to keep the defaults",
            self.limit,
            self.needed.0,
            self.polls.1,
            self.polls.0,
            self.kept_hosts.1,
            self.kept_hosts.0,
            self.slow.1,
            self.slow.0
        )
    }
}

/// Lower the socket bounds so they use at most [`SHARE_PERCENT`] of `limit` beside [`RESERVE`]:
/// kept hosts and the slow lane first take at most a quarter of that room each, the main pool's
/// polls in flight the rest (at least one of each). `None` when they fit already (nothing changed).
pub fn fit(
    limit: u64,
    manager: &mut ManagerSettings,
    connections: &mut ConnectionLimits,
) -> Option<Lowered> {
    let room = (limit.saturating_mul(SHARE_PERCENT) / 100).saturating_sub(RESERVE);
    let needed = sockets_needed(manager, connections);
    if needed <= room {
        return None;
    }
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    let before_polls = manager.max_in_flight.max(manager.max_in_flight_cap);
    let before_hosts = connections.max_kept_hosts;
    let before_slow = manager.slow_in_flight;
    let idle = connections.max_idle_per_host.max(1);
    let kept_hosts = before_hosts.min(room / 4 / idle).max(1);
    let kept = kept_hosts * connections.max_idle_per_host;
    let slow = before_slow.min(room / 4).max(1);
    let polls = before_polls.min(room.saturating_sub(kept + slow)).max(1);
    connections.max_kept_hosts = kept_hosts;
    manager.slow_in_flight = slow;
    manager.max_in_flight = manager.max_in_flight.min(polls);
    manager.max_in_flight_cap = polls;
    Some(Lowered {
        limit,
        needed: (needed, sockets_needed(manager, connections)),
        polls: (before_polls, polls),
        kept_hosts: (before_hosts, kept_hosts),
        slow: (before_slow, slow),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_a_limit_of_twenty_thousand_and_nothing_changes() {
        let mut manager = ManagerSettings::default();
        let mut connections = ConnectionLimits::default();
        assert_eq!(sockets_needed(&manager, &connections), 4096 + 64 + 4096 * 2);
        assert_eq!(fit(20_000, &mut manager, &mut connections), None);
        assert_eq!(manager.max_in_flight_cap, 4096);
        assert_eq!(connections.max_kept_hosts, 4096);
    }

    #[test]
    fn a_limit_of_1024_lowers_the_bounds_under_it() {
        let mut manager = ManagerSettings::default();
        let mut connections = ConnectionLimits::default();
        let lowered = fit(1024, &mut manager, &mut connections).expect("lowered");
        // 75 % of 1,024 is 768, less the reserve of 256: 512 sockets of room.
        assert_eq!(connections.max_kept_hosts, 64);
        assert_eq!(manager.max_in_flight_cap, 512 - 128 - 64);
        assert_eq!(manager.max_in_flight, 256);
        let now = sockets_needed(&manager, &connections);
        assert!(now + RESERVE <= 1024 * SHARE_PERCENT / 100, "{now}");
        assert_eq!(lowered.needed, (12_352, now));
        let message = lowered.to_string();
        assert!(message.contains("open-file limit is 1024"), "{message}");
        assert!(
            message.contains("polls in flight at most 320 (was 4096)"),
            "{message}"
        );
    }

    #[test]
    fn a_tiny_limit_keeps_one_poll_and_one_host() {
        let mut manager = ManagerSettings::default();
        let mut connections = ConnectionLimits::default();
        fit(64, &mut manager, &mut connections).expect("lowered");
        assert_eq!(connections.max_kept_hosts, 1);
        assert_eq!(manager.max_in_flight_cap, 1);
        assert_eq!(manager.max_in_flight, 1);
        assert_eq!(manager.slow_in_flight, 1);
        assert!(manager.validate().is_ok());
    }
}
