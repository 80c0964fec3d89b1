//! PANIC's error codes 5000–5034 and their message templates (`utils/exceptions.py` of PANIC
//! v1.3.1). Downstream transformers and alerters branch on the code, so codes are wire contract;
//! the messages follow PANIC's templates word for word where PANIC's text is known.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of PANIC's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u16)]
#[allow(missing_docs)] // each variant is named after PANIC's exception class
pub enum ErrorCode {
    ConnectionNotInitialised = 5000,
    MessageWasNotDelivered = 5001,
    NoMetricsGiven = 5002,
    MetricNotFound = 5003,
    SystemIsDown = 5004,
    DataReading = 5005,
    CannotAccessGitHubPage = 5006,
    GitHubApiCall = 5007,
    ReceivedUnexpectedData = 5008,
    InvalidUrl = 5009,
    ParentIdsMissMatchInAlertsConfiguration = 5010,
    MissingKeyInConfig = 5011,
    JsonDecode = 5012,
    BlankCredential = 5013,
    EnabledSourceIsEmpty = 5014,
    NodeIsDown = 5015,
    InvalidDictSchema = 5016,
    ComponentNotGivenEnoughDataSources = 5017,
    CouldNotRetrieveContracts = 5018,
    NoSyncedDataSourceWasAccessible = 5019,
    DockerHubApiCall = 5020,
    CannotAccessDockerHubPage = 5021,
    CosmosSdkVersionIncompatible = 5022,
    CosmosRestServerDataCouldNotBeObtained = 5023,
    CosmosRestServerApiCall = 5024,
    IncorrectJsonRetrieved = 5025,
    CannotConnectWithDataSource = 5026,
    CosmosNetworkDataCouldNotBeObtained = 5027,
    TendermintRpcIncompatible = 5028,
    TendermintRpcDataCouldNotBeObtained = 5029,
    TendermintRpcCall = 5030,
    SubstrateApiCall = 5031,
    SubstrateApiIsNotReachable = 5032,
    SubstrateWebSocketDataCouldNotBeObtained = 5033,
    SubstrateNetworkDataCouldNotBeObtained = 5034,
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// An expected failure of a round: becomes an error envelope `{message, code}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct PanicError {
    /// The code.
    pub code: ErrorCode,
    /// The message, from PANIC's template.
    pub message: String,
}

