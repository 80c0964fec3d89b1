//! Exchange names and every routing key of PANIC's wire contract, in one place.
//!
//! Config routing keys are parsed into a [`ConfigKey`] (chain, base chain, sub chain, config type) and
//! built back with [`ConfigKey::routing_key`]; monitorable keys are `<base_chain>.<type>`
//! ([`MonitorableKey`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `config` exchange: configs from the config manager to the monitors managers.
pub const CONFIG_EXCHANGE: &str = "config";
/// The `raw_data` exchange: monitors' results and errors to the data transformers.
pub const RAW_DATA_EXCHANGE: &str = "raw_data";
/// The `health_check` exchange: pings to components, heartbeats to the heartbeat handler.
pub const HEALTH_CHECK_EXCHANGE: &str = "health_check";
/// The `monitorable` exchange: monitorables lists from managers to the monitorable store.
pub const MONITORABLE_EXCHANGE: &str = "monitorable";
/// The `store` exchange (transformers to stores; declared for completeness).
pub const STORE_EXCHANGE: &str = "store";
/// The `alert` exchange (alerters to the router; declared for completeness).
pub const ALERT_EXCHANGE: &str = "alert";

/// Every exchange the monitors side declares (all durable topic exchanges).
pub const MONITORS_EXCHANGES: [&str; 4] = [
    CONFIG_EXCHANGE,
    RAW_DATA_EXCHANGE,
    HEALTH_CHECK_EXCHANGE,
    MONITORABLE_EXCHANGE,
];

/// Routing key of a ping (body: the raw string `ping`).
pub const PING_ROUTING_KEY: &str = "ping";
/// Routing key of worker heartbeats (monitors, stores).
pub const HEARTBEAT_WORKER_ROUTING_KEY: &str = "heartbeat.worker";
/// Routing key of manager heartbeats (in reply to a ping).
pub const HEARTBEAT_MANAGER_ROUTING_KEY: &str = "heartbeat.manager";
/// Binding of the heartbeat handler's queue.
pub const HEARTBEAT_BINDING: &str = "heartbeat.*";
/// Binding of the monitorable store's queue.
pub const MONITORABLE_BINDING: &str = "*.*";

/// Queue the monitors manager consumes configs from.
pub const MANAGER_CONFIGS_QUEUE: &str = "monitors_manager_configs_queue";
/// Queue the monitors manager consumes pings from.
pub const MANAGER_HEARTBEAT_QUEUE: &str = "monitors_manager_heartbeat_queue";
/// Queue the monitorable store consumes from.
pub const MONITORABLE_STORE_INPUT_QUEUE: &str = "monitorable_store_input_queue";
/// Queue the heartbeat handler consumes from.
pub const HEARTBEAT_HANDLER_QUEUE: &str = "heartbeat_handler_heartbeat_queue";

/// Every config binding key of PANIC's six monitors managers (spec §2.3), deduplicated.
pub const MANAGER_CONFIG_BINDINGS: [&str; 8] = [
    "general.systems_config",
    "general.github_repos_config",
    "general.dockerhub_repos_config",
    "chains.*.*.systems_config",
    "chains.*.*.nodes_config",
    "chains.*.*.evm_nodes_config",
    "chains.*.*.github_repos_config",
    "chains.*.*.dockerhub_repos_config",
];

/// The raw-data routing key of each monitor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RawDataKey {
    /// `system`
    System,
    /// `github`
    Github,
    /// `dockerhub`
    Dockerhub,
    /// `node.chainlink`
    ChainlinkNode,
    /// `node.evm`
    EvmNode,
    /// `node.cosmos`
    CosmosNode,
    /// `node.substrate`
    SubstrateNode,
    /// `contracts.chainlink`
    ChainlinkContracts,
    /// `network.cosmos`
    CosmosNetwork,
    /// `network.substrate`
    SubstrateNetwork,
}

impl RawDataKey {
    /// Every raw-data key.
    pub const ALL: [RawDataKey; 10] = [
        RawDataKey::System,
        RawDataKey::Github,
        RawDataKey::Dockerhub,
        RawDataKey::ChainlinkNode,
        RawDataKey::EvmNode,
        RawDataKey::CosmosNode,
        RawDataKey::SubstrateNode,
        RawDataKey::ChainlinkContracts,
        RawDataKey::CosmosNetwork,
        RawDataKey::SubstrateNetwork,
    ];

    /// The routing key as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RawDataKey::System => "system",
            RawDataKey::Github => "github",
            RawDataKey::Dockerhub => "dockerhub",
            RawDataKey::ChainlinkNode => "node.chainlink",
            RawDataKey::EvmNode => "node.evm",
            RawDataKey::CosmosNode => "node.cosmos",
            RawDataKey::SubstrateNode => "node.substrate",
            RawDataKey::ChainlinkContracts => "contracts.chainlink",
            RawDataKey::CosmosNetwork => "network.cosmos",
            RawDataKey::SubstrateNetwork => "network.substrate",
        }
    }
}

