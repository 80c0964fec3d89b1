//! The monitored data as Prometheus metrics (`--metrics-addr`, docs/METRICS.md).
//!
//! [`TapBus`] wraps the bus handed to the manager: every `raw_data` publication is forwarded
//! unchanged and, on the way, decoded once into [`DataMetrics`], which keeps the latest figures
//! of each monitor as ready-made samples (family, labels, value), and those samples as
//! `prometheus-client` encoded them, in both exposition formats, family by family. A scrape
//! ([`DataMetrics::write_page`]) copies each monitor's encoded lines under each family's
//! descriptor: no JSON is parsed and nothing is encoded per scrape, and the work of encoding is
//! done once per publication, by the monitor that published.
//!
//! * Each publication replaces what its part last said: the whole monitor for flat envelopes,
//!   one source (`prometheus`, `cosmos_rest`, `tendermint_rpc`, `websocket`) for multi-source
//!   bodies, one node for the contracts monitor. A part whose last envelope was an error has no
//!   data samples: `panic_monitor_up` is 0 and `panic_monitor_last_error_code` says why.
//! * Signed and missed blocks and slashes are counters: each historical entry is counted once
//!   (by height), whatever the number of rounds or re-publications that carry it.
//! * A monitor the manager no longer runs loses all its series ([`DataMetrics::retain`], called
//!   with the manager's status at each scrape).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use monitor_bus::{Bus, BusError, Consumer, LogRetention};
use monitor_core::keys::{RawDataKey, RAW_DATA_EXCHANGE};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};

use crate::metrics::Format;

/// One label: a fixed name and its value.
pub type Label = (&'static str, String);

macro_rules! families {
    ($( $variant:ident => $name:literal, $kind:ident, $help:literal; )*) => {
        /// Every data metric family (names as registered: counters without `_total`, info
        /// families without `_info`; the encoders add the suffixes).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Fam { $(
            #[doc = $help]
            $variant,
        )* }

        impl Fam {
            /// Every family, in page order.
            pub const ALL: &'static [Fam] = &[$(Fam::$variant),*];

            /// The registered name, help text and type.
            pub fn def(self) -> (&'static str, &'static str, MetricType) {
                match self { $(
                    Fam::$variant => ($name, $help, MetricType::$kind),
                )* }
            }
        }
    };
}

families! {
    MonitorUp => "panic_monitor_up", Gauge, "1 when the monitor's last round succeeded (every source), 0 when it published an error.";
    MonitorLastErrorCode => "panic_monitor_last_error_code", Gauge, "PANIC's code of the last error the monitor published (0: none since the manager started).";
    MonitorLastSuccess => "panic_monitor_last_success_timestamp_seconds", Gauge, "When the monitor last published a result (UNIX seconds, the round's meta_data time).";
    SystemInfo => "panic_system", Info, "A system monitor's names: system_name, parent_id, monitor.";
    SystemProcessCpu => "panic_system_process_cpu_seconds", Counter, "CPU time of the node_exporter process (process_cpu_seconds_total).";
    SystemProcessMemory => "panic_system_process_memory_usage_ratio", Gauge, "PANIC's process_memory_usage (go_memstats_alloc_bytes / go_memstats_alloc_bytes_total), as a ratio.";
    SystemVirtualMemory => "panic_system_virtual_memory_bytes", Gauge, "Virtual memory of the node_exporter process (process_virtual_memory_bytes).";
    SystemOpenFds => "panic_system_open_file_descriptors_ratio", Gauge, "Open file descriptors / maximum of the node_exporter process.";
    SystemCpu => "panic_system_cpu_usage_ratio", Gauge, "Busy CPU time / all CPU time over all CPUs since boot.";
    SystemRam => "panic_system_ram_usage_ratio", Gauge, "(MemTotal - MemAvailable) / MemTotal.";
    SystemStorage => "panic_system_storage_usage_ratio", Gauge, "Used / size over all filesystems.";
    SystemNetRx => "panic_system_network_receive_bytes", Counter, "Bytes received over all network devices.";
    SystemNetTx => "panic_system_network_transmit_bytes", Counter, "Bytes transmitted over all network devices.";
    SystemDiskIo => "panic_system_disk_io_time_seconds", Counter, "Time spent doing I/O over all disks.";
    GithubInfo => "panic_github_repo", Info, "A GitHub monitor's names: repo_name, parent_id, monitor.";
    GithubRelease => "panic_github_latest_release", Info, "The newest release on the repository's first releases page: release_name, tag_name.";
    GithubReleaseSeen => "panic_github_latest_release_seen_timestamp_seconds", Gauge, "When this manager process first saw the current latest release tag (UNIX seconds; GitHub's data has no date; a restart moves it).";
    GithubReleases => "panic_github_releases", Gauge, "Releases on the repository's first releases page (at most 30).";
    DockerhubInfo => "panic_dockerhub_repo", Info, "A DockerHub monitor's names: repo_namespace, repo_name, parent_id, monitor.";
    DockerhubTag => "panic_dockerhub_latest_tag", Info, "The most recently updated tag: tag_name.";
    DockerhubTagTime => "panic_dockerhub_latest_tag_timestamp_seconds", Gauge, "When the most recently updated tag was pushed (UNIX seconds).";
    DockerhubTags => "panic_dockerhub_tags", Gauge, "Tags of the repository.";
    EvmInfo => "panic_evm_node", Info, "An EVM node's names: node_name, parent_id, monitor.";
    EvmHeight => "panic_evm_node_block_height", Gauge, "eth_blockNumber.";
    EvmSyncing => "panic_evm_node_syncing", Gauge, "1 when eth_syncing reports the node syncing.";
    ClInfo => "panic_chainlink_node", Info, "A Chainlink node's names: node_name, parent_id, monitor, last_source_used.";
    ClHead => "panic_chainlink_node_head_block_height", Gauge, "head_tracker_current_head.";
    ClHeadsReceived => "panic_chainlink_node_heads_received", Counter, "head_tracker_heads_received_total.";
    ClMaxUnconfirmed => "panic_chainlink_node_max_unconfirmed_blocks", Gauge, "max_unconfirmed_blocks.";
    ClStartTime => "panic_chainlink_node_process_start_time_seconds", Gauge, "process_start_time_seconds of the node.";
    ClUnconfirmedTxs => "panic_chainlink_node_unconfirmed_transactions", Gauge, "unconfirmed_transactions.";
    ClGasBumps => "panic_chainlink_node_gas_bumps", Counter, "tx_manager_num_gas_bumps_total (absent when the node does not export it).";
    ClGasBumpExceeds => "panic_chainlink_node_gas_bump_exceeds_limit", Counter, "tx_manager_gas_bump_exceeds_limit_total (absent when the node does not export it).";
    ClGasPrice => "panic_chainlink_node_gas_price_wei", Gauge, "gas_updater_set_gas_price at its percentile label.";
    ClBalance => "panic_chainlink_node_balance", Gauge, "eth_balance of the node's account, in the chain's native currency (labels address, symbol).";
    ClErroredRuns => "panic_chainlink_node_errored_job_run_series", Gauge, "Label sets of run_status_update_total with status=errored (PANIC's run_status_update_total_errors).";
    CosmosInfo => "panic_cosmos_node", Info, "A Cosmos node's names: node_name, parent_id, monitor, is_validator, operator_address.";
    CosmosHeight => "panic_cosmos_node_block_height", Gauge, "tendermint_consensus_latest_block_height.";
    CosmosPower => "panic_cosmos_node_voting_power", Gauge, "tendermint_consensus_validator_power (0 when absent).";
    CosmosBond => "panic_cosmos_node_bond_status", Info, "The validator's bond status (bonded, unbonding, unbonded, invalid).";
    CosmosJailed => "panic_cosmos_node_jailed", Gauge, "1 when the validator is jailed.";
    CosmosSyncing => "panic_cosmos_node_syncing", Gauge, "1 when Tendermint reports the node catching up.";
    CosmosSentinel => "panic_cosmos_node_peered_with_sentinel", Gauge, "1 when the mev-tendermint node is peered with its sentinel (only for mev nodes).";
    CosmosCheckedHeight => "panic_cosmos_node_checked_block_height", Gauge, "The newest height whose signatures were checked.";
    CosmosActive => "panic_cosmos_node_validator_active", Gauge, "1 when the validator was in the active set at the newest checked height.";
    CosmosSigned => "panic_cosmos_node_signed_blocks", Counter, "Checked blocks the validator signed (while active).";
    CosmosMissed => "panic_cosmos_node_missed_blocks", Counter, "Checked blocks the validator missed while in the active set.";
    CosmosSlashes => "panic_cosmos_node_slashes", Counter, "Slash events against the validator in checked blocks.";
    CosmosSlashedAmount => "panic_cosmos_node_slashed_amount", Counter, "Coins burned by those slashes (the chain's base denomination).";
    CosmosNetInfo => "panic_cosmos_network", Info, "A Cosmos network monitor's names: chain, monitor.";
    CosmosProposals => "panic_cosmos_network_proposals", Gauge, "Governance proposals by status.";
    CosmosLatestProposal => "panic_cosmos_network_latest_proposal_id", Gauge, "The highest proposal id.";
    SubInfo => "panic_substrate_node", Info, "A Substrate node's names: node_name, parent_id, monitor, is_validator, stash_address.";
    SubBest => "panic_substrate_node_best_block_height", Gauge, "system_syncState currentBlock.";
    SubTarget => "panic_substrate_node_target_block_height", Gauge, "system_syncState highestBlock.";
    SubFinalized => "panic_substrate_node_finalized_block_height", Gauge, "The finalized head's number.";
    SubSession => "panic_substrate_node_current_session", Gauge, "Session.CurrentIndex.";
    SubEra => "panic_substrate_node_current_era", Gauge, "Staking.ActiveEra.";
    SubAuthored => "panic_substrate_node_authored_blocks", Gauge, "Blocks the validator authored in the current session.";
    SubActive => "panic_substrate_node_validator_active", Gauge, "1 when the validator is in the active set.";
    SubElected => "panic_substrate_node_validator_elected", Gauge, "1 when the validator is elected for the next era.";
    SubDisabled => "panic_substrate_node_validator_disabled", Gauge, "1 when the validator is disabled.";
    SubHeartbeat => "panic_substrate_node_sent_heartbeat", Gauge, "1 when the validator sent its ImOnline heartbeat this session.";
    SubOffline => "panic_substrate_node_offline", Gauge, "1 when the validator was reported offline in the newest checked block.";
    SubSlashes => "panic_substrate_node_slashes", Counter, "Checked blocks in which the validator was slashed.";
    SubSlashedAmount => "panic_substrate_node_slashed_amount", Counter, "Amount slashed in those blocks (the chain's base unit).";
    SubNetInfo => "panic_substrate_network", Info, "A Substrate network monitor's names: chain, monitor.";
    SubStalled => "panic_substrate_network_grandpa_stalled", Gauge, "1 when Grandpa.Stalled is set.";
    SubPropCount => "panic_substrate_network_public_proposals_made", Gauge, "Public proposals made so far (Democracy.PublicPropCount).";
    SubActiveProps => "panic_substrate_network_active_proposals", Gauge, "Public proposals now.";
    SubRefCount => "panic_substrate_network_referendums_started", Gauge, "Referendums started so far (Democracy.ReferendumCount).";
    SubActiveRefs => "panic_substrate_network_active_referendums", Gauge, "Ongoing referendums.";
    FeedInfo => "panic_chainlink_feed", Info, "A price feed a Chainlink node takes part in: aggregator, description, version.";
    FeedRound => "panic_chainlink_feed_latest_round", Gauge, "latestRoundData roundId.";
    FeedAnswer => "panic_chainlink_feed_latest_answer", Gauge, "latestRoundData answer (the feed's own scale).";
    FeedTime => "panic_chainlink_feed_latest_round_timestamp_seconds", Gauge, "latestRoundData updatedAt.";
    FeedAnsweredIn => "panic_chainlink_feed_answered_in_round", Gauge, "latestRoundData answeredInRound.";
    FeedPayment => "panic_chainlink_feed_payment", Gauge, "withdrawablePayment (v3) or owedPayment (v4) of the node, in the token's smallest unit.";
    FeedObserved => "panic_chainlink_feed_last_round_observed", Gauge, "The last round the node submitted to (absent until it has).";
    FeedMissed => "panic_chainlink_feed_missed_submissions", Counter, "Rounds seen with no submission from the node.";
}

