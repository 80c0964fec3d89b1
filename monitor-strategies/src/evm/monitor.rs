//! The EVM node monitor (spec §4.4, PANIC's `monitors/node/evm.py`), flat envelope on `node.evm`:
//!
//! * success → `{current_height: int, syncing: bool}` from `eth_blockNumber` and `eth_syncing`;
//! * node unreachable or too slow → 5015; body unreadable, not JSON-RPC, a JSON-RPC error object or a
//!   result of the wrong shape → 5005; bad URL → 5009.

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::rpc::{JsonRpc, RpcError};
use crate::http::{Http, HttpErrorKind};

/// One EVM node to monitor (`evm_nodes_config` section).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EvmNodeConfig {
    /// `id`
    pub node_id: String,
    /// `parent_id`
    pub parent_id: String,
    /// `name`
    pub node_name: String,
    /// `node_http_url`
    pub node_http_url: String,
}

/// PANIC's component name for a node: `Node monitor (<name>)`.
pub(crate) fn node_component_name(node_name: &str) -> String {
    format!("Node monitor ({node_name})")
}

/// The EVM node monitor strategy.
#[derive(Debug)]
pub struct EvmNodeMonitor {
    name: String,
    config: EvmNodeConfig,
    rpc: JsonRpc,
}

impl EvmNodeMonitor {
    /// A monitor for `config`; `http` should come from
    /// [`StrategySettings::evm_http`](crate::StrategySettings::evm_http).
    pub fn new(config: EvmNodeConfig, http: Http) -> Self {
        EvmNodeMonitor {
            name: node_component_name(&config.node_name),
            rpc: JsonRpc::new(http, &config.node_http_url),
            config,
        }
    }

    /// The config.
    pub fn config(&self) -> &EvmNodeConfig {
        &self.config
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("node_name", self.config.node_name.as_str())
            .with("node_id", self.config.node_id.as_str())
            .with("node_parent_id", self.config.parent_id.as_str())
            .timed()
    }

    async fn retrieve(&self) -> Result<Value, RpcError> {
        // One connection for both calls, also to a host without a keep-alive place: the first
        // leaves it open, the second closes it (see `ConnectionLimits::max_held`).
        let hold = self.rpc.hold();
        let current_height = self.rpc.block_number_with(hold.is_some()).await?;
        let syncing = self.rpc.syncing().await?;
        if let Some(hold) = hold {
            hold.finish();
        }
        let mut data = Map::new();
        data.insert("current_height".to_owned(), Value::from(current_height));
        data.insert("syncing".to_owned(), Value::from(syncing));
        Ok(Value::Object(data))
    }

    fn map_error(&self, err: &RpcError) -> PanicError {
        match err {
            RpcError::Http(e) => match e.kind {
                HttpErrorKind::Down => PanicError::node_is_down(&self.config.node_name),
                HttpErrorKind::Read => PanicError::data_reading(&self.name, &self.config.node_name),
                HttpErrorKind::InvalidUrl => PanicError::invalid_url(&self.config.node_http_url),
            },
            RpcError::Rpc { .. } | RpcError::BadAnswer { .. } => {
                PanicError::data_reading(&self.name, &self.config.node_name)
            }
        }
    }
}

#[async_trait]
impl Monitor for EvmNodeMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = match self.retrieve().await {
            Ok(data) => {
                debug!(monitor = %self.name, data = %data, "evm node data");
                Ok(data)
            }
            Err(e) => {
                warn!(monitor = %self.name, error = %e, "error when retrieving data");
                Err(self.map_error(&e))
            }
        };
        let body = envelope(self.meta_data(), outcome);
        Ok(vec![Publication::new(RawDataKey::EvmNode, body)])
    }
}