impl PanicError {
    /// An error with a free message. The password of any URL in it is replaced by `***`
    /// ([`crate::redact_urls`]): PANIC printed URLs verbatim, credentials included.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match crate::redact_urls(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(redacted) => redacted,
        };
        PanicError { code, message }
    }

    /// 5000
    pub fn connection_not_initialised(component: &str) -> Self {
        Self::new(
            ErrorCode::ConnectionNotInitialised,
            format!("Did not initialise a connection with {component}"),
        )
    }
    /// 5001
    pub fn message_was_not_delivered(err: &str) -> Self {
        Self::new(
            ErrorCode::MessageWasNotDelivered,
            format!("Message could not be delivered. Error: {err}"),
        )
    }
    /// 5003
    pub fn metric_not_found(metric: &str, endpoint: &str) -> Self {
        Self::new(
            ErrorCode::MetricNotFound,
            format!("Could not find metric {metric} at endpoint {endpoint}"),
        )
    }
    /// 5004
    pub fn system_is_down(system_name: &str) -> Self {
        Self::new(
            ErrorCode::SystemIsDown,
            format!("System {system_name} is unreachable"),
        )
    }
    /// 5005
    pub fn data_reading(monitor_name: &str, source: &str) -> Self {
        Self::new(
            ErrorCode::DataReading,
            format!("{monitor_name} experienced errors when reading data from {source}"),
        )
    }
    /// 5006
    pub fn cannot_access_github_page(page: &str) -> Self {
        Self::new(
            ErrorCode::CannotAccessGitHubPage,
            format!("Cannot access GitHub page {page}"),
        )
    }
    /// 5007
    pub fn github_api_call(err: &str) -> Self {
        Self::new(
            ErrorCode::GitHubApiCall,
            format!("Error in API Call: {err}"),
        )
    }
    /// 5008
    pub fn received_unexpected_data(receiver: &str) -> Self {
        Self::new(
            ErrorCode::ReceivedUnexpectedData,
            format!("{receiver} received unexpected data"),
        )
    }
    /// 5009
    pub fn invalid_url(url: &str) -> Self {
        Self::new(ErrorCode::InvalidUrl, format!("Invalid URL '{url}'"))
    }
    /// 5011
    pub fn missing_key_in_config(key: &str, config: &str) -> Self {
        Self::new(
            ErrorCode::MissingKeyInConfig,
            format!("Expected {key} field in the {config} config"),
        )
    }
    /// 5012: PANIC puts the JSON decoder's own message.
    pub fn json_decode(decoder_message: &str) -> Self {
        Self::new(ErrorCode::JsonDecode, decoder_message)
    }
    /// 5014
    pub fn enabled_source_is_empty(source: &str, node_name: &str) -> Self {
        Self::new(
            ErrorCode::EnabledSourceIsEmpty,
            format!("Enabled source {source} is empty for node {node_name}"),
        )
    }
    /// 5015
    pub fn node_is_down(node_name: &str) -> Self {
        Self::new(
            ErrorCode::NodeIsDown,
            format!("Node {node_name} is unreachable"),
        )
    }
    /// 5016
    pub fn invalid_dict_schema(dict_name: &str) -> Self {
        Self::new(
            ErrorCode::InvalidDictSchema,
            format!("{dict_name} does not obey the valid schema."),
        )
    }
    /// 5017
    pub fn not_enough_data_sources(component: &str, field: &str) -> Self {
        Self::new(
            ErrorCode::ComponentNotGivenEnoughDataSources,
            format!("{component} was not given enough data sources. {field} is empty."),
        )
    }
    /// 5018
    pub fn could_not_retrieve_contracts(component: &str, url: &str) -> Self {
        Self::new(
            ErrorCode::CouldNotRetrieveContracts,
            format!("{component} could not retrieve contracts data from {url}."),
        )
    }
    /// 5019
    pub fn no_synced_data_source(component: &str, sources_type: &str) -> Self {
        Self::new(
            ErrorCode::NoSyncedDataSourceWasAccessible,
            format!("{component} could not access any synced {sources_type}."),
        )
    }
    /// 5020
    pub fn dockerhub_api_call() -> Self {
        Self::new(
            ErrorCode::DockerHubApiCall,
            "API call came back empty, repo probably does not exist.",
        )
    }
    /// 5021
    pub fn cannot_access_dockerhub_page(page: &str) -> Self {
        Self::new(
            ErrorCode::CannotAccessDockerHubPage,
            format!("Cannot access Dockerhub page {page}"),
        )
    }
    /// 5022
    pub fn cosmos_sdk_version_incompatible(node_name: &str, supported: &str) -> Self {
        Self::new(
            ErrorCode::CosmosSdkVersionIncompatible,
            format!(
                "The Cosmos SDK version of node {node_name} is not compatible with supported version(s) {supported}"
            ),
        )
    }
    /// 5023
    pub fn cosmos_rest_data_could_not_be_obtained(n: &str) -> Self {
        Self::new(
            ErrorCode::CosmosRestServerDataCouldNotBeObtained,
            format!(
                "PANIC cannot obtain Rest data for {n} either due to Cosmos SDK or Tendermint incompatibility issues in the node used as data source. Please check the logs of {n} to detect which node is incompatible and disable it from being a data source. If no other compatible data source can be given (not even {n}), please disable Rest monitoring altogether for {n}. "
            ),
        )
    }
    /// 5024
    pub fn cosmos_rest_api_call(api_call: &str, error_message: &str) -> Self {
        Self::new(
            ErrorCode::CosmosRestServerApiCall,
            format!("Cosmos Rest Server call {api_call} failed. Error: {error_message}"),
        )
    }
    /// 5025
    pub fn incorrect_json_retrieved(api_name: &str, error_message: &str) -> Self {
        Self::new(
            ErrorCode::IncorrectJsonRetrieved,
            format!("Invalid JSON structure retrieved from {api_name}. Error: {error_message}"),
        )
    }
    /// 5026
    pub fn cannot_connect_with_data_source(monitor: &str, source: &str, err: &str) -> Self {
        Self::new(
            ErrorCode::CannotConnectWithDataSource,
            format!("{monitor} cannot connect with data source {source}. Error: {err}"),
        )
    }
    /// 5027
    pub fn cosmos_network_data_could_not_be_obtained() -> Self {
        Self::new(
            ErrorCode::CosmosNetworkDataCouldNotBeObtained,
            "PANIC cannot obtain network data from COSMOS Rest Server either due to Cosmos SDK or Tendermint incompatibility issues in the nodes used as data sources. Please check the logs to detect which nodes are incompatible and disable them from being a data source. If no other compatible data source can be given, please disable network monitoring.",
        )
    }
    /// 5028
    pub fn tendermint_rpc_incompatible(node_name: &str) -> Self {
        Self::new(
            ErrorCode::TendermintRpcIncompatible,
            format!("The Tendermint RPC version of node {node_name} is not compatible with PANIC"),
        )
    }
    /// 5029
    pub fn tendermint_rpc_data_could_not_be_obtained(n: &str) -> Self {
        Self::new(
            ErrorCode::TendermintRpcDataCouldNotBeObtained,
            format!(
                "PANIC cannot obtain Tendermint RPC data for {n} either due to Tendermint or Tendermint RPC incompatibility issues in the node used as data source. Please check the logs of {n} to detect which node is incompatible and disable it from being a data source. If no other compatible data source can be given (not even {n}), please disable Tendermint RPC monitoring altogether for {n}."
            ),
        )
    }
    /// 5030
    pub fn tendermint_rpc_call(api_call: &str, error_message: &str) -> Self {
        Self::new(
            ErrorCode::TendermintRpcCall,
            format!("Tendermint RPC call {api_call} failed. Error: {error_message}"),
        )
    }
    /// 5031
    pub fn substrate_api_call(api_call: &str, error_message: &str) -> Self {
        Self::new(
            ErrorCode::SubstrateApiCall,
            format!("Substrate API call {api_call} failed. Error: {error_message}"),
        )
    }
    /// 5032
    pub fn substrate_api_not_reachable(component: &str, url: &str) -> Self {
        Self::new(
            ErrorCode::SubstrateApiIsNotReachable,
            format!("{component} could not reach the Substrate API at {url}"),
        )
    }
    /// 5033
    pub fn substrate_websocket_data_could_not_be_obtained(n: &str) -> Self {
        Self::new(
            ErrorCode::SubstrateWebSocketDataCouldNotBeObtained,
            format!(
                "PANIC cannot obtain websocket data for {n} due to incompatibility issues in the node used as data source. Please check the logs of {n} to detect which node is incompatible and disable it from being a data source."
            ),
        )
    }
    /// 5034
    pub fn substrate_network_data_could_not_be_obtained() -> Self {
        Self::new(
            ErrorCode::SubstrateNetworkDataCouldNotBeObtained,
            "PANIC cannot obtain network data from the Substrate API due to incompatibility issues in the nodes used as data sources. Please check the logs to detect which nodes are incompatible and disable them from being a data source. If no other compatible data source can be given, please disable network monitoring.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_panics() {
        assert_eq!(ErrorCode::ConnectionNotInitialised.code(), 5000);
        assert_eq!(ErrorCode::SystemIsDown.code(), 5004);
        assert_eq!(ErrorCode::NodeIsDown.code(), 5015);
        assert_eq!(
            ErrorCode::SubstrateNetworkDataCouldNotBeObtained.code(),
            5034
        );
        assert_eq!(
            PanicError::system_is_down("validator_host").message,
            "System validator_host is unreachable"
        );
        assert_eq!(
            PanicError::metric_not_found("node_cpu_seconds_total", "http://x/metrics").message,
            "Could not find metric node_cpu_seconds_total at endpoint http://x/metrics"
        );
    }
}