/// A sample: its family, its whole label set and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family.
    pub fam: Fam,
    /// Every label, identity labels first.
    pub labels: Vec<Label>,
    /// The value.
    pub value: f64,
}

/// What is kept of one monitor (PANIC's component name is the key).
#[derive(Debug, Default)]
struct Entry {
    /// The monitor-level labels (`type` and the monitor's id label).
    ident: Vec<Label>,
    up: bool,
    last_error_code: f64,
    last_success: Option<f64>,
    /// The samples of each part (`""` for flat envelopes, a source name, or a node id).
    parts: BTreeMap<String, Vec<Sample>>,
    /// The per-part up state of the last publication of each part.
    part_up: BTreeMap<String, bool>,
    /// Accumulated counters (family, label set) → value.
    counters: BTreeMap<(Fam, Vec<Label>), f64>,
    /// Per part, the newest historical height (or round) already counted.
    counted: BTreeMap<String, f64>,
    /// Per repository: (latest tag, when first seen).
    seen: Option<(String, f64)>,
    /// All of the above as the page shows it, re-encoded at each publication.
    encoded: Arc<Encoded>,
}

/// The latest data of every monitor, fed by [`TapBus`] and written by
/// [`DataMetrics::write_page`].
#[derive(Debug, Default)]
pub struct DataMetrics {
    monitors: Mutex<BTreeMap<String, Entry>>,
}

impl DataMetrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.monitors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take one `raw_data` publication into account. Bodies that are not PANIC envelopes (or of
    /// an unknown key) are ignored: the tap never stands in the way of a publish.
    pub fn observe(&self, routing_key: &str, body: &[u8]) {
        let Some(key) = RawDataKey::ALL
            .into_iter()
            .find(|k| k.as_str() == routing_key)
        else {
            return;
        };
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let mut monitors = self.lock();
        observe(&mut monitors, key, &body);
    }

    /// Forget every monitor whose component name `keep` does not accept.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    /// Monitors kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No monitor kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every sample now, in page order (for tests).
    pub fn samples(&self) -> Vec<Sample> {
        let monitors = self.lock();
        let mut out = Vec::new();
        for entry in monitors.values() {
            for_each_sample(entry, |fam, labels, value| {
                out.push(Sample {
                    fam,
                    labels: labels.to_vec(),
                    value,
                })
            });
        }
        out.sort_by_key(|s| s.fam);
        out
    }

    /// The data families' page in `format`, to be written a piece at a time
    /// ([`PageWriter::fill`]). The lock is held only to take one `Arc` per monitor: what the
    /// monitors publish meanwhile shows at the next scrape.
    pub fn page(&self, format: Format) -> PageWriter {
        let monitors: Vec<Arc<Encoded>> = self
            .lock()
            .values()
            .map(|e| Arc::clone(&e.encoded))
            .collect();
        // One pass over the monitors sorts their lines by family.
        let mut by_fam: Vec<Vec<(u32, Range<u32>)>> = vec![Vec::new(); Fam::ALL.len()];
        for (i, m) in (0u32..).zip(&monitors) {
            for (fam, range) in &m.get(format).fams {
                if let Some(lines) = by_fam.get_mut(*fam as usize) {
                    lines.push((i, range.clone()));
                }
            }
        }
        PageWriter {
            format,
            monitors,
            by_fam,
            fam: 0,
            at: 0,
        }
    }

    /// Write the data families' page in `format` to `out` at once (see [`DataMetrics::page`]).
    pub fn write_page(&self, format: Format, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut page = self.page(format);
        let mut piece = Vec::new();
        while page.fill(&mut piece, 256 * 1024) {
            out.write_all(&piece)?;
            piece.clear();
        }
        out.write_all(&piece)
    }

    /// About how many bytes the data families' page takes in the classic format.
    pub fn page_size_hint(&self) -> usize {
        self.lock().values().map(|e| e.encoded.text.all.len()).sum()
    }
}

/// The data families' page being written ([`DataMetrics::page`]): each family (in [`Fam::ALL`]'s
/// order; one without samples is left out) with its descriptor once, then every monitor's lines
/// of it, as `prometheus-client` encoded them when the monitor last published.
#[derive(Debug)]
pub struct PageWriter {
    format: Format,
    monitors: Vec<Arc<Encoded>>,
    /// Per family (as in [`Fam::ALL`]), the monitors that have lines of it and where they are.
    by_fam: Vec<Vec<(u32, Range<u32>)>>,
    /// The family being written, and the next of its monitors.
    fam: usize,
    at: usize,
}

impl PageWriter {
    /// Append the page's next lines to `out` until it holds at least `at_least` bytes: true if
    /// there is more to come, false once the page is written whole.
    pub fn fill(&mut self, out: &mut Vec<u8>, at_least: usize) -> bool {
        while let Some(lines) = self.by_fam.get(self.fam) {
            while let Some((m, range)) = lines.get(self.at) {
                if out.len() >= at_least {
                    return true;
                }
                if self.at == 0 {
                    let descriptor = descriptors().get(self.fam);
                    out.extend_from_slice(descriptor.map_or("", |d| d.get(self.format)).as_bytes());
                }
                self.at += 1;
                if let Some(m) = self.monitors.get(*m as usize) {
                    out.extend_from_slice(m.get(self.format).of(range).as_bytes());
                }
            }
            self.fam += 1;
            self.at = 0;
        }
        false
    }
}

/// Calls `f` with each sample of one monitor, families in page order.
fn for_each_sample<'a>(entry: &'a Entry, mut f: impl FnMut(Fam, &'a [Label], f64)) {
    f(Fam::MonitorUp, &entry.ident, f64::from(u8::from(entry.up)));
    f(
        Fam::MonitorLastErrorCode,
        &entry.ident,
        entry.last_error_code,
    );
    if let Some(t) = entry.last_success {
        f(Fam::MonitorLastSuccess, &entry.ident, t);
    }
    for samples in entry.parts.values() {
        for s in samples {
            f(s.fam, &s.labels, s.value);
        }
    }
    for ((fam, labels), value) in &entry.counters {
        f(*fam, labels, *value);
    }
}

// ---- encoding ----

/// Text in both exposition formats.
#[derive(Debug, Default, Clone, PartialEq)]
struct BothFormats {
    text: String,
    /// The OpenMetrics form, when it differs from the classic one (`prometheus-client` 0.26
    /// writes gauge, counter and info samples alike in both; a difference is kept as it comes).
    open: Option<String>,
}

impl BothFormats {
    fn get(&self, format: Format) -> &str {
        match (format, &self.open) {
            (Format::OpenMetrics, Some(open)) => open,
            _ => &self.text,
        }
    }
}

/// One monitor's sample lines as `prometheus-client` wrote them when the monitor last
/// published, descriptor lines cut out: a scrape copies them, it encodes nothing.
#[derive(Debug, Default)]
struct Encoded {
    /// In the classic text format.
    text: Lines,
    /// In OpenMetrics, when they differ from `text`.
    open: Option<Lines>,
}