impl fmt::Display for RawDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A config type: the last part of a config routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigType {
    /// `systems_config`
    SystemsConfig,
    /// `nodes_config`
    NodesConfig,
    /// `evm_nodes_config`
    EvmNodesConfig,
    /// `github_repos_config`
    GithubReposConfig,
    /// `dockerhub_repos_config`
    DockerhubReposConfig,
    /// `alerts_config` (not consumed by monitors; parsed so that it is recognised)
    AlertsConfig,
}

impl ConfigType {
    /// The name as it appears in routing keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::SystemsConfig => "systems_config",
            ConfigType::NodesConfig => "nodes_config",
            ConfigType::EvmNodesConfig => "evm_nodes_config",
            ConfigType::GithubReposConfig => "github_repos_config",
            ConfigType::DockerhubReposConfig => "dockerhub_repos_config",
            ConfigType::AlertsConfig => "alerts_config",
        }
    }
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConfigType {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "systems_config" => ConfigType::SystemsConfig,
            "nodes_config" => ConfigType::NodesConfig,
            "evm_nodes_config" => ConfigType::EvmNodesConfig,
            "github_repos_config" => ConfigType::GithubReposConfig,
            "dockerhub_repos_config" => ConfigType::DockerhubReposConfig,
            "alerts_config" => ConfigType::AlertsConfig,
            other => return Err(KeyError::UnknownConfigType(other.to_owned())),
        })
    }
}

/// A malformed routing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key has neither the `general.<type>` nor the `chains.<base>.<sub>.<type>` shape.
    #[error(
        "routing key `{0}` is not a config key (`general.<type>` or `chains.<base>.<sub>.<type>`)"
    )]
    NotAConfigKey(String),
    /// The last part is not a known config type.
    #[error("unknown config type `{0}`")]
    UnknownConfigType(String),
    /// A monitorable key is not `<base_chain>.<type>` with a known type.
    #[error("routing key `{0}` is not a monitorable key (`<base_chain>.<type>`)")]
    NotAMonitorableKey(String),
}

/// The literal chain, base chain and sub chain of `general.*` configs.
pub const GENERAL: &str = "general";

/// A parsed config routing key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    /// Base chain: `general`, `cosmos`, `substrate`, `chainlink`, … (lower-case as sent).
    pub base_chain: String,
    /// Sub chain: `general` for general configs, else the chain's name.
    pub sub_chain: String,
    /// The config type.
    pub config_type: ConfigType,
}

impl ConfigKey {
    /// Parse `general.<type>` or `chains.<base>.<sub>.<type>`.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            [GENERAL, ty] => Ok(ConfigKey {
                base_chain: GENERAL.to_owned(),
                sub_chain: GENERAL.to_owned(),
                config_type: ty.parse()?,
            }),
            ["chains", base, sub, ty] if !base.is_empty() && !sub.is_empty() => Ok(ConfigKey {
                base_chain: (*base).to_owned(),
                sub_chain: (*sub).to_owned(),
                config_type: ty.parse()?,
            }),
            _ => Err(KeyError::NotAConfigKey(key.to_owned())),
        }
    }

    /// A general config key.
    pub fn general(config_type: ConfigType) -> Self {
        ConfigKey {
            base_chain: GENERAL.to_owned(),
            sub_chain: GENERAL.to_owned(),
            config_type,
        }
    }

    /// A chain config key.
    pub fn chain(base_chain: &str, sub_chain: &str, config_type: ConfigType) -> Self {
        ConfigKey {
            base_chain: base_chain.to_owned(),
            sub_chain: sub_chain.to_owned(),
            config_type,
        }
    }

    /// Whether this is a `general.*` key.
    pub fn is_general(&self) -> bool {
        self.base_chain == GENERAL && self.sub_chain == GENERAL
    }

    /// PANIC's `chain` string: `general`, or `"<base> <sub>"`.
    pub fn chain_name(&self) -> String {
        if self.is_general() {
            GENERAL.to_owned()
        } else {
            format!("{} {}", self.base_chain, self.sub_chain)
        }
    }

    /// The routing key this was parsed from.
    pub fn routing_key(&self) -> String {
        if self.is_general() {
            format!("{GENERAL}.{}", self.config_type)
        } else {
            format!(
                "chains.{}.{}.{}",
                self.base_chain, self.sub_chain, self.config_type
            )
        }
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.routing_key())
    }
}

/// The type part of a monitorable routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorableType {
    /// `systems`
    Systems,
    /// `nodes`
    Nodes,
    /// `github_repos`
    GithubRepos,
    /// `dockerhub_repos`
    DockerhubRepos,
    /// `chains`
    Chains,
}

