//! What to run for a config message: the contract between strategies (which know PANIC's config
//! fields per monitor type) and the manager (which knows none of them).
//!
//! A [`Planner`] turns one config message into the full list of monitors that should run for it
//! ([`MonitorSpec`]s). The manager keeps, per (config routing key, planner), the specs it runs, and
//! diffs each new plan against them by [`MonitorSpec::id`]: a new id is started, a missing id is
//! stopped, an id whose [`MonitorSpec::fingerprint`] changed is restarted. Diffing plans instead of raw
//! sections gives PANIC's rules for free: a Cosmos node monitor whose data sources changed restarts
//! (its fingerprint includes them) while the others keep running; a per-chain monitor restarts only
//! when its inputs tuple changes; a disabled section simply plans nothing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, ConfigMessage, Section};
use crate::envelope::MonitorableSource;
use crate::errors::PanicError;
use crate::keys::{ConfigKey, MonitorableType};
use crate::monitor::Monitor;

/// The monitor families that share a period (PANIC's period env variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodGroup {
    /// System monitors (`SYSTEM_MONITOR_PERIOD_SECONDS`, 60 s).
    System,
    /// GitHub monitors (`GITHUB_MONITOR_PERIOD_SECONDS`, 3600 s).
    Github,
    /// DockerHub monitors (`DOCKERHUB_MONITOR_PERIOD_SECONDS`, 3600 s).
    Dockerhub,
    /// Node monitors of every chain (`NODE_MONITOR_PERIOD_SECONDS`, 10 s).
    Node,
    /// Chainlink contracts monitors (`CHAINLINK_CONTRACTS_MONITOR_PERIOD_SECONDS`, 10 s).
    ChainlinkContracts,
    /// Network monitors (`NETWORK_MONITOR_PERIOD_SECONDS`, 60 s).
    Network,
}

impl PeriodGroup {
    /// Every group.
    pub const ALL: [PeriodGroup; 6] = [
        PeriodGroup::System,
        PeriodGroup::Github,
        PeriodGroup::Dockerhub,
        PeriodGroup::Node,
        PeriodGroup::ChainlinkContracts,
        PeriodGroup::Network,
    ];

    /// PANIC's default period.
    pub fn default_period(self) -> Duration {
        Duration::from_secs(match self {
            PeriodGroup::System => 60,
            PeriodGroup::Github | PeriodGroup::Dockerhub => 3600,
            PeriodGroup::Node | PeriodGroup::ChainlinkContracts => 10,
            PeriodGroup::Network => 60,
        })
    }

    /// PANIC's environment variable for the period, in seconds.
    pub fn env_name(self) -> &'static str {
        match self {
            PeriodGroup::System => "SYSTEM_MONITOR_PERIOD_SECONDS",
            PeriodGroup::Github => "GITHUB_MONITOR_PERIOD_SECONDS",
            PeriodGroup::Dockerhub => "DOCKERHUB_MONITOR_PERIOD_SECONDS",
            PeriodGroup::Node => "NODE_MONITOR_PERIOD_SECONDS",
            PeriodGroup::ChainlinkContracts => "CHAINLINK_CONTRACTS_MONITOR_PERIOD_SECONDS",
            PeriodGroup::Network => "NETWORK_MONITOR_PERIOD_SECONDS",
        }
    }
}

/// One monitorable a running monitor accounts for, published to the `monitorable` exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Monitorable {
    /// Base chain of the routing key (`general`, `cosmos`, …).
    pub base_chain: String,
    /// Type of the routing key.
    pub monitorable_type: MonitorableType,
    /// The source entry.
    pub source: MonitorableSource,
}

/// Builds a fresh strategy instance; called at start and at every restart. An `Err` is PANIC's
/// failing constructor (e.g. 5017, 5014): the supervisor logs it and retries with backoff.
pub type BuildFn = Arc<dyn Fn() -> Result<Box<dyn Monitor>, PanicError> + Send + Sync>;