/// Sample lines of one monitor, family after family.
#[derive(Debug, Default)]
struct Lines {
    all: Box<str>,
    /// Each family present, in page order, and where its lines are in `all`.
    fams: Box<[(Fam, Range<u32>)]>,
}

impl Lines {
    /// Cut an encoded page's `#` lines out, and find each family's lines (a family starts at its
    /// `# HELP` line; `fams` are the page's families, in order).
    fn cut(page: &str, fams: &[Fam]) -> Self {
        let mut all = String::with_capacity(page.len());
        let mut at: Vec<(Fam, Range<u32>)> = Vec::with_capacity(fams.len());
        let offset = |s: &String| u32::try_from(s.len()).unwrap_or(u32::MAX);
        let mut next = fams.iter();
        for line in page.split_inclusive('\n') {
            if line.starts_with("# HELP ") {
                if let Some(fam) = next.next() {
                    at.push((*fam, offset(&all)..offset(&all)));
                }
            } else if !line.starts_with('#') {
                all.push_str(line);
                if let Some((_, r)) = at.last_mut() {
                    r.end = offset(&all);
                }
            }
        }
        Lines {
            all: all.into_boxed_str(),
            fams: at.into_boxed_slice(),
        }
    }

    fn of(&self, range: &Range<u32>) -> &str {
        self.all
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
    }
}

impl Encoded {
    fn get(&self, format: Format) -> &Lines {
        match (format, &self.open) {
            (Format::OpenMetrics, Some(open)) => open,
            _ => &self.text,
        }
    }

    /// Encode one monitor's samples (by `prometheus-client`, in both formats).
    fn of(entry: &Entry) -> Self {
        let mut samples: Vec<(Fam, Vec<Label>, f64)> = Vec::new();
        for_each_sample(entry, |fam, labels, value| {
            samples.push((fam, labels.to_vec(), value))
        });
        // Stable: within a family, the order of `for_each_sample`.
        samples.sort_by_key(|s| s.0);
        let mut fams: Vec<Fam> = samples.iter().map(|s| s.0).collect();
        fams.dedup();
        let both = encode_both(SamplesCollector(samples));
        Encoded {
            text: Lines::cut(&both.text, &fams),
            open: both.open.map(|open| Lines::cut(&open, &fams)),
        }
    }
}

/// Encode one collector's families in both formats (OpenMetrics without its `# EOF`).
fn encode_both(collector: impl Collector) -> BothFormats {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut text = String::new();
    let mut open = String::new();
    let encoded = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut open, &registry));
    if let Err(e) = encoded {
        // Writing to a String does not fail; an encoder refusing a value would be a bug here.
        tracing::error!(error = %e, "metrics: encoding failed");
    }
    BothFormats {
        open: (open != text).then_some(open),
        text,
    }
}

/// Each family's `# HELP` and `# TYPE` lines as `prometheus-client` writes them, in both formats
/// (in [`Fam::ALL`]'s order).
fn descriptors() -> &'static [BothFormats] {
    static DESCRIPTORS: OnceLock<Vec<BothFormats>> = OnceLock::new();
    DESCRIPTORS.get_or_init(|| {
        let both = encode_both(DescriptorsCollector);
        let split = |page: &str| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for line in page.split_inclusive('\n') {
                match out.last_mut() {
                    Some(last) if !line.starts_with("# HELP ") => last.push_str(line),
                    _ => out.push(line.to_owned()),
                }
            }
            out
        };
        let text = split(&both.text);
        let open = both.open.as_deref().map(split);
        text.into_iter()
            .enumerate()
            .map(|(i, text)| {
                let open = open.as_ref().and_then(|o| o.get(i)).cloned();
                BothFormats {
                    open: open.filter(|o| *o != text),
                    text,
                }
            })
            .collect()
    })
}

/// `v` as an integer when it is one that an f64 holds exactly.
fn whole(v: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (v.fract() == 0.0 && v.abs() <= EXACT).then_some(v as i64)
}

/// Every family's descriptor and no sample, as a `prometheus-client` collector.
#[derive(Debug)]
struct DescriptorsCollector;

impl Collector for DescriptorsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for fam in Fam::ALL {
            let (name, help, kind) = fam.def();
            encoder.encode_descriptor(name, help, None, kind)?;
        }
        Ok(())
    }
}

/// Samples (family, labels, value), in page order, as a `prometheus-client` collector.
#[derive(Debug)]
struct SamplesCollector(Vec<(Fam, Vec<Label>, f64)>);

impl Collector for SamplesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for group in self.0.chunk_by(|a, b| a.0 == b.0) {
            let (name, help, kind) = group[0].0.def();
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (_, labels, value) in group {
                // A whole number is written as one (`1`, not `1.0`): most values are.
                let whole = whole(*value);
                let mut sample = match kind {
                    MetricType::Info => {
                        family.encode_info(labels)?;
                        continue;
                    }
                    _ => family.encode_family(labels)?,
                };
                match (kind, whole) {
                    (MetricType::Counter, Some(v)) => match u64::try_from(v) {
                        Ok(v) => sample.encode_counter::<NoLabelSet, u64, f64>(&v, None)?,
                        Err(_) => sample.encode_counter::<NoLabelSet, f64, f64>(value, None)?,
                    },
                    (MetricType::Counter, None) => {
                        sample.encode_counter::<NoLabelSet, f64, f64>(value, None)?
                    }
                    (_, Some(v)) => sample.encode_gauge(&v)?,
                    (_, None) => sample.encode_gauge(value)?,
                }
            }
        }
        Ok(())
    }
}

// ---- decoding ----

/// A JSON value as a label value: a string as it is, `""` for null or nothing, other values as
/// JSON (`true`, `4`).
fn label_value(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// A meta_data field as a label value.
fn s(meta: &Map<String, Value>, key: &str) -> String {
    label_value(meta.get(key))
}

/// A number from a JSON number, a bool, a decimal or `0x` hex string; `None` for anything else.
fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(t) => {
            let t = t.trim();
            if let Some(hex) = t.strip_prefix("0x") {
                u128::from_str_radix(hex, 16).ok().map(|n| n as f64)
            } else {
                t.parse::<f64>().ok()
            }
        }
        _ => None,
    }
}

/// The envelope's meta_data, and its data (`None` for an error, with the error's code).
struct Env<'a> {
    meta: &'a Map<String, Value>,
    data: Result<&'a Value, f64>,
}

fn envelope(v: &Value) -> Option<Env<'_>> {
    let o = v.as_object()?;
    if let Some(r) = o.get("result").and_then(Value::as_object) {
        return Some(Env {
            meta: r.get("meta_data")?.as_object()?,
            data: Ok(r.get("data").unwrap_or(&Value::Null)),
        });
    }
    let e = o.get("error")?.as_object()?;
    Some(Env {
        meta: e.get("meta_data")?.as_object()?,
        data: Err(num(e.get("code")).unwrap_or(0.0)),
    })
}

/// The type label and id labels of a monitor, from one envelope's meta_data.
fn ident(key: RawDataKey, meta: &Map<String, Value>) -> Vec<Label> {
    let mut l: Vec<Label> = vec![("type", key.to_string())];
    match key {
        RawDataKey::System => l.push(("system_id", s(meta, "system_id"))),
        RawDataKey::Github | RawDataKey::Dockerhub => l.push(("repo_id", s(meta, "repo_id"))),
        RawDataKey::ChainlinkContracts
        | RawDataKey::CosmosNetwork
        | RawDataKey::SubstrateNetwork => {
            let parent = match s(meta, "parent_id") {
                p if p.is_empty() => s(meta, "node_parent_id"),
                p => p,
            };
            l.push(("parent_id", parent));
        }
        _ => l.push(("node_id", s(meta, "node_id"))),
    }
    l
}

/// The labels of the per-monitor data series: the id labels without `type`.
fn id_labels(ident: &[Label]) -> Vec<Label> {
    ident.iter().skip(1).cloned().collect()
}

fn observe(monitors: &mut BTreeMap<String, Entry>, key: RawDataKey, body: &Value) {
    // (part name, envelope): a flat envelope is its own part; a multi-source body has one per
    // source (an empty object: the source is not monitored).
    let parts: Vec<(String, Env<'_>)> = match envelope(body) {
        Some(env) => {
            let part = match (key, &env.data) {
                (RawDataKey::ChainlinkContracts, Ok(_)) => s(env.meta, "node_id"),
                (RawDataKey::ChainlinkContracts, Err(_)) => "error".to_owned(),
                _ => String::new(),
            };
            vec![(part, env)]
        }
        None => body
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(source, v)| envelope(v).map(|e| (source.clone(), e)))
            .collect(),
    };
    let Some((_, first)) = parts.first() else {
        return;
    };
    let name = s(first.meta, "monitor_name");
    if name.is_empty() {
        return;
    }
    let entry = monitors.entry(name.clone()).or_default();
    entry.ident = ident(key, first.meta);
    let ids = id_labels(&entry.ident);
    if key == RawDataKey::ChainlinkContracts {
        // An error of the whole monitor voids every node's figures; a node's result voids the
        // error.
        if parts.iter().any(|(_, e)| e.data.is_err()) {
            entry.parts.clear();
            entry.part_up.clear();
        } else {
            entry.part_up.remove("error");
        }
    }
    for (part, env) in &parts {
        let mut out = Out {
            ids: &ids,
            samples: Vec::new(),
        };
        info(key, env.meta, &name, &mut out);
        if !out.samples.is_empty() {
            entry.parts.insert(INFO_PART.to_owned(), out.samples);
        }
        match env.data {
            Ok(data) => {
                entry.part_up.insert(part.clone(), true);
                if let Some(t) = num(env.meta.get("time")) {
                    entry.last_success = Some(entry.last_success.map_or(t, |l| l.max(t)));
                }
                let mut out = Out {
                    ids: &ids,
                    samples: Vec::new(),
                };
                decode(key, part, env.meta, data, &mut out, entry);
                entry.parts.insert(part.clone(), out.samples);
            }
            Err(code) => {
                entry.part_up.insert(part.clone(), false);
                entry.last_error_code = code;
                entry.parts.remove(part);
            }
        }
    }
    entry.up = entry.part_up.values().all(|up| *up);
    entry.encoded = Arc::new(Encoded::of(entry));
}

