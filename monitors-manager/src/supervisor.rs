//! One supervised task per monitor.
//!
//! The *supervisor* task runs one *incarnation* of the monitor at a time, in a `JoinSet` of its own
//! (so aborting or dropping the supervisor aborts the incarnation too), and watches it:
//!
//! * the incarnation panics (in the strategy's build or round) or ends on its own → the monitor is
//!   dead: recorded for the next manager heartbeat, and restarted after a capped, jittered backoff
//!   (the backoff restarts from its first step once an incarnation completed a round);
//! * no round finished within `hung_periods × period + round timeout` → hung: the incarnation is
//!   aborted, recorded dead, and restarted at once. The aborted incarnation is not detached: it is
//!   handed to the manager's tracker of hung incarnations (`Shared::hung`), which awaits it (an
//!   incarnation stuck in blocking code ends only when that code returns; the supervisor must not
//!   wait for that) and logs its end; the manager waits for the tracker when it stops and reports
//!   what is left;
//! * `kill` (the monitor was removed or changed) → the incarnation is aborted at once, even in the
//!   middle of a round;
//! * `shutdown` → the incarnation starts no new round; a round in flight finishes and publishes (the
//!   manager bounds this by its grace period, then kills).
//!
//! An *incarnation* builds the strategy (a failing build is logged and retried with backoff, the
//! monitor reported dead meanwhile), then ticks at a fixed rate on its phase (missed ticks skipped:
//! a round never overlaps itself), takes a permit of the global in-flight semaphore, runs the round
//! under a timeout equal to the period, and hands its publications (data in order, then the worker
//! heartbeat) to the manager's outbox (`publisher`): a round never waits for the broker, so time
//! the broker is away is never counted as hung.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monitor_bus::Bus;
use monitor_core::plan::BuildFn;
use monitor_core::Monitor;
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::inflight::RoundPermits;
use crate::liveness::{Liveness, TaskKey};
use crate::publisher::{Batch, Outbox};
use crate::schedule::first_tick;
use crate::settings::Backoff;
use crate::status::Counters;
use monitor_bus::ratelimit::LogLimiter;
use monitor_bus::warn_limited;

/// What every monitor task shares with the manager.
pub(crate) struct Shared {
    pub(crate) bus: Arc<dyn Bus>,
    /// The main pool of round permits, sized by the monitors' rate of rounds (see `inflight`).
    pub(crate) permits: Arc<RoundPermits>,
    /// The slow lane's permits (`slow_in_flight`), for monitors whose rounds are slow.
    pub(crate) slow_permits: Arc<Semaphore>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) counters: Arc<Counters>,
    /// Where rounds leave what they publish (see `publisher`).
    pub(crate) outbox: Arc<Outbox>,
    /// Rate limit of the monitors' and the manager's repeated warnings (see `ratelimit`).
    pub(crate) limiter: LogLimiter,
    /// Hung incarnations, aborted and awaited here (see the module documentation).
    pub(crate) hung: TaskTracker,
}

/// One monitor as the supervisor runs it.
pub(crate) struct MonitorCtx {
    pub(crate) key: TaskKey,
    /// PANIC's component name, shared with the monitor's liveness entry and its rounds' batches.
    pub(crate) component_name: Arc<str>,
    /// `<routing key>/<planner>/<id>`, shared with the liveness entry.
    pub(crate) label: Arc<str>,
    pub(crate) build: BuildFn,
    pub(crate) period: Duration,
    /// When the monitor was first started: its tick grid is `epoch + phase + k × period`.
    pub(crate) epoch: Instant,
    pub(crate) phase: Duration,
    pub(crate) round_timeout: Duration,
    /// A round running longer than this is slow (see the crate documentation, slow lane).
    pub(crate) slow_after: Duration,
    /// In the slow lane now (survives restarts of the monitor).
    pub(crate) slow: AtomicBool,
    pub(crate) hung_after: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) shared: Arc<Shared>,
    /// Graceful stop (manager shutdown): no new round.
    pub(crate) shutdown: CancellationToken,
    /// Immediate stop (monitor removed or changed, or the grace period is over).
    pub(crate) kill: CancellationToken,
}

