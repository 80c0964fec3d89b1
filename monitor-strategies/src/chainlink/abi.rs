//! The contract interfaces the Chainlink contracts monitor reads, declared with alloy's `sol!`
//! macro from the ABI fragments PANIC uses (`utils/constants/abis/v3.py`, `v4.py`; copies in
//! `fixtures/chainlink/abi/`). Calldata, return data and logs are encoded and decoded by
//! `alloy-sol-types`; nothing here touches ABI words by hand.
//!
//! * [`Proxy`]: `EACAggregatorProxy`: `aggregator()`, `description()`;
//! * [`FluxAggregator`] (contract version 3): `getOracles()`, `withdrawablePayment(address)`,
//!   `latestRoundData()`, `getRoundData(uint80)`, event `SubmissionReceived`;
//! * [`OffchainAggregator`] (version 4, OCR's `AccessControlledOffchainAggregator`):
//!   `transmitters()`, `owedPayment(address)`, `latestRoundData()`, `getRoundData(uint80)`, event
//!   `NewTransmission`.

// The generated items carry the Solidity names and are documented by the declarations below.
#![allow(missing_docs)]

use alloy_primitives::{Address, I256, U256};
use alloy_sol_types::sol;
use serde_json::Value;

sol! {
    /// `EACAggregatorProxy` (v3 and v4 proxies).
    interface Proxy {
        function aggregator() external view returns (address);
        function description() external view returns (string memory);
    }

    /// `FluxAggregator` (contract version 3).
    interface FluxAggregator {
        function getOracles() external view returns (address[] memory);
        function withdrawablePayment(address _oracle) external view returns (uint256);
        function latestRoundData() external view returns (
            uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt,
            uint80 answeredInRound);
        function getRoundData(uint80 _roundId) external view returns (
            uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt,
            uint80 answeredInRound);
        event SubmissionReceived(
            int256 indexed submission, uint32 indexed round, address indexed oracle);
    }

    /// `AccessControlledOffchainAggregator` (contract version 4, OCR).
    interface OffchainAggregator {
        function transmitters() external view returns (address[] memory);
        function owedPayment(address _transmitter) external view returns (uint256);
        function latestRoundData() external view returns (
            uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt,
            uint80 answeredInRound);
        function getRoundData(uint80 _roundId) external view returns (
            uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt,
            uint80 answeredInRound);
        event NewTransmission(
            uint32 indexed aggregatorRoundId, int192 answer, address transmitter,
            int192[] observations, bytes observers, bytes32 rawReportContext);
    }
}

/// A round as `latestRoundData()` / `getRoundData()` return it (both interfaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundData {
    /// `roundId`
    pub round_id: u128,
    /// `answer`
    pub answer: I256,
    /// `updatedAt`, what PANIC reports as the timestamp.
    pub updated_at: U256,
    /// `answeredInRound`
    pub answered_in_round: u128,
}

macro_rules! round_data_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for RoundData {
            fn from(r: $ty) -> Self {
                RoundData {
                    round_id: r.roundId.to::<u128>(),
                    answer: r.answer,
                    updated_at: r.updatedAt,
                    answered_in_round: r.answeredInRound.to::<u128>(),
                }
            }
        }
    )*};
}

round_data_from!(
    FluxAggregator::latestRoundDataReturn,
    FluxAggregator::getRoundDataReturn,
    OffchainAggregator::latestRoundDataReturn,
    OffchainAggregator::getRoundDataReturn
);

/// An unsigned integer for the data, as [`decimal_json`].
pub(crate) fn uint_json(v: U256) -> Value {
    decimal_json(&v.to_string())
}

/// A signed integer for the data, as [`decimal_json`].
pub(crate) fn int_json(v: I256) -> Value {
    decimal_json(&v.to_string())
}

/// A `u128` for the data, as [`decimal_json`].
pub(crate) fn u128_json(v: u128) -> Value {
    decimal_json(&v.to_string())
}

/// A decimal integer for the data: always a JSON integer with every digit, as Python's `int`
/// (the workspace's `serde_json` has `arbitrary_precision`, so payments in wei beyond 64 bits keep
/// their exact value). Not a decimal integer → null.
pub(crate) fn decimal_json(decimal: &str) -> Value {
    let digits = decimal.strip_prefix('-').unwrap_or(decimal);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::Null;
    }
    serde_json::from_str::<serde_json::Number>(decimal).map_or(Value::Null, Value::Number)
}

/// EIP-55 checksummed form of an address (what web3 returns and compares).
pub fn checksum(address: &Address) -> String {
    address.to_checksum(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_sol_types::{SolCall, SolEvent};

    #[test]
    fn selectors_and_topics_are_panics() {
        // Values listed in fixtures/SOURCES.md.
        assert_eq!(Proxy::aggregatorCall::SELECTOR, [0x24, 0x5a, 0x7b, 0xfc]);
        assert_eq!(Proxy::descriptionCall::SELECTOR, [0x72, 0x84, 0xe4, 0x16]);
        assert_eq!(
            FluxAggregator::latestRoundDataCall::SELECTOR,
            [0xfe, 0xaf, 0x96, 0x8c]
        );
        assert_eq!(
            FluxAggregator::getRoundDataCall::SELECTOR,
            [0x9a, 0x6f, 0xc8, 0xf5]
        );
        assert_eq!(
            FluxAggregator::getOraclesCall::SELECTOR,
            [0x40, 0x88, 0x4c, 0x52]
        );
        assert_eq!(
            FluxAggregator::withdrawablePaymentCall::SELECTOR,
            [0xe2, 0xe4, 0x03, 0x17]
        );
        assert_eq!(
            OffchainAggregator::transmittersCall::SELECTOR,
            [0x81, 0x41, 0x18, 0x34]
        );
        assert_eq!(
            OffchainAggregator::owedPaymentCall::SELECTOR,
            [0x0e, 0xaf, 0xb2, 0x5b]
        );
        assert_eq!(
            FluxAggregator::SubmissionReceived::SIGNATURE_HASH.to_string(),
            "0x92e98423f8adac6e64d0608e519fd1cefb861498385c6dee70d58fc926ddc68c"
        );
        assert_eq!(
            OffchainAggregator::NewTransmission::SIGNATURE_HASH.to_string(),
            "0xf6a97944f31ea060dfde0566e4167c1a1082551e64b60ecb14d599a9d023d451"
        );
    }

    #[test]
    fn big_numbers() {
        assert_eq!(uint_json(U256::from(5u8)), Value::from(5u64));
        assert_eq!(uint_json(U256::from(u64::MAX)), Value::from(u64::MAX));
        assert_eq!(
            uint_json(U256::from(20_000_000_000_000_000_000u128)).to_string(),
            "20000000000000000000"
        );
        assert_eq!(int_json(I256::try_from(-7i64).unwrap()), Value::from(-7));
        assert_eq!(u128_json(3), Value::from(3u64));
        assert_eq!(decimal_json("-5"), Value::from(-5));
        assert_eq!(decimal_json("18446744073709551615"), Value::from(u64::MAX));
        assert_eq!(
            decimal_json("100000000000000000000").to_string(),
            "100000000000000000000"
        );
        assert_eq!(decimal_json("x"), Value::Null);
        assert_eq!(decimal_json("1.5"), Value::Null);
        assert_eq!(decimal_json(""), Value::Null);
    }
}