/// The part holding a monitor's `_info` series (its names), refreshed by every envelope.
const INFO_PART: &str = "#info";

/// Reads a figure from a JSON field.
type Reader = fn(Option<&Value>) -> Option<f64>;

struct Out<'a> {
    ids: &'a [Label],
    samples: Vec<Sample>,
}

impl Out<'_> {
    fn push(&mut self, fam: Fam, extra: Vec<Label>, value: Option<f64>) {
        if let Some(value) = value {
            let mut labels = self.ids.to_vec();
            labels.extend(extra);
            self.samples.push(Sample { fam, labels, value });
        }
    }
    fn gauge(&mut self, fam: Fam, value: Option<f64>) {
        self.push(fam, Vec::new(), value);
    }
    /// One sample a family (no extra labels), each read from a field of `data`.
    fn fields(&mut self, data: &Value, table: &[(Fam, &str, Reader)]) {
        for (fam, field, read) in table {
            self.gauge(*fam, read(data.get(*field)));
        }
    }
    fn info(&mut self, fam: Fam, extra: Vec<Label>) {
        self.push(fam, extra, Some(1.0));
    }
}

/// A percentage as a ratio, shifted in decimal so that PANIC's `37.92` is `0.3792` (not
/// `0.37920000000000006`).
fn pct(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => format!("{n}e-2").parse().ok(),
        other => num(Some(other)).map(|p| p / 100.0),
    }
}

/// Where a label of an `_info` series comes from: the monitor's name, or a meta_data field.
#[derive(Clone, Copy)]
enum Src {
    Name,
    Meta(&'static str),
}

/// An `_info` family and its labels: the first ones (name, where from), then meta_data fields
/// under their own names.
type InfoLabels = (Fam, &'static [(&'static str, Src)], &'static [&'static str]);

/// The `_info` family of each monitor type and its labels, in order.
fn info_labels(key: RawDataKey) -> Option<InfoLabels> {
    use Src::{Meta, Name};
    const NODE: [(&str, Src); 3] = [
        ("node_name", Meta("node_name")),
        ("parent_id", Meta("node_parent_id")),
        ("monitor", Name),
    ];
    const NETWORK: &[(&str, Src)] = &[("chain", Meta("chain_name")), ("monitor", Name)];
    Some(match key {
        RawDataKey::System => (
            Fam::SystemInfo,
            &[
                ("system_name", Meta("system_name")),
                ("parent_id", Meta("system_parent_id")),
                ("monitor", Name),
            ],
            &[],
        ),
        RawDataKey::Github => (
            Fam::GithubInfo,
            &[
                ("repo_name", Meta("repo_name")),
                ("parent_id", Meta("repo_parent_id")),
                ("monitor", Name),
            ],
            &[],
        ),
        RawDataKey::Dockerhub => (
            Fam::DockerhubInfo,
            &[
                ("repo_namespace", Meta("repo_namespace")),
                ("repo_name", Meta("repo_name")),
                ("parent_id", Meta("repo_parent_id")),
                ("monitor", Name),
            ],
            &[],
        ),
        RawDataKey::EvmNode => (Fam::EvmInfo, &NODE, &[]),
        RawDataKey::ChainlinkNode => (Fam::ClInfo, &NODE, &["last_source_used"]),
        RawDataKey::CosmosNode => (
            Fam::CosmosInfo,
            &NODE,
            &["is_validator", "operator_address"],
        ),
        RawDataKey::SubstrateNode => (Fam::SubInfo, &NODE, &["is_validator", "stash_address"]),
        RawDataKey::CosmosNetwork => (Fam::CosmosNetInfo, NETWORK, &[]),
        RawDataKey::SubstrateNetwork => (Fam::SubNetInfo, NETWORK, &[]),
        RawDataKey::ChainlinkContracts => return None,
    })
}

/// The `_info` series with the monitor's names (published with results and errors alike; a
/// boolean such as `is_validator` reads `true` or `false`).
fn info(key: RawDataKey, meta: &Map<String, Value>, name: &str, out: &mut Out<'_>) {
    if let Some((fam, first, same_named)) = info_labels(key) {
        let labels = first
            .iter()
            .map(|(label, from)| match from {
                Src::Name => (*label, name.to_owned()),
                Src::Meta(k) => (*label, s(meta, k)),
            })
            .chain(same_named.iter().map(|k| (*k, s(meta, k))))
            .collect();
        out.info(fam, labels);
    }
}