impl MonitorCtx {
    fn stopping(&self) -> bool {
        self.kill.is_cancelled() || self.shutdown.is_cancelled()
    }

    fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }

    /// Move the monitor to (or out of) the slow lane, keeping the manager's gauge.
    fn set_slow(&self, slow: bool) {
        if self.slow.swap(slow, Ordering::Relaxed) != slow {
            if slow {
                self.shared
                    .counters
                    .slow_monitors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(slow_after = ?self.slow_after, "monitor moves to the slow lane");
            } else {
                self.shared
                    .counters
                    .slow_monitors
                    .fetch_sub(1, Ordering::Relaxed);
                tracing::debug!("monitor is fast again: back to the main pool");
            }
        }
    }
}

/// Takes a stopped monitor out of the slow-lane gauge.
struct LeaveSlowLane<'a>(&'a MonitorCtx);

impl Drop for LeaveSlowLane<'_> {
    fn drop(&mut self) {
        self.0.set_slow(false);
    }
}

enum Outcome {
    Joined(Option<Result<(), JoinError>>),
    Hung,
}

/// How a round ended without a result.
enum RoundEnd {
    /// Cut off by its timeout.
    TimedOut,
    /// Cut off at its slow threshold: it had to leave the main pool and the slow lane was full.
    CutOff,
}

impl From<tokio::time::error::Elapsed> for RoundEnd {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        RoundEnd::TimedOut
    }
}

/// Supervise one monitor until it is killed or the manager shuts down; returns its key.
pub(crate) async fn supervise(ctx: Arc<MonitorCtx>) -> TaskKey {
    let span = tracing::info_span!(
        "monitor",
        component = %ctx.component_name,
        label = %ctx.label
    );
    supervise_inner(ctx, span.clone()).instrument(span).await
}