/// One monitor that should run.
#[derive(Clone)]
pub struct MonitorSpec {
    /// Unique among the specs one planner returns for one config key (usually the config id; the
    /// chain for per-chain monitors).
    pub id: String,
    /// PANIC's component name (`System monitor (x)`), used in heartbeats and logs.
    pub component_name: String,
    /// Which period applies.
    pub group: PeriodGroup,
    /// What this monitor accounts for in the monitorables lists.
    pub monitorables: Vec<Monitorable>,
    /// Changes iff the monitor must be restarted (a digest of everything its build uses).
    pub fingerprint: u64,
    /// Makes the strategy.
    pub build: BuildFn,
}

impl fmt::Debug for MonitorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorSpec")
            .field("id", &self.id)
            .field("component_name", &self.component_name)
            .field("group", &self.group)
            .field("monitorables", &self.monitorables)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A planner's answer for one message.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every monitor that should run for this message's key (replaces the previous plan).
    pub specs: Vec<MonitorSpec>,
    /// Sections that could not be used (missing or bad fields): logged by the manager.
    pub errors: Vec<ConfigError>,
}

/// Turns config messages of some keys into monitors of one family.
pub trait Planner: Send + Sync {
    /// A short name, unique in a registry (`systems`, `github`, `cosmos_nodes`, …).
    fn name(&self) -> &'static str;

    /// Whether this planner handles messages with this key. A message may be handled by several
    /// planners (a Cosmos `nodes_config` feeds systems, nodes and the network monitor).
    fn accepts(&self, key: &ConfigKey) -> bool;

    /// The monitorable types whose lists must be re-published after a message with this key.
    fn monitorable_types(&self, key: &ConfigKey) -> Vec<MonitorableType>;

    /// Every monitor that should run for this message (an empty message plans nothing).
    fn plan(&self, message: &ConfigMessage) -> Plan;

    /// `Some` when this planner is **section-local**: its plan of a message is the plan of each
    /// section on its own. The contract, for every key the planner accepts and every message:
    ///
    /// * `plan(message)` is [`SectionPlanner::plan_section`] over `message.sections` in order,
    ///   each `Ok(Some(spec))` a spec of the plan, each `Ok(None)` nothing, each `Err` an error of
    ///   the plan (same ids, fingerprints, monitorables and errors, in the same order);
    /// * `plan_section` depends on nothing but its (key, section): the same pair always gives the
    ///   same answer.
    ///
    /// The manager then remembers each section's outcome from one message of a routing key to the
    /// next and plans again only the sections whose text changed. A planner that reads several
    /// sections at once (a node's data sources are the other nodes of its chain) returns `None`,
    /// the default, and is given every message whole.
    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        None
    }
}

/// The per-section plan of a section-local planner (see [`Planner::section_local`]).
pub trait SectionPlanner: Send + Sync {
    /// The monitor section `section` of a message with `key` asks for: `Ok(None)` when it asks for
    /// none (a disabled section), `Err` when it cannot be used.
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError>;
}

/// The plan [`Planner::section_local`]'s contract defines for a section-local planner:
/// [`SectionPlanner::plan_section`] over `message.sections` in order, each `Ok(Some(spec))` a
/// spec, each `Ok(None)` nothing, each `Err` an error of the plan. A section-local planner's
/// [`Planner::plan`] is this (after its own `accepts` check, if it has one).
pub fn plan_by_section<P: SectionPlanner + ?Sized>(planner: &P, message: &ConfigMessage) -> Plan {
    let mut plan = Plan::default();
    for section in &message.sections {
        match planner.plan_section(&message.key, section) {
            Ok(Some(spec)) => plan.specs.push(spec),
            Ok(None) => {}
            Err(e) => plan.errors.push(e),
        }
    }
    plan
}

/// A stable 64-bit digest of a value's `Hash`, for fingerprints.
pub fn fingerprint<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    // FNV-1a over the Hash stream: stable across runs (std's RandomState is not).
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    value.hash(&mut h);
    h.finish()
}