fn decode(
    key: RawDataKey,
    part: &str,
    meta: &Map<String, Value>,
    data: &Value,
    out: &mut Out<'_>,
    entry: &mut Entry,
) {
    let d = |k: &str| data.get(k);
    match key {
        RawDataKey::System => {
            out.fields(
                data,
                &[
                    (Fam::SystemProcessCpu, "process_cpu_seconds_total", num),
                    (Fam::SystemProcessMemory, "process_memory_usage", pct),
                    (Fam::SystemVirtualMemory, "virtual_memory_usage", num),
                    (Fam::SystemOpenFds, "open_file_descriptors", pct),
                    (Fam::SystemCpu, "system_cpu_usage", pct),
                    (Fam::SystemRam, "system_ram_usage", pct),
                    (Fam::SystemStorage, "system_storage_usage", pct),
                    (Fam::SystemNetRx, "network_receive_bytes_total", num),
                    (Fam::SystemNetTx, "network_transmit_bytes_total", num),
                    (Fam::SystemDiskIo, "disk_io_time_seconds_total", num),
                ],
            );
        }
        RawDataKey::Github => {
            let releases = data.as_object();
            out.gauge(Fam::GithubReleases, releases.map(|r| r.len() as f64));
            if let Some(latest) = releases.and_then(|r| r.get("0")) {
                let tag = text(latest, "tag_name");
                out.info(
                    Fam::GithubRelease,
                    vec![
                        ("release_name", text(latest, "release_name")),
                        ("tag_name", tag.clone()),
                    ],
                );
                let now = num(meta.get("time")).unwrap_or(0.0);
                let seen = match &entry.seen {
                    Some((t, at)) if *t == tag => *at,
                    _ => now,
                };
                entry.seen = Some((tag, seen));
                out.gauge(Fam::GithubReleaseSeen, Some(seen));
            }
        }
        RawDataKey::Dockerhub => {
            let tags = data.as_object();
            out.gauge(Fam::DockerhubTags, tags.map(|t| t.len() as f64));
            let newest =
                tags.into_iter()
                    .flat_map(|t| t.values())
                    .fold(None::<(&Value, f64)>, |best, t| {
                        match (best, num(t.get("last_updated"))) {
                            (Some((_, b)), Some(u)) if u <= b => best,
                            (_, Some(u)) => Some((t, u)),
                            (best, None) => best,
                        }
                    });
            if let Some((tag, at)) = newest {
                out.info(Fam::DockerhubTag, vec![("tag_name", text(tag, "tag_name"))]);
                out.gauge(Fam::DockerhubTagTime, Some(at));
            }
        }
        RawDataKey::EvmNode => {
            out.fields(
                data,
                &[
                    (Fam::EvmHeight, "current_height", num),
                    (Fam::EvmSyncing, "syncing", num),
                ],
            );
        }
        RawDataKey::ChainlinkNode => {
            out.fields(
                data,
                &[
                    (Fam::ClHead, "head_tracker_current_head", num),
                    (
                        Fam::ClHeadsReceived,
                        "head_tracker_heads_received_total",
                        num,
                    ),
                    (Fam::ClMaxUnconfirmed, "max_unconfirmed_blocks", num),
                    (Fam::ClStartTime, "process_start_time_seconds", num),
                    (Fam::ClUnconfirmedTxs, "unconfirmed_transactions", num),
                    (Fam::ClGasBumps, "tx_manager_num_gas_bumps_total", num),
                    (
                        Fam::ClGasBumpExceeds,
                        "tx_manager_gas_bump_exceeds_limit_total",
                        num,
                    ),
                ],
            );
            if let Some(g) = d("gas_updater_set_gas_price") {
                out.push(
                    Fam::ClGasPrice,
                    vec![("percentile", text(g, "percentile"))],
                    num(g.get("price")),
                );
            }
            if let Some(b) = d("balance") {
                out.push(
                    Fam::ClBalance,
                    vec![
                        ("address", text(b, "address")),
                        ("symbol", text(b, "symbol")),
                    ],
                    num(b.get("balance")),
                );
            }
            out.gauge(Fam::ClErroredRuns, num(d("run_status_update_total_errors")));
        }
        RawDataKey::CosmosNode => match part {
            "prometheus" => {
                out.fields(
                    data,
                    &[
                        (
                            Fam::CosmosHeight,
                            "tendermint_consensus_latest_block_height",
                            num,
                        ),
                        (
                            Fam::CosmosPower,
                            "tendermint_consensus_validator_power",
                            num,
                        ),
                    ],
                );
            }
            "cosmos_rest" => {
                if let Some(Value::String(status)) = d("bond_status") {
                    out.info(Fam::CosmosBond, vec![("bond_status", status.clone())]);
                }
                out.gauge(Fam::CosmosJailed, num(d("jailed")));
            }
            "tendermint_rpc" => {
                out.gauge(Fam::CosmosSyncing, num(d("is_syncing")));
                out.gauge(Fam::CosmosSentinel, num(d("is_peered_with_sentinel")));
                let history = d("historical").and_then(Value::as_array);
                if let Some(newest) = history.and_then(|h| h.first()) {
                    out.gauge(Fam::CosmosCheckedHeight, num(newest.get("height")));
                    out.gauge(Fam::CosmosActive, num(newest.get("active_in_prev_block")));
                }
                let ids = out.ids.to_vec();
                let c = Counting::new(entry, part, &ids);
                c.count(
                    history.map(Vec::as_slice).unwrap_or(&[]),
                    "height",
                    |e, add| {
                        let active = e.get("active_in_prev_block") == Some(&Value::Bool(true));
                        let signed = e.get("signed_prev_block") == Some(&Value::Bool(true));
                        add(Fam::CosmosSigned, f64::from(u8::from(signed)));
                        add(Fam::CosmosMissed, f64::from(u8::from(active && !signed)));
                        let slashed = e.get("slashed") == Some(&Value::Bool(true));
                        add(Fam::CosmosSlashes, f64::from(u8::from(slashed)));
                        add(
                            Fam::CosmosSlashedAmount,
                            num(e.get("slashed_amount")).unwrap_or(0.0),
                        );
                    },
                );
            }
            _ => {}
        },
        RawDataKey::CosmosNetwork => {
            let proposals = d("proposals").and_then(Value::as_array);
            let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
            let mut latest: Option<f64> = None;
            for p in proposals.into_iter().flatten() {
                *by_status.entry(text(p, "status")).or_default() += 1.0;
                if let Some(id) = num(p.get("proposal_id")) {
                    latest = Some(latest.map_or(id, |l| l.max(id)));
                }
            }
            for (status, n) in by_status {
                out.push(Fam::CosmosProposals, vec![("status", status)], Some(n));
            }
            out.gauge(Fam::CosmosLatestProposal, latest);
        }
        RawDataKey::SubstrateNode => {
            out.fields(
                data,
                &[
                    (Fam::SubBest, "best_height", num),
                    (Fam::SubTarget, "target_height", num),
                    (Fam::SubFinalized, "finalized_height", num),
                    (Fam::SubSession, "current_session", num),
                    (Fam::SubEra, "current_era", num),
                    (Fam::SubAuthored, "authored_blocks", num),
                    (Fam::SubActive, "active", num),
                    (Fam::SubElected, "elected", num),
                    (Fam::SubDisabled, "disabled", num),
                    (Fam::SubHeartbeat, "sent_heartbeat", num),
                ],
            );
            let history = d("historical").and_then(Value::as_array);
            if let Some(newest) = history.and_then(|h| h.first()) {
                out.gauge(Fam::SubOffline, num(newest.get("is_offline")));
            }
            let ids = out.ids.to_vec();
            let c = Counting::new(entry, part, &ids);
            c.count(
                history.map(Vec::as_slice).unwrap_or(&[]),
                "height",
                |e, add| {
                    let slashed = e.get("slashed") == Some(&Value::Bool(true));
                    add(Fam::SubSlashes, f64::from(u8::from(slashed)));
                    add(
                        Fam::SubSlashedAmount,
                        num(e.get("slashed_amount")).unwrap_or(0.0),
                    );
                },
            );
        }
        RawDataKey::SubstrateNetwork => {
            out.gauge(
                Fam::SubStalled,
                match d("grandpa_stalled") {
                    Some(Value::Null) | None => Some(0.0),
                    Some(_) => Some(1.0),
                },
            );
            out.fields(
                data,
                &[
                    (Fam::SubPropCount, "public_prop_count", num),
                    (Fam::SubActiveProps, "active_proposals", len_or_num),
                    (Fam::SubRefCount, "referendum_count", num),
                    (Fam::SubActiveRefs, "active_referendums", len_or_num),
                ],
            );
        }
        RawDataKey::ChainlinkContracts => {
            let node = ("node_id", s(meta, "node_id"));
            let feeds = data.as_object().into_iter().flatten();
            for (proxy, f) in feeds {
                let labels = vec![node.clone(), ("proxy", proxy.clone())];
                out.push(
                    Fam::FeedInfo,
                    [
                        labels.clone(),
                        vec![
                            ("aggregator", text(f, "aggregatorAddress")),
                            ("description", text(f, "description")),
                            ("version", text(f, "contractVersion")),
                        ],
                    ]
                    .concat(),
                    Some(1.0),
                );
                let payment = f.get("withdrawablePayment").or(f.get("owedPayment"));
                for (fam, v) in [
                    (Fam::FeedRound, f.get("latestRound")),
                    (Fam::FeedAnswer, f.get("latestAnswer")),
                    (Fam::FeedTime, f.get("latestTimestamp")),
                    (Fam::FeedAnsweredIn, f.get("answeredInRound")),
                    (Fam::FeedPayment, payment),
                    (Fam::FeedObserved, f.get("lastRoundObserved")),
                ] {
                    out.push(fam, labels.clone(), num(v));
                }
                let mut ids = out.ids.to_vec();
                ids.extend(labels);
                let rounds = f
                    .get("historicalRounds")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                // Rounds without consensus yet are counted when they have it (re-published).
                let decided: Vec<Value> = rounds
                    .iter()
                    .filter(|r| !r.get("roundAnswer").is_some_and(Value::is_null))
                    .cloned()
                    .collect();
                let c = Counting::new(entry, &format!("{}/{proxy}", node.1), &ids);
                c.count(&decided, "roundId", |r, add| {
                    let missed = r.get("nodeSubmission").is_none_or(Value::is_null);
                    add(Fam::FeedMissed, f64::from(u8::from(missed)));
                });
            }
        }
    }
}

fn len_or_num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Array(a) => Some(a.len() as f64),
        Value::Object(o) => Some(o.len() as f64),
        other => num(Some(other)),
    }
}

/// A field of `v` as a label value.
fn text(v: &Value, key: &str) -> String {
    label_value(v.get(key))
}

/// Adds historical entries to counters once each: only entries above the newest already counted
/// for this part (by `order_key`, e.g. the height) are added.
struct Counting<'a> {
    entry: &'a mut Entry,
    part: String,
    labels: &'a [Label],
}

impl<'a> Counting<'a> {
    fn new(entry: &'a mut Entry, part: &str, labels: &'a [Label]) -> Self {
        Counting {
            entry,
            part: part.to_owned(),
            labels,
        }
    }

    fn count(self, items: &[Value], order_key: &str, f: impl Fn(&Value, &mut dyn FnMut(Fam, f64))) {
        let done = self.entry.counted.get(&self.part).copied();
        let mut newest = done;
        for item in items {
            let Some(k) = num(item.get(order_key)) else {
                continue;
            };
            if done.is_some_and(|d| k <= d) {
                continue;
            }
            newest = Some(newest.map_or(k, |n| n.max(k)));
            let counters = &mut self.entry.counters;
            let labels = self.labels;
            f(item, &mut |fam, v| {
                *counters.entry((fam, labels.to_vec())).or_default() += v;
            });
        }
        if let Some(n) = newest {
            self.entry.counted.insert(self.part, n);
        }
    }
}

// ---- the tapping bus ----

/// A [`Bus`] that forwards everything to `inner` and shows each `raw_data` publication to a
/// [`DataMetrics`] first (so the figures do not wait for a slow broker).
pub struct TapBus {
    inner: Arc<dyn Bus>,
    data: Arc<DataMetrics>,
}

impl std::fmt::Debug for TapBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapBus").finish_non_exhaustive()
    }
}

impl TapBus {
    /// Tap `inner` into `data`.
    pub fn new(inner: Arc<dyn Bus>, data: Arc<DataMetrics>) -> Self {
        TapBus { inner, data }
    }
}