async fn supervise_inner(ctx: Arc<MonitorCtx>, span: tracing::Span) -> TaskKey {
    let _leave = LeaveSlowLane(&ctx);
    // This monitor's rate of rounds counts in the main pool's bound while it is supervised.
    let _demand = ctx.shared.permits.join(ctx.period);
    let liveness = &ctx.shared.liveness;
    let mut failures: u32 = 0;
    while !ctx.stopping() {
        liveness.incarnation_started(ctx.key);
        let ok_before = liveness.rounds_ok(ctx.key);
        let mut incarnation = JoinSet::new();
        incarnation.spawn(run_incarnation(Arc::clone(&ctx)).instrument(span.clone()));

        let outcome = tokio::select! {
            biased;
            () = ctx.kill.cancelled() => {
                incarnation.shutdown().await;
                break;
            }
            () = ctx.shutdown.cancelled() => {
                // The incarnation sees the same token: it finishes a round in flight and returns.
                if ctx.kill.run_until_cancelled(incarnation.join_next()).await.is_none() {
                    incarnation.shutdown().await;
                }
                break;
            }
            joined = incarnation.join_next() => Outcome::Joined(joined),
            () = hung(&ctx) => Outcome::Hung,
        };

        if liveness.rounds_ok(ctx.key) > ok_before {
            failures = 0;
        }
        let restart_now = match outcome {
            Outcome::Joined(Some(Ok(()))) | Outcome::Joined(None) => {
                if ctx.stopping() {
                    break;
                }
                tracing::error!("monitor task ended unexpectedly");
                false
            }
            Outcome::Joined(Some(Err(e))) => {
                if e.is_panic() {
                    let message = panic_message(e.into_panic());
                    tracing::error!(panic = %message, "monitor panicked");
                } else {
                    tracing::error!(error = %e, "monitor task was cancelled unexpectedly");
                }
                false
            }
            Outcome::Hung => {
                tracing::error!(
                    allowed = ?ctx.hung_after,
                    "monitor is hung: no round finished in time"
                );
                // Abort, and await it elsewhere: a round stuck in blocking code would keep us
                // waiting.
                incarnation.abort_all();
                reap_hung(&ctx.shared.hung, incarnation, span.clone());
                true
            }
        };
        liveness.died(ctx.key);
        if !restart_now {
            let delay = ctx.backoff.delay(failures);
            failures = failures.saturating_add(1);
            tracing::info!(?delay, "restarting monitor after backoff");
            tokio::select! {
                biased;
                () = ctx.kill.cancelled() => break,
                () = ctx.shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
    ctx.key
}

/// Await an aborted hung incarnation in `tracker` and log how it ended.
fn reap_hung(tracker: &TaskTracker, mut incarnation: JoinSet<()>, span: tracing::Span) {
    let still_hung = tracker.len() + 1;
    tracing::info!(
        still_hung,
        "hung incarnation aborted; awaiting its end in the background"
    );
    let counter = tracker.clone();
    tracker.spawn(
        async move {
            while let Some(joined) = incarnation.join_next().await {
                // This task is still tracked while it logs: the others are `len() - 1`.
                let still_hung = counter.len().saturating_sub(1);
                match joined {
                    Err(e) if e.is_cancelled() => {
                        tracing::info!(still_hung, "hung incarnation ended (aborted)");
                    }
                    Err(e) => {
                        tracing::warn!(still_hung, error = %e, "hung incarnation ended with an error");
                    }
                    Ok(()) => tracing::info!(still_hung, "hung incarnation ended on its own"),
                }
            }
        }
        .instrument(span),
    );
}

/// Resolves when the monitor counts as hung.
async fn hung(ctx: &MonitorCtx) {
    loop {
        match ctx.shared.liveness.hung_deadline(ctx.key, ctx.hung_after) {
            Some(deadline) if deadline <= Instant::now() => return,
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            // Not applicable now (building, failing, waiting for a permit): look again later.
            None => tokio::time::sleep(ctx.period.min(ctx.hung_after)).await,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Counts a round in flight for as long as it lives (also when a panic unwinds through it).
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn new(counters: &'a Counters) -> Self {
        counters.rounds_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.rounds_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Build the strategy, retrying with backoff; `None` when asked to stop.
async fn build(ctx: &MonitorCtx) -> Option<Box<dyn Monitor>> {
    let mut attempt: u32 = 0;
    loop {
        if ctx.stopping() {
            return None;
        }
        match (ctx.build)() {
            Ok(monitor) => {
                ctx.shared.liveness.built(ctx.key);
                return Some(monitor);
            }
            Err(e) => {
                ctx.shared.liveness.build_failed(ctx.key);
                let delay = ctx.backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                warn_limited!(
                    ctx.shared.limiter,
                    "build failed",
                    error = %e,
                    code = e.code.code(),
                    attempt,
                    ?delay,
                    "building the monitor failed, retrying"
                );
                tokio::select! {
                    biased;
                    () = ctx.kill.cancelled() => return None,
                    () = ctx.shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One incarnation: build, then rounds at a fixed rate until told to stop.
///
/// Building and each round run in futures of their own, boxed: between rounds the task holds only
/// its tick wait, not the state of a round (its timeouts, selects and permit wait are most of the
/// future's size), which is allocated when the round starts and freed when it ends.
async fn run_incarnation(ctx: Arc<MonitorCtx>) {
    let Some(mut monitor) = Box::pin(build(&ctx)).await else {
        return;
    };
    let start = first_tick(ctx.epoch, ctx.phase, ctx.period, Instant::now());
    let mut ticks = tokio::time::interval_at(start, ctx.period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            () = ctx.kill.cancelled() => return,
            () = ctx.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if Box::pin(one_round(&ctx, &mut monitor)).await.is_break() {
            return;
        }
    }
}

/// One round of a built monitor: a permit, the round under its timeout (and the slow lane's
/// threshold), the outbox. `Break` when the monitor must stop (killed, shut down, the manager
/// gone).
async fn one_round(ctx: &MonitorCtx, monitor: &mut Box<dyn Monitor>) -> ControlFlow<()> {
    let shared = &ctx.shared;
    // Slow monitors take a permit of the slow lane, the others of the main pool.
    let slow = ctx.is_slow();
    let pool = if slow {
        &shared.slow_permits
    } else {
        shared.permits.semaphore()
    };
    // Whether `permit` is the main pool's (it may move to the slow lane mid-round).
    let mut main_permit = !slow;
    shared.liveness.waiting_for_permit(ctx.key);
    let mut permit = tokio::select! {
        biased;
        () = ctx.kill.cancelled() => return ControlFlow::Break(()),
        () = ctx.shutdown.cancelled() => return ControlFlow::Break(()),
        permit = Arc::clone(pool).acquire_owned() => match permit {
            Ok(permit) => permit,
            Err(_) => return ControlFlow::Break(()), // closed: the manager is gone
        },
    };
    shared.liveness.permit_acquired(ctx.key);
    let in_flight = InFlight::new(&shared.counters);
    let started = Instant::now();
    let outcome = {
        let round = tokio::time::timeout(ctx.round_timeout, monitor.round());
        tokio::pin!(round);
        let early = if slow || ctx.slow_after >= ctx.round_timeout {
            None
        } else {
            // A main-pool round still running at `slow_after` leaves the main pool.
            tokio::select! {
                biased;
                () = ctx.kill.cancelled() => return ControlFlow::Break(()),
                outcome = &mut round => Some(outcome.map_err(RoundEnd::from)),
                () = tokio::time::sleep(ctx.slow_after) => {
                    ctx.set_slow(true);
                    match Arc::clone(&shared.slow_permits).try_acquire_owned() {
                        Ok(slow_permit) => {
                            let main = std::mem::replace(&mut permit, slow_permit);
                            shared.permits.release(main);
                            main_permit = false;
                            None
                        }
                        Err(_) => Some(Err(RoundEnd::CutOff)),
                    }
                }
            }
        };
        match early {
            Some(outcome) => outcome,
            None => tokio::select! {
                biased;
                () = ctx.kill.cancelled() => return ControlFlow::Break(()),
                outcome = &mut round => outcome.map_err(RoundEnd::from),
            },
        }
    };
    // The bound is on polls in flight: publishing is the publisher's (the round only queues
    // its publications), so a slow or absent broker holds no permit and hangs no round.
    if main_permit {
        shared.permits.release(permit);
    } else {
        drop(permit);
    }
    if outcome.is_ok() {
        // Fast again (or still fast) when it finished within `slow_after`.
        ctx.set_slow(started.elapsed() > ctx.slow_after);
    } else {
        ctx.set_slow(true);
    }
    match outcome {
        Err(RoundEnd::CutOff) => {
            shared.liveness.round_timed_out(ctx.key);
            Counters::bump(&shared.counters.rounds_cut_off);
            warn_limited!(ctx.shared.limiter, "round cut off",
                slow_after = ?ctx.slow_after,
                "round still running after its slow threshold and the slow lane is full: \
                 cut off; the monitor waits for the slow lane");
        }
        Err(RoundEnd::TimedOut) => {
            shared.liveness.round_timed_out(ctx.key);
            warn_limited!(ctx.shared.limiter, "round timed out",
                timeout = ?ctx.round_timeout, "round timed out");
        }
        Ok(Err(e)) => {
            shared.liveness.round_finished(ctx.key, false);
            warn_limited!(ctx.shared.limiter, "round failed", error = %e,
                "round failed: the monitor's error envelope (if any) and heartbeat published");
            if ctx.kill.is_cancelled() {
                return ControlFlow::Break(());
            }
            // Never silence: what the monitor says about the failure, then its heartbeat.
            publish_round(ctx, monitor.failed_round(&e));
        }
        Ok(Ok(publications)) => {
            shared.liveness.round_finished(ctx.key, true);
            if ctx.kill.is_cancelled() {
                return ControlFlow::Break(());
            }
            publish_round(ctx, publications);
        }
    }
    drop(in_flight);
    ControlFlow::Continue(())
}

/// Hand a round's data and its worker heartbeat to the outbox (never waits for the broker).
fn publish_round(ctx: &MonitorCtx, publications: Vec<monitor_core::Publication>) {
    let mut data = Vec::with_capacity(publications.len());
    for publication in publications {
        match serde_json::to_vec(&publication.body) {
            Ok(body) => data.push((publication.routing_key.as_str(), Bytes::from(body))),
            Err(e) => {
                Counters::bump(&ctx.shared.counters.publishes_failed);
                warn_limited!(
                    ctx.shared.limiter,
                    "encoding failed",
                    routing_key = publication.routing_key.as_str(),
                    error = %e,
                    "encoding raw data failed: round and heartbeat skipped"
                );
                return;
            }
        }
    }
    ctx.shared
        .outbox
        .push(Batch::new(ctx.key, Arc::clone(&ctx.component_name), data));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Arc<MonitorCtx> {
        let settings = crate::ManagerSettings::default();
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            bus: Arc::new(monitor_bus::MemoryBus::new()),
            permits: Arc::new(RoundPermits::new(
                &settings,
                Arc::clone(&counters.round_permits),
            )),
            slow_permits: Arc::new(Semaphore::new(1)),
            liveness: Arc::new(Liveness::new()),
            counters,
            outbox: Arc::new(Outbox::new(1024)),
            limiter: LogLimiter::per_minute(1),
            hung: TaskTracker::new(),
        });
        let period = Duration::from_secs(60);
        let key = shared.liveness.register("c".into(), "l".into(), period);
        Arc::new(MonitorCtx {
            key,
            component_name: "c".into(),
            label: "l".into(),
            build: Arc::new(|| Ok(Box::new(Idle) as Box<dyn Monitor>)),
            period,
            epoch: Instant::now(),
            phase: Duration::ZERO,
            round_timeout: period,
            slow_after: period / 10,
            slow: AtomicBool::new(false),
            hung_after: period * 4,
            backoff: Backoff::default(),
            shared,
            shutdown: CancellationToken::new(),
            kill: CancellationToken::new(),
        })
    }

    /// What a monitor holds between rounds: its two tasks' futures. The round's state (permit
    /// wait, timeout, slow-lane select) is boxed per round, so the incarnation's future, held for
    /// the monitor's whole life, is smaller than one round's.
    #[tokio::test]
    async fn a_round_state_is_not_held_between_rounds() {
        let ctx = ctx();
        let supervisor = std::mem::size_of_val(&supervise(Arc::clone(&ctx)));
        let incarnation = std::mem::size_of_val(&run_incarnation(Arc::clone(&ctx)));
        let mut monitor: Box<dyn Monitor> = Box::new(Idle);
        let round = std::mem::size_of_val(&one_round(&ctx, &mut monitor));
        let building = std::mem::size_of_val(&build(&ctx));
        println!(
            "future bytes: supervisor {supervisor}, incarnation {incarnation}, one round \
             {round}, build {building}"
        );
        assert!(incarnation < round, "{incarnation} vs {round}");
        assert!(incarnation < building, "{incarnation} vs {building}");
    }

    struct Idle;

    #[async_trait::async_trait]
    impl Monitor for Idle {
        fn name(&self) -> &str {
            "idle"
        }

        async fn round(
            &mut self,
        ) -> Result<Vec<monitor_core::Publication>, monitor_core::RoundError> {
            Ok(Vec::new())
        }
    }
}