impl MonitorableType {
    /// Every monitorable type, in the order of PANIC's document template.
    pub const ALL: [MonitorableType; 5] = [
        MonitorableType::Systems,
        MonitorableType::Nodes,
        MonitorableType::GithubRepos,
        MonitorableType::DockerhubRepos,
        MonitorableType::Chains,
    ];

    /// The name as it appears in routing keys and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorableType::Systems => "systems",
            MonitorableType::Nodes => "nodes",
            MonitorableType::GithubRepos => "github_repos",
            MonitorableType::DockerhubRepos => "dockerhub_repos",
            MonitorableType::Chains => "chains",
        }
    }
}

impl fmt::Display for MonitorableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MonitorableType {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MonitorableType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| KeyError::NotAMonitorableKey(s.to_owned()))
    }
}

/// A monitorable routing key `<base_chain>.<type>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorableKey {
    /// Base chain, lower-case.
    pub base_chain: String,
    /// Monitorable type.
    pub monitorable_type: MonitorableType,
}

impl MonitorableKey {
    /// Build a key.
    pub fn new(base_chain: &str, monitorable_type: MonitorableType) -> Self {
        MonitorableKey {
            base_chain: base_chain.to_lowercase(),
            monitorable_type,
        }
    }

    /// Parse `<base_chain>.<type>`; empty parts and unknown types are errors
    /// (`newbasechain.invalid`, `.nodes`, `cosmos.`).
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let err = || KeyError::NotAMonitorableKey(key.to_owned());
        let (base, ty) = key.split_once('.').ok_or_else(err)?;
        if base.is_empty() || ty.is_empty() || ty.contains('.') {
            return Err(err());
        }
        let monitorable_type = ty.parse().map_err(|_| err())?;
        Ok(MonitorableKey::new(base, monitorable_type))
    }

    /// The routing key.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.base_chain, self.monitorable_type)
    }
}

impl fmt::Display for MonitorableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.routing_key())
    }
}

/// Whether a topic `pattern` (`*` = one word, `#` = zero or more words) matches `key`, with
/// RabbitMQ's semantics.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&"*", rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((word, rest)) => k.first() == Some(word) && go(rest, &k[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_round_trip() {
        for key in [
            "general.systems_config",
            "general.github_repos_config",
            "chains.cosmos.cosmoshub.nodes_config",
            "chains.chainlink.bsc.evm_nodes_config",
            "chains.substrate.polkadot.systems_config",
        ] {
            let parsed = ConfigKey::parse(key).unwrap();
            assert_eq!(parsed.routing_key(), key);
        }
        let k = ConfigKey::parse("chains.cosmos.cosmoshub.nodes_config").unwrap();
        assert_eq!(k.base_chain, "cosmos");
        assert_eq!(k.sub_chain, "cosmoshub");
        assert_eq!(k.config_type, ConfigType::NodesConfig);
        assert_eq!(k.chain_name(), "cosmos cosmoshub");
        assert_eq!(
            ConfigKey::parse("general.systems_config")
                .unwrap()
                .chain_name(),
            "general"
        );
    }

    #[test]
    fn bad_config_keys() {
        for key in [
            "",
            "general",
            "general.foo",
            "chains.cosmos.nodes_config",
            "chains..hub.nodes_config",
            "chains.cosmos.hub.nodes_config.extra",
            "channels.telegram_config",
        ] {
            assert!(ConfigKey::parse(key).is_err(), "{key}");
        }
    }

    #[test]
    fn monitorable_keys() {
        let k = MonitorableKey::parse("cosmos.nodes").unwrap();
        assert_eq!(k.monitorable_type, MonitorableType::Nodes);
        assert_eq!(
            MonitorableKey::parse("General.systems").unwrap().base_chain,
            "general"
        );
        for bad in [
            "newbasechain.invalid",
            ".nodes",
            "cosmos.",
            "cosmos",
            "a.b.c",
        ] {
            assert!(MonitorableKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics() {
        assert!(topic_matches(
            "chains.*.*.nodes_config",
            "chains.cosmos.hub.nodes_config"
        ));
        assert!(!topic_matches(
            "chains.*.*.nodes_config",
            "chains.cosmos.nodes_config"
        ));
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("a.#.c", "a.b.b.c"));
        assert!(topic_matches("a.#.c", "a.c"));
        assert!(topic_matches("*.*", "cosmos.nodes"));
        assert!(!topic_matches("*.*", "cosmos"));
        assert!(topic_matches("heartbeat.*", "heartbeat.worker"));
        assert!(!topic_matches("heartbeat.*", "heartbeat"));
        assert!(topic_matches("system", "system"));
        assert!(!topic_matches("system", "systems"));
    }
}