#[async_trait]
impl Bus for TapBus {
    async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.inner.declare_exchange(exchange).await
    }
    async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        self.inner.declare_queue(queue).await
    }
    async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        binding_key: &str,
    ) -> Result<(), BusError> {
        self.inner.bind_queue(queue, exchange, binding_key).await
    }
    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        self.inner.delete_queue(queue).await
    }
    async fn delete_exchange(&self, exchange: &str) -> Result<(), BusError> {
        self.inner.delete_exchange(exchange).await
    }
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
    ) -> Result<(), BusError> {
        if exchange == RAW_DATA_EXCHANGE {
            self.data.observe(routing_key, &body);
        }
        self.inner.publish(exchange, routing_key, body).await
    }
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.inner.consume(queue, prefetch).await
    }
    async fn declare_log_queue(
        &self,
        queue: &str,
        retention: LogRetention,
    ) -> Result<(), BusError> {
        self.inner.declare_log_queue(queue, retention).await
    }
    async fn consume_log(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.inner.consume_log(queue, prefetch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every sample as `name{labels} value` lines, classic-text style (for exact comparisons).
    fn lines(data: &DataMetrics) -> Vec<String> {
        data.samples()
            .into_iter()
            .map(|s| {
                let (name, _, kind) = s.fam.def();
                let suffix = match kind {
                    MetricType::Counter => "_total",
                    MetricType::Info => "_info",
                    _ => "",
                };
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                format!("{name}{suffix}{{{}}} {}", labels.join(","), s.value)
            })
            .collect()
    }

    fn feed(data: &DataMetrics, key: RawDataKey, body: &Value) {
        data.observe(key.as_str(), body.to_string().as_bytes());
    }

    fn assert_has(lines: &[String], expected: &[&str]) {
        for e in expected {
            assert!(
                lines.iter().any(|l| l == e),
                "missing `{e}` in\n{}",
                lines.join("\n")
            );
        }
    }

    #[tokio::test]
    async fn system_round_on_the_node_exporter_fixture() {
        use monitor_core::{Monitor, PeriodGroup};
        use monitor_strategies::testing::{Reply, TestServer};
        use monitor_strategies::{StrategySettings, SystemConfig, SystemMonitor, Target};
        let fixture = std::fs::read("../../shared/fixtures/node_exporter/metrics.txt").unwrap();
        let server = TestServer::start().await.unwrap();
        server.route("/metrics", Reply::ok(fixture));
        let settings = StrategySettings::default();
        let http = settings
            .http(Target::Monitored, PeriodGroup::System)
            .unwrap();
        let config = SystemConfig {
            system_id: "system_1".to_owned(),
            parent_id: "GENERAL".to_owned(),
            system_name: "validator_host".to_owned(),
            exporter_url: server.url("/metrics"),
        };
        let mut monitor = SystemMonitor::new(config, http);
        let data = DataMetrics::new();
        for p in monitor.round().await.unwrap() {
            data.observe(p.routing_key.as_str(), p.body.to_string().as_bytes());
        }
        let l = lines(&data);
        let id = r#"system_id="system_1""#;
        assert_has(
            &l,
            &[
                &format!(r#"panic_monitor_up{{type="system",{id}}} 1"#),
                &format!(r#"panic_monitor_last_error_code{{type="system",{id}}} 0"#),
                &format!(
                    r#"panic_system_info{{{id},system_name="validator_host",parent_id="GENERAL",monitor="System monitor (validator_host)"}} 1"#
                ),
                // fixtures/SOURCES.md: PANIC's figures for this scrape.
                &format!("panic_system_process_cpu_seconds_total{{{id}}} 2.67"),
                &format!("panic_system_process_memory_usage_ratio{{{id}}} 0.084"),
                &format!("panic_system_virtual_memory_bytes{{{id}}} 735645696"),
                &format!("panic_system_open_file_descriptors_ratio{{{id}}} 0.00000858306884765625"),
            ],
        );
        assert!(l
            .iter()
            .any(|x| x.starts_with("panic_monitor_last_success_timestamp_seconds")));
        assert_eq!(l.len(), 14, "{l:#?}");
    }

    fn system_error(code: u16, time: f64) -> Value {
        json!({"error": {"meta_data": {"monitor_name": "System monitor (h)", "system_name": "h",
            "system_id": "s1", "system_parent_id": "GENERAL", "time": time},
            "message": "System h is unreachable", "code": code}})
    }

    fn system_result(time: f64, storage: f64) -> Value {
        json!({"result": {"meta_data": {"monitor_name": "System monitor (h)", "system_name": "h",
            "system_id": "s1", "system_parent_id": "GENERAL", "time": time},
            "data": {"process_cpu_seconds_total": 1.0, "process_memory_usage": 0.0,
                "virtual_memory_usage": 1.0, "open_file_descriptors": 1.0,
                "system_cpu_usage": 1.0, "system_ram_usage": 1.0,
                "system_storage_usage": storage, "network_receive_bytes_total": 1.0,
                "network_transmit_bytes_total": 1.0, "disk_io_time_seconds_total": 1.0}}})
    }

    #[test]
    fn an_error_clears_the_figures_and_keeps_up_code_and_last_success() {
        let data = DataMetrics::new();
        feed(&data, RawDataKey::System, &system_result(100.0, 91.5));
        assert_has(
            &lines(&data),
            &[r#"panic_system_storage_usage_ratio{system_id="s1"} 0.915"#],
        );
        feed(&data, RawDataKey::System, &system_error(5004, 160.0));
        let l = lines(&data);
        assert_has(
            &l,
            &[
                r#"panic_monitor_up{type="system",system_id="s1"} 0"#,
                r#"panic_monitor_last_error_code{type="system",system_id="s1"} 5004"#,
                r#"panic_monitor_last_success_timestamp_seconds{type="system",system_id="s1"} 100"#,
                r#"panic_system_info{system_id="s1",system_name="h",parent_id="GENERAL",monitor="System monitor (h)"} 1"#,
            ],
        );
        assert!(!l.iter().any(|x| x.contains("storage")), "{l:#?}");
        feed(&data, RawDataKey::System, &system_result(220.0, 10.0));
        assert_has(
            &lines(&data),
            &[r#"panic_monitor_up{type="system",system_id="s1"} 1"#],
        );
        // A removed monitor loses every series.
        data.retain(|name| name != "System monitor (h)");
        assert!(data.samples().is_empty());
    }

    #[test]
    fn github_and_dockerhub_latest_release_and_tag() {
        let data = DataMetrics::new();
        let meta = json!({"monitor_name": "GitHub monitor (SimplyVC/panic/)",
            "repo_name": "SimplyVC/panic/", "repo_id": "repo_1", "repo_parent_id": "GENERAL",
            "time": 500.0});
        // The first two releases of monitor-strategies/tests/it/github.rs's EXPECTED_DATA.
        let body = json!({"result": {"meta_data": meta, "data": {
            "0": {"release_name": "3.1.3", "tag_name": "3.1.3"},
            "1": {"release_name": "3.1.1", "tag_name": "3.1.1"}}}});
        feed(&data, RawDataKey::Github, &body);
        let mut later = body.clone();
        later["result"]["meta_data"]["time"] = json!(800.0);
        feed(&data, RawDataKey::Github, &later);
        let id = r#"repo_id="repo_1""#;
        assert_has(
            &lines(&data),
            &[
                &format!(
                    r#"panic_github_latest_release_info{{{id},release_name="3.1.3",tag_name="3.1.3"}} 1"#
                ),
                // First seen at 500, not moved by a later round with the same tag.
                &format!("panic_github_latest_release_seen_timestamp_seconds{{{id}}} 500"),
                &format!("panic_github_releases{{{id}}} 2"),
            ],
        );
        let mut newer = later.clone();
        newer["result"]["data"]["0"] = json!({"release_name": "3.2.0", "tag_name": "3.2.0"});
        newer["result"]["meta_data"]["time"] = json!(900.0);
        feed(&data, RawDataKey::Github, &newer);
        assert_has(
            &lines(&data),
            &[&format!(
                "panic_github_latest_release_seen_timestamp_seconds{{{id}}} 900"
            )],
        );

        // dockerhub.rs EXPECTED_DATA's first three tags (index order is DockerHub's).
        let body = json!({"result": {"meta_data": {"monitor_name": "DockerHub monitor (simplyvc/panic)",
            "repo_namespace": "simplyvc", "repo_name": "panic", "repo_id": "d1",
            "repo_parent_id": "GENERAL", "time": 1.0}, "data": {
            "0": {"tag_name": "latest", "last_updated": 1669720007.785765},
            "1": {"tag_name": "v1.5.0", "last_updated": 1669719953.107911},
            "2": {"tag_name": "master", "last_updated": 1669653669.33402}}}});
        feed(&data, RawDataKey::Dockerhub, &body);
        assert_has(
            &lines(&data),
            &[
                r#"panic_dockerhub_latest_tag_info{repo_id="d1",tag_name="latest"} 1"#,
                r#"panic_dockerhub_latest_tag_timestamp_seconds{repo_id="d1"} 1669720007.785765"#,
                r#"panic_dockerhub_tags{repo_id="d1"} 3"#,
                r#"panic_dockerhub_repo_info{repo_id="d1",repo_namespace="simplyvc",repo_name="panic",parent_id="GENERAL",monitor="DockerHub monitor (simplyvc/panic)"} 1"#,
            ],
        );
    }

    fn node_meta(name: &str, id: &str) -> Value {
        json!({"monitor_name": format!("Node monitor ({name})"), "node_name": name,
            "node_id": id, "node_parent_id": "chain_1", "time": 10.0})
    }

    #[test]
    fn evm_and_chainlink_nodes() {
        let data = DataMetrics::new();
        // evm_node.rs.
        let body = json!({"result": {"meta_data": node_meta("evm_1", "e1"),
            "data": {"current_height": 15_985_432, "syncing": false}}});
        feed(&data, RawDataKey::EvmNode, &body);
        // chainlink_node.rs: fixture_with_fail_over_gives_panics_numbers.
        let mut meta = node_meta("chainlink_1", "node_cl_1");
        meta["last_source_used"] = json!("http://10.0.1.1/metrics");
        let data_json: Value = serde_json::from_str(concat!(
            r#"{"head_tracker_current_head":15985432.0,"head_tracker_heads_received_total":84213.0,"#,
            r#""max_unconfirmed_blocks":0.0,"process_start_time_seconds":1668497852.41,"#,
            r#""tx_manager_num_gas_bumps_total":57.0,"tx_manager_gas_bump_exceeds_limit_total":0.0,"#,
            r#""unconfirmed_transactions":1.0,"#,
            r#""gas_updater_set_gas_price":{"percentile":"60%","price":32000000000.0},"#,
            r#""balance":{"address":"0x0E4B07e9175686DaE5014743503E5D8ADa8E55A3","balance":2.3401873340598,"symbol":"ETH"},"#,
            r#""run_status_update_total_errors":3}"#
        ))
        .unwrap();
        let body = json!({"prometheus": {"result": {"meta_data": meta, "data": data_json}}});
        feed(&data, RawDataKey::ChainlinkNode, &body);
        let e = r#"node_id="e1""#;
        let c = r#"node_id="node_cl_1""#;
        assert_has(
            &lines(&data),
            &[
                &format!("panic_evm_node_block_height{{{e}}} 15985432"),
                &format!("panic_evm_node_syncing{{{e}}} 0"),
                &format!(r#"panic_monitor_up{{type="node.chainlink",{c}}} 1"#),
                &format!("panic_chainlink_node_head_block_height{{{c}}} 15985432"),
                &format!("panic_chainlink_node_heads_received_total{{{c}}} 84213"),
                &format!("panic_chainlink_node_gas_bumps_total{{{c}}} 57"),
                &format!("panic_chainlink_node_gas_bump_exceeds_limit_total{{{c}}} 0"),
                &format!(
                    r#"panic_chainlink_node_gas_price_wei{{{c},percentile="60%"}} 32000000000"#
                ),
                &format!(
                    r#"panic_chainlink_node_balance{{{c},address="0x0E4B07e9175686DaE5014743503E5D8ADa8E55A3",symbol="ETH"}} 2.3401873340598"#
                ),
                &format!("panic_chainlink_node_errored_job_run_series{{{c}}} 3"),
                &format!("panic_chainlink_node_process_start_time_seconds{{{c}}} 1668497852.41"),
            ],
        );
    }

    fn cosmos_body(historical: Value, rest: Value) -> Value {
        let mut meta = node_meta("cosmos_1", "c1");
        meta["is_validator"] = json!(true);
        meta["operator_address"] = json!("cosmosvaloper1x");
        let mut tm_meta = meta.clone();
        tm_meta["is_mev_tendermint_node"] = json!(false);
        json!({
            "prometheus": {"result": {"meta_data": meta, "data": {
                "tendermint_consensus_latest_block_height": 9_000_000.0,
                "tendermint_consensus_validator_power": 42.0}}},
            "cosmos_rest": rest,
            "tendermint_rpc": {"result": {"meta_data": tm_meta, "data": {
                "is_syncing": false, "is_peered_with_sentinel": true, "historical": historical}}}
        })
    }

    #[test]
    fn cosmos_node_counts_each_height_once() {
        let data = DataMetrics::new();
        let meta = node_meta("cosmos_1", "c1");
        let rest = json!({"result": {"meta_data": meta, "data": {"bond_status": "unbonding", "jailed": true}}});
        // cosmos/node.rs's entry for H, then a missed block at H+1 (newest first).
        let h = json!({"height": 100, "active_in_prev_block": true, "signed_prev_block": true,
            "slashed": true, "slashed_amount": 62_500_000_000u64});
        let h1 = json!({"height": 101, "active_in_prev_block": true, "signed_prev_block": false,
            "slashed": false, "slashed_amount": null});
        feed(
            &data,
            RawDataKey::CosmosNode,
            &cosmos_body(json!([h]), rest.clone()),
        );
        // The same height again (e.g. a re-published round), and the next one.
        feed(
            &data,
            RawDataKey::CosmosNode,
            &cosmos_body(json!([h1, h]), rest.clone()),
        );
        let c = r#"node_id="c1""#;
        assert_has(
            &lines(&data),
            &[
                &format!(r#"panic_monitor_up{{type="node.cosmos",{c}}} 1"#),
                &format!("panic_cosmos_node_block_height{{{c}}} 9000000"),
                &format!("panic_cosmos_node_voting_power{{{c}}} 42"),
                &format!(r#"panic_cosmos_node_bond_status_info{{{c},bond_status="unbonding"}} 1"#),
                &format!("panic_cosmos_node_jailed{{{c}}} 1"),
                &format!("panic_cosmos_node_syncing{{{c}}} 0"),
                &format!("panic_cosmos_node_checked_block_height{{{c}}} 101"),
                &format!("panic_cosmos_node_validator_active{{{c}}} 1"),
                &format!("panic_cosmos_node_signed_blocks_total{{{c}}} 1"),
                &format!("panic_cosmos_node_missed_blocks_total{{{c}}} 1"),
                &format!("panic_cosmos_node_slashes_total{{{c}}} 1"),
                &format!("panic_cosmos_node_slashed_amount_total{{{c}}} 62500000000"),
                &format!(
                    r#"panic_cosmos_node_info{{{c},node_name="cosmos_1",parent_id="chain_1",monitor="Node monitor (cosmos_1)",is_validator="true",operator_address="cosmosvaloper1x"}} 1"#
                ),
            ],
        );
        // One source failing: down, its figures gone, the others kept.
        let err = json!({"error": {"meta_data": meta, "message": "x", "code": 5024}});
        feed(&data, RawDataKey::CosmosNode, &cosmos_body(json!([]), err));
        let l = lines(&data);
        assert_has(
            &l,
            &[
                &format!(r#"panic_monitor_up{{type="node.cosmos",{c}}} 0"#),
                &format!(r#"panic_monitor_last_error_code{{type="node.cosmos",{c}}} 5024"#),
                &format!("panic_cosmos_node_block_height{{{c}}} 9000000"),
                &format!("panic_cosmos_node_signed_blocks_total{{{c}}} 1"),
            ],
        );
        assert!(!l.iter().any(|x| x.contains("jailed")), "{l:#?}");
    }

    #[test]
    fn cosmos_network_proposals_by_status() {
        let data = DataMetrics::new();
        let meta = json!({"monitor_name": "Network monitor (cosmoshub)", "parent_id": "chain_c",
            "chain_name": "cosmoshub", "time": 1.0});
        let p = |id: &str, status: &str| json!({"proposal_id": id, "title": "t", "status": status});
        let body = json!({"cosmos_rest": {"result": {"meta_data": meta, "data": {"proposals": [
            p("1", "passed"), p("2", "rejected"), p("3", "passed"), p("4", "voting_period")]}}}});
        feed(&data, RawDataKey::CosmosNetwork, &body);
        let id = r#"parent_id="chain_c""#;
        assert_has(
            &lines(&data),
            &[
                &format!(r#"panic_cosmos_network_proposals{{{id},status="passed"}} 2"#),
                &format!(r#"panic_cosmos_network_proposals{{{id},status="voting_period"}} 1"#),
                &format!("panic_cosmos_network_latest_proposal_id{{{id}}} 4"),
                &format!(
                    r#"panic_cosmos_network_info{{{id},chain="cosmoshub",monitor="Network monitor (cosmoshub)"}} 1"#
                ),
            ],
        );
    }

    #[test]
    fn substrate_node_and_network() {
        let data = DataMetrics::new();
        let mut meta = node_meta("polkadot_1", "p1");
        meta["is_validator"] = json!(true);
        meta["stash_address"] = json!("1abc");
        let body = json!({"websocket": {"result": {"meta_data": meta, "data": {
            "best_height": 20_000_100, "target_height": 20_000_101, "finalized_height": 20_000_098,
            "current_session": 9000, "current_era": 1500, "authored_blocks": 2, "active": true,
            "elected": true, "disabled": false, "sent_heartbeat": true,
            "eras_stakers": {"total": "0x10", "own": 1, "others": []},
            "historical": [
                {"height": 20_000_098, "slashed": true, "slashed_amount": "0x64", "is_offline": false},
                {"height": 20_000_097, "slashed": false, "slashed_amount": 0, "is_offline": true}]}}}});
        feed(&data, RawDataKey::SubstrateNode, &body);
        let net = json!({"websocket": {"result": {"meta_data": {"monitor_name": "Network monitor (polkadot)",
            "parent_id": "chain_p", "chain_name": "polkadot", "time": 1.0,
            "governance_addresses": []}, "data": {"grandpa_stalled": null, "public_prop_count": 3,
            "active_proposals": [{}, {}], "referendum_count": 12, "active_referendums": [{}],
            "all_referendums": {}}}}});
        feed(&data, RawDataKey::SubstrateNetwork, &net);
        let n = r#"node_id="p1""#;
        let c = r#"parent_id="chain_p""#;
        assert_has(
            &lines(&data),
            &[
                &format!("panic_substrate_node_best_block_height{{{n}}} 20000100"),
                &format!("panic_substrate_node_finalized_block_height{{{n}}} 20000098"),
                &format!("panic_substrate_node_validator_active{{{n}}} 1"),
                &format!("panic_substrate_node_validator_disabled{{{n}}} 0"),
                &format!("panic_substrate_node_offline{{{n}}} 0"),
                &format!("panic_substrate_node_slashes_total{{{n}}} 1"),
                &format!("panic_substrate_node_slashed_amount_total{{{n}}} 100"),
                &format!("panic_substrate_network_grandpa_stalled{{{c}}} 0"),
                &format!("panic_substrate_network_public_proposals_made{{{c}}} 3"),
                &format!("panic_substrate_network_active_proposals{{{c}}} 2"),
                &format!("panic_substrate_network_referendums_started{{{c}}} 12"),
                &format!("panic_substrate_network_active_referendums{{{c}}} 1"),
            ],
        );
    }

    fn contracts_body(node: &str, rounds: Value) -> Value {
        // chainlink_contracts.rs's v4 entry shape.
        json!({"result": {"meta_data": {"monitor_name": "Chainlink contracts monitor (ethereum)",
            "node_name": node, "node_id": node, "node_parent_id": "chain_eth", "time": 3.0},
            "data": {"0xProxy": {"contractVersion": 4, "aggregatorAddress": "0xAgg",
                "description": "ETH / USD", "latestRound": 2, "latestAnswer": 2020,
                "latestTimestamp": 1700000000, "answeredInRound": 2, "owedPayment": 5,
                "lastRoundObserved": 1, "historicalRounds": rounds}}}})
    }

    #[test]
    fn contracts_per_node_and_feed() {
        let data = DataMetrics::new();
        let r = |id: u64, sub: Value| {
            json!({"roundId": id, "roundAnswer": 2020,
            "roundTimestamp": 1, "answeredInRound": id, "nodeSubmission": sub,
            "noOfObservations": 3, "noOfTransmitters": 4})
        };
        feed(
            &data,
            RawDataKey::ChainlinkContracts,
            &contracts_body("n1", json!([r(1, json!(2019)), r(2, Value::Null)])),
        );
        feed(
            &data,
            RawDataKey::ChainlinkContracts,
            &contracts_body("n2", json!([])),
        );
        feed(
            &data,
            RawDataKey::ChainlinkContracts,
            &contracts_body("n1", json!([r(2, Value::Null)])),
        );
        let f = r#"parent_id="chain_eth",node_id="n1",proxy="0xProxy""#;
        let l = lines(&data);
        assert_has(
            &l,
            &[
                r#"panic_monitor_up{type="contracts.chainlink",parent_id="chain_eth"} 1"#,
                &format!(
                    r#"panic_chainlink_feed_info{{{f},aggregator="0xAgg",description="ETH / USD",version="4"}} 1"#
                ),
                &format!("panic_chainlink_feed_latest_round{{{f}}} 2"),
                &format!("panic_chainlink_feed_latest_answer{{{f}}} 2020"),
                &format!("panic_chainlink_feed_latest_round_timestamp_seconds{{{f}}} 1700000000"),
                &format!("panic_chainlink_feed_payment{{{f}}} 5"),
                &format!("panic_chainlink_feed_last_round_observed{{{f}}} 1"),
                &format!("panic_chainlink_feed_missed_submissions_total{{{f}}} 1"),
                r#"panic_chainlink_feed_latest_round{parent_id="chain_eth",node_id="n2",proxy="0xProxy"} 2"#,
            ],
        );
        let err = json!({"error": {"meta_data": {"monitor_name": "Chainlink contracts monitor (ethereum)",
            "node_parent_id": "chain_eth", "time": 4.0}, "message": "no EVM node", "code": 5019}});
        feed(&data, RawDataKey::ChainlinkContracts, &err);
        let l = lines(&data);
        assert_has(
            &l,
            &[
                r#"panic_monitor_up{type="contracts.chainlink",parent_id="chain_eth"} 0"#,
                r#"panic_monitor_last_error_code{type="contracts.chainlink",parent_id="chain_eth"} 5019"#,
            ],
        );
        assert!(!l.iter().any(|x| x.contains("latest_round{")), "{l:#?}");
    }

    #[test]
    fn what_is_not_an_envelope_is_ignored() {
        let data = DataMetrics::new();
        data.observe("system", b"not json");
        data.observe("system", b"{\"result\": 1}");
        data.observe(
            "unknown.key",
            system_result(1.0, 1.0).to_string().as_bytes(),
        );
        feed(
            &data,
            RawDataKey::CosmosNode,
            &json!({"prometheus": {}, "cosmos_rest": {}}),
        );
        assert!(data.is_empty());
    }

    /// One publication of every monitor type, error envelopes included, with label values that
    /// need escaping.
    fn every_type() -> DataMetrics {
        let data = DataMetrics::new();
        feed(&data, RawDataKey::System, &system_result(1.0, 95.0));
        let mut odd = system_error(5004, 2.0);
        odd["error"]["meta_data"]["monitor_name"] = json!("System monitor (a \"quoted\" \\ name)");
        odd["error"]["meta_data"]["system_name"] = json!("a \"quoted\" \\ name\nwith a newline");
        odd["error"]["meta_data"]["system_id"] = json!("s2");
        feed(&data, RawDataKey::System, &odd);
        feed(
            &data,
            RawDataKey::Github,
            &json!({"result": {"meta_data": {"monitor_name": "GitHub monitor (o/r/)",
            "repo_name": "o/r/", "repo_id": "g1", "repo_parent_id": "GENERAL", "time": 1.0},
            "data": {"0": {"release_name": "v1", "tag_name": "v1"}}}}),
        );
        feed(
            &data,
            RawDataKey::Dockerhub,
            &json!({"result": {"meta_data": {"monitor_name": "DockerHub monitor (n/r)",
            "repo_namespace": "n", "repo_name": "r", "repo_id": "d1", "repo_parent_id": "GENERAL",
            "time": 1.0}, "data": {"0": {"tag_name": "latest", "last_updated": 1669720007.785765}}}}),
        );
        feed(
            &data,
            RawDataKey::EvmNode,
            &json!({"result": {"meta_data": node_meta("evm_1", "e1"),
            "data": {"current_height": 15_985_432, "syncing": true}}}),
        );
        let mut cl = node_meta("chainlink_1", "l1");
        cl["last_source_used"] = json!("http://10.0.1.1/metrics");
        feed(
            &data,
            RawDataKey::ChainlinkNode,
            &json!({"prometheus": {"result": {"meta_data": cl, "data": {
            "head_tracker_current_head": 1.0, "head_tracker_heads_received_total": 2.0,
            "max_unconfirmed_blocks": 0.0, "process_start_time_seconds": 3.0,
            "tx_manager_num_gas_bumps_total": 4.0, "tx_manager_gas_bump_exceeds_limit_total": 0.0,
            "unconfirmed_transactions": 1.0,
            "gas_updater_set_gas_price": {"percentile": "20%", "price": 5e9},
            "balance": {"address": "0xabc", "balance": 26.04, "symbol": "TEST"},
            "run_status_update_total_errors": 8}}}}),
        );
        let h = json!({"height": 100, "active_in_prev_block": true, "signed_prev_block": false,
            "slashed": true, "slashed_amount": 5});
        let rest = json!({"result": {"meta_data": node_meta("cosmos_1", "c1"),
            "data": {"bond_status": "bonded", "jailed": false}}});
        feed(
            &data,
            RawDataKey::CosmosNode,
            &cosmos_body(json!([h]), rest),
        );
        feed(
            &data,
            RawDataKey::CosmosNetwork,
            &json!({"cosmos_rest": {"result": {"meta_data": {
            "monitor_name": "Network monitor (hub)", "parent_id": "chain_c", "chain_name": "hub",
            "time": 1.0}, "data": {"proposals": [{"proposal_id": "7", "status": "passed"}]}}}}),
        );
        let mut sub = node_meta("dot_1", "p1");
        sub["is_validator"] = json!(false);
        sub["stash_address"] = json!("");
        feed(
            &data,
            RawDataKey::SubstrateNode,
            &json!({"websocket": {"result": {"meta_data": sub, "data": {
            "best_height": 10, "target_height": 12, "finalized_height": 8, "current_session": 1,
            "current_era": 1, "authored_blocks": 0, "active": false, "elected": false,
            "disabled": false, "sent_heartbeat": false,
            "historical": [{"height": 8, "slashed": false, "slashed_amount": 0, "is_offline": false}]}}}}),
        );
        feed(
            &data,
            RawDataKey::SubstrateNetwork,
            &json!({"websocket": {"result": {"meta_data": {
            "monitor_name": "Network monitor (dot)", "parent_id": "chain_p", "chain_name": "dot",
            "time": 1.0}, "data": {"grandpa_stalled": true, "public_prop_count": 1,
            "active_proposals": [], "referendum_count": 2, "active_referendums": []}}}}),
        );
        let r = json!([{"roundId": 1, "roundAnswer": 5, "roundTimestamp": 1, "answeredInRound": 1,
            "nodeSubmission": null}]);
        feed(
            &data,
            RawDataKey::ChainlinkContracts,
            &contracts_body("n1", r),
        );
        data
    }

    /// The data families' page, as a scrape writes it.
    fn page(data: DataMetrics, openmetrics: bool) -> String {
        let format = if openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let mut out = Vec::new();
        data.write_page(format, &mut out).unwrap();
        let mut page = String::from_utf8(out).unwrap();
        if openmetrics {
            prometheus_client::encoding::text::encode_eof(&mut page).unwrap();
        }
        page
    }

    /// The page a scrape writes from the lines kept per monitor is, to the byte, what
    /// `prometheus-client` writes of every sample at once, in both formats; and it follows new
    /// publications and removals.
    #[test]
    fn the_kept_lines_are_what_prometheus_client_encodes_of_every_sample() {
        let data = every_type();
        let check = |data: &DataMetrics| {
            let samples = data
                .samples()
                .into_iter()
                .map(|s| (s.fam, s.labels, s.value))
                .collect();
            let both = encode_both(SamplesCollector(samples));
            for format in [Format::Text, Format::OpenMetrics] {
                let mut out = Vec::new();
                data.write_page(format, &mut out).unwrap();
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    both.get(format),
                    "{format:?}"
                );
            }
        };
        check(&data);
        feed(&data, RawDataKey::System, &system_result(3.0, 42.0));
        assert!(page(DataMetrics::new(), false).is_empty());
        check(&data);
        data.retain(|name| name != "System monitor (h)");
        check(&data);
        data.retain(|_| false);
        check(&data);
    }

    /// Every family is on the page, and Debian's `promtool check metrics` (Prometheus 2.42,
    /// installed by scripts/ensure-services.sh) finds nothing to say about it.
    #[test]
    fn a_page_with_every_type_passes_promtool() {
        use std::io::Write as _;
        let text = page(every_type(), false);
        for fam in Fam::ALL {
            let (name, _, kind) = fam.def();
            let (suffix, type_name) = match kind {
                MetricType::Counter => ("_total", "counter"),
                MetricType::Info => ("_info", "gauge"),
                _ => ("", "gauge"),
            };
            let line = format!("# TYPE {name}{suffix} {type_name}\n");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(
            text.contains(r#"system_name="a \"quoted\" \\ name\nwith a newline""#),
            "{text}"
        );
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian's prometheus package; scripts/ensure-services.sh)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {out:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let open = page(every_type(), true);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE panic_system info\n"), "{open}");
        assert!(
            open.contains("# TYPE panic_cosmos_node_signed_blocks counter\n"),
            "{open}"
        );
    }
}
