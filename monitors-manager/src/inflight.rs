//! The main pool of round permits, sized by the monitors it serves.
//!
//! Monitors tick at a fixed rate, so the rounds due per second are known: `Σ 1 / period` over the
//! running monitors. By Little's law the permits a pool needs to start them all on time are that
//! rate times the mean round duration. A fixed bound therefore caps the rate: 256 permits with
//! rounds of 250 ms start at most 1,024 rounds a second, while 100,000 monitors at 60 s are due
//! 1,667 a second; they fall behind without end (every round later than the one before, until
//! ticks are skipped).
//!
//! So the bound follows the monitors: each running monitor of period `p` asks for
//! `round_budget / p` permits (the rate it adds times the mean round duration the pool is sized
//! for), and the bound is `clamp(⌈Σ round_budget / p⌉, max_in_flight, max_in_flight_cap)`
//! ([`ManagerSettings::round_budget`](crate::ManagerSettings::round_budget)). With the defaults
//! (floor 256, budget 1 s, cap 4,096) 100,000 monitors at 60 s get 1,667 permits, enough for mean
//! rounds of up to a second; a handful of monitors keep the floor of 256.
//!
//! The bound is adjusted when a monitor's supervisor starts and when it ends. Growing adds
//! permits at once; shrinking forgets free permits, and permits in use that should no longer
//! exist are forgotten as their rounds end (a debt paid by [`RoundPermits::release`]), so the
//! bound is never exceeded for longer than the rounds in flight take.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ManagerSettings;

/// Demand is counted in millionths of a permit.
const SCALE: u128 = 1_000_000;

/// The main pool (see the module documentation).
#[derive(Debug)]
pub(crate) struct RoundPermits {
    semaphore: Arc<Semaphore>,
    floor: usize,
    cap: usize,
    budget: Duration,
    /// Permits to forget as rounds end (the bound shrank while they were in use).
    debt: AtomicUsize,
    /// The bound now, for the status.
    bound_now: Arc<AtomicU64>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Σ round_budget / period over the running monitors, in millionths of a permit.
    demand: u128,
    /// The bound: permits that exist (free, in use, or owed as debt).
    bound: usize,
}

impl RoundPermits {
    /// The pool of `settings` (no monitor yet: the floor); `bound_now` shows the bound.
    pub(crate) fn new(settings: &ManagerSettings, bound_now: Arc<AtomicU64>) -> Self {
        let floor = settings.max_in_flight.max(1);
        let cap = settings.max_in_flight_cap.max(floor);
        bound_now.store(floor as u64, Ordering::Relaxed);
        RoundPermits {
            semaphore: Arc::new(Semaphore::new(floor)),
            floor,
            cap,
            budget: settings.round_budget,
            debt: AtomicUsize::new(0),
            bound_now,
            state: Mutex::new(State {
                demand: 0,
                bound: floor,
            }),
        }
    }

    /// The semaphore rounds take their permit of.
    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }

    /// What one monitor of `period` asks for, in millionths of a permit.
    fn demand_of(&self, period: Duration) -> u128 {
        let period = period.as_nanos().max(1);
        self.budget.as_nanos().saturating_mul(SCALE) / period
    }

    /// A monitor of `period` starts: the bound grows if its rate asks for it. The monitor's
    /// demand is given back when the returned guard drops.
    pub(crate) fn join(self: &Arc<Self>, period: Duration) -> Demand {
        let d = self.demand_of(period);
        self.adjust(|demand| demand.saturating_add(d));
        Demand {
            permits: Arc::clone(self),
            demand: d,
        }
    }

    /// The bound for `demand`.
    fn bound_for(&self, demand: u128) -> usize {
        let wanted = usize::try_from(demand.div_ceil(SCALE)).unwrap_or(usize::MAX);
        wanted.clamp(self.floor, self.cap)
    }

    fn adjust(&self, change: impl FnOnce(u128) -> u128) {
        // A poisoned lock only means a panic between two plain assignments below.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.demand = change(state.demand);
        let target = self.bound_for(state.demand);
        if target > state.bound {
            let mut grow = target - state.bound;
            // Permits still owed are simply kept rather than forgotten, then new ones added.
            let owed = self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(d.saturating_sub(grow))
                })
                .unwrap_or(0);
            grow -= owed.min(grow);
            if grow > 0 {
                self.semaphore.add_permits(grow);
            }
        } else if target < state.bound {
            let shrink = state.bound - target;
            let forgotten = self.semaphore.forget_permits(shrink);
            self.debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        state.bound = target;
        self.bound_now.store(target as u64, Ordering::Relaxed);
    }

    /// A round is done with its permit: forgotten if the bound shrank meanwhile, else released.
    pub(crate) fn release(&self, permit: OwnedSemaphorePermit) {
        let owed = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if owed {
            permit.forget();
        }
    }
}

/// One monitor's share of the bound; given back on drop.
#[derive(Debug)]
pub(crate) struct Demand {
    permits: Arc<RoundPermits>,
    demand: u128,
}

impl Drop for Demand {
    fn drop(&mut self) {
        let d = self.demand;
        self.permits.adjust(|demand| demand.saturating_sub(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(floor: usize, cap: usize, budget_ms: u64) -> (Arc<RoundPermits>, Arc<AtomicU64>) {
        let settings = ManagerSettings {
            max_in_flight: floor,
            max_in_flight_cap: cap,
            round_budget: Duration::from_millis(budget_ms),
            ..ManagerSettings::default()
        };
        let now = Arc::new(AtomicU64::new(0));
        (
            Arc::new(RoundPermits::new(&settings, Arc::clone(&now))),
            now,
        )
    }

    #[test]
    fn the_bound_follows_the_rate_between_floor_and_cap() {
        let (p, now) = pool(256, 4096, 1000);
        assert_eq!(now.load(Ordering::Relaxed), 256);
        // 100,000 monitors at 60 s: 1,667 rounds a second, 1 s each.
        let minute = Duration::from_secs(60);
        let joined: Vec<_> = (0..100_000).map(|_| p.join(minute)).collect();
        assert_eq!(now.load(Ordering::Relaxed), 1667);
        assert_eq!(p.semaphore().available_permits(), 1667);
        drop(joined);
        assert_eq!(now.load(Ordering::Relaxed), 256);
        assert_eq!(p.semaphore().available_permits(), 256);
        // 100,000 at 10 s would ask for 10,000: capped.
        let ten: Vec<_> = (0..100_000)
            .map(|_| p.join(Duration::from_secs(10)))
            .collect();
        assert_eq!(now.load(Ordering::Relaxed), 4096);
        drop(ten);
        // A budget of zero: the fixed bound of before.
        let (fixed, now) = pool(256, 4096, 0);
        let _all: Vec<_> = (0..100_000).map(|_| fixed.join(minute)).collect();
        assert_eq!(now.load(Ordering::Relaxed), 256);
        // A cap below the floor: no growth either.
        let (capped, now) = pool(256, 100, 1000);
        let _all: Vec<_> = (0..100_000).map(|_| capped.join(minute)).collect();
        assert_eq!(now.load(Ordering::Relaxed), 256);
    }

    #[test]
    fn shrinking_while_permits_are_in_use_forgets_them_as_they_come_back() {
        let (p, now) = pool(2, 100, 1000);
        let grown: Vec<_> = (0..10).map(|_| p.join(Duration::from_secs(1))).collect();
        assert_eq!(now.load(Ordering::Relaxed), 10);
        let held: Vec<_> = (0..8)
            .map(|_| Arc::clone(p.semaphore()).try_acquire_owned().unwrap())
            .collect();
        assert_eq!(p.semaphore().available_permits(), 2);
        drop(grown); // back to the floor of 2 with 8 in use: 2 free forgotten, 6 owed
        assert_eq!(now.load(Ordering::Relaxed), 2);
        assert_eq!(p.semaphore().available_permits(), 0);
        for permit in held {
            p.release(permit);
        }
        // 6 forgotten as they came back, 2 released: the floor again.
        assert_eq!(p.semaphore().available_permits(), 2);
        // Growing again while nothing is owed adds permits.
        let _again: Vec<_> = (0..5).map(|_| p.join(Duration::from_secs(1))).collect();
        assert_eq!(p.semaphore().available_permits(), 5);
    }

    #[test]
    fn growing_while_permits_are_owed_keeps_them_instead() {
        let (p, _now) = pool(1, 100, 1000);
        let grown: Vec<_> = (0..4).map(|_| p.join(Duration::from_secs(1))).collect();
        let held: Vec<_> = (0..4)
            .map(|_| Arc::clone(p.semaphore()).try_acquire_owned().unwrap())
            .collect();
        drop(grown); // bound 1, 3 owed
        let regrown: Vec<_> = (0..4).map(|_| p.join(Duration::from_secs(1))).collect();
        // Bound 4 again: the 3 owed are kept, nothing added.
        assert_eq!(p.semaphore().available_permits(), 0);
        for permit in held {
            p.release(permit);
        }
        assert_eq!(p.semaphore().available_permits(), 4);
        drop(regrown);
    }
}
