//! [`JsonRpc`]: a minimal JSON-RPC 2.0 client over the shared HTTP layer (one POST per call,
//! PANIC's 2 s timeout by default, see [`EvmSettings`](crate::settings::EvmSettings)), used by the
//! EVM node monitor and the Chainlink contracts monitor. Every answer is checked: a JSON-RPC `error`
//! object, a body that is not JSON-RPC, or a `result` of the wrong shape is an [`RpcError`], never
//! a panic.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use tracing::debug;

use crate::http::{Http, HttpError, HttpErrorKind};
use crate::settings::Hold;

/// Why a JSON-RPC call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RpcError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The node answered with a JSON-RPC `error` object.
    #[error(
        "`{method}` at `{}` answered error {code}: {message}",
        monitor_core::redact_url(url)
    )]
    Rpc {
        /// The node URL.
        url: String,
        /// The method called.
        method: &'static str,
        /// `error.code`.
        code: i64,
        /// `error.message`.
        message: String,
        /// `error.data`, if any (as JSON text).
        data: Option<String>,
    },
    /// The answer is not a JSON-RPC answer, or its `result` does not have the expected shape.
    #[error(
        "`{method}` at `{}`: bad answer: {problem}",
        monitor_core::redact_url(url)
    )]
    BadAnswer {
        /// The node URL.
        url: String,
        /// The method called.
        method: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl RpcError {
    /// Whether this is a transport failure of kind `kind`.
    pub fn is_http(&self, kind: HttpErrorKind) -> bool {
        matches!(self, RpcError::Http(e) if e.kind == kind)
    }

    /// Whether the node says the call reverted (web3's `ContractLogicError`): geth answers code 3
    /// `execution reverted…`, ganache and others `… revert …` messages.
    pub fn is_revert(&self) -> bool {
        match self {
            RpcError::Rpc { code, message, .. } => {
                *code == 3 || message.to_ascii_lowercase().contains("revert")
            }
            _ => false,
        }
    }
}

/// A JSON-RPC 2.0 client for one node URL.
#[derive(Debug)]
pub struct JsonRpc {
    http: Http,
    url: String,
    next_id: AtomicU64,
}

impl JsonRpc {
    /// A client for `url` over `http`.
    pub fn new(http: Http, url: &str) -> Self {
        JsonRpc {
            http,
            url: url.to_owned(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The node URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One call: the `result`, or why there is none.
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, RpcError> {
        self.call_with(method, params, false).await
    }

    /// A place to hold the connection between the calls of one round (`None`: each call uses
    /// the pool as usual); see [`ConnectionLimits`](crate::ConnectionLimits).
    pub(crate) fn hold(&self) -> Option<Hold> {
        self.http.hold(&self.url)
    }

    /// One call; `keep_open`: the connection stays open for the round's next call (the caller
    /// holds a [`Hold`]).
    async fn call_with(
        &self,
        method: &'static str,
        params: Value,
        keep_open: bool,
    ) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .http
            .post_json_with(&self.url, &request, keep_open)
            .await?;
        let result = decode_answer(&self.url, method, response.status, &response.body)?;
        debug!(url = %monitor_core::redact_url(&self.url), method, "json-rpc answer");
        Ok(result)
    }

    /// Builds a [`RpcError::BadAnswer`] for `method`.
    pub fn bad_answer(&self, method: &'static str, problem: impl Into<String>) -> RpcError {
        RpcError::BadAnswer {
            url: self.url.clone(),
            method,
            problem: problem.into(),
        }
    }

    /// `eth_blockNumber`.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        self.block_number_with(false).await
    }

    /// `eth_blockNumber`, leaving the connection open for the next call when `keep_open`.
    pub(crate) async fn block_number_with(&self, keep_open: bool) -> Result<u64, RpcError> {
        let result = self
            .call_with("eth_blockNumber", json!([]), keep_open)
            .await?;
        quantity(&result).map_err(|p| self.bad_answer("eth_blockNumber", p))
    }

    /// `eth_syncing`: `false` → not syncing, a sync-status object → syncing.
    pub async fn syncing(&self) -> Result<bool, RpcError> {
        let result = self.call("eth_syncing", json!([])).await?;
        syncing_of(&result).map_err(|p| self.bad_answer("eth_syncing", p))
    }

    /// `eth_call` of `data` on `to` at the latest block: the returned bytes.
    pub async fn eth_call(&self, to: &str, data: &[u8]) -> Result<Vec<u8>, RpcError> {
        let params = json!([{"to": to, "data": hex_bytes(data)}, "latest"]);
        let result = self.call("eth_call", params).await?;
        call_bytes(&result).map_err(|p| self.bad_answer("eth_call", p))
    }

    /// `eth_getLogs` with a filter object: the log objects.
    pub async fn get_logs(&self, filter: Value) -> Result<Vec<Log>, RpcError> {
        let result = self.call("eth_getLogs", json!([filter])).await?;
        logs_of(&result).map_err(|p| self.bad_answer("eth_getLogs", p))
    }
}

/// A JSON-RPC answer (HTTP `status`, `body`) to `method` at `url`: its `result`, or why there is
/// none.
pub(crate) fn decode_answer(
    url: &str,
    method: &'static str,
    status: u16,
    body: &[u8],
) -> Result<Value, RpcError> {
    let bad = |problem: String| RpcError::BadAnswer {
        url: url.to_owned(),
        method,
        problem,
    };
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("HTTP {status} with a body that is not JSON: {e}")))?;
    let Value::Object(mut body) = body else {
        return Err(bad(format!(
            "HTTP {status} with a body that is not a JSON object"
        )));
    };
    if let Some(error) = body.remove("error").filter(|e| !e.is_null()) {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned);
        let data = error.get("data").map(Value::to_string);
        return Err(RpcError::Rpc {
            url: url.to_owned(),
            method,
            code,
            message,
            data,
        });
    }
    body.remove("result")
        .ok_or_else(|| bad(format!("HTTP {status} without `result` or `error`")))
}

/// An `eth_syncing` result: `false` → not syncing, `true` or a sync-status object → syncing.
pub(crate) fn syncing_of(result: &Value) -> Result<bool, String> {
    match result {
        Value::Bool(false) => Ok(false),
        // Some nodes answer `true`; web3 treats any truthy answer as syncing.
        Value::Bool(true) | Value::Object(_) => Ok(true),
        other => Err(format!("expected false or an object, got {other}")),
    }
}

/// An `eth_call` result: the returned bytes.
pub(crate) fn call_bytes(result: &Value) -> Result<Vec<u8>, String> {
    let text = result
        .as_str()
        .ok_or_else(|| format!("not a hex string: {result}"))?;
    parse_hex_bytes(text)
}

/// An `eth_getLogs` result: the log objects.
pub(crate) fn logs_of(result: &Value) -> Result<Vec<Log>, String> {
    let Value::Array(items) = result else {
        return Err("result is not an array".to_owned());
    };
    items.iter().map(Log::from_json).collect()
}

/// One log entry of `eth_getLogs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// Topics (32 bytes each).
    pub topics: Vec<[u8; 32]>,
    /// Non-indexed data.
    pub data: Vec<u8>,
    /// Block of the log.
    pub block_number: u64,
}

impl Log {
    /// Reads a JSON-RPC log object.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| format!("log without `{name}`: {value}"))
        };
        let topics = field("topics")?
            .as_array()
            .ok_or_else(|| "log `topics` is not an array".to_owned())?
            .iter()
            .map(|t| {
                let bytes = parse_hex_bytes(t.as_str().unwrap_or_default())?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| format!("topic {t} is not 32 bytes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data = parse_hex_bytes(
            field("data")?
                .as_str()
                .ok_or_else(|| "log `data` is not a string".to_owned())?,
        )?;
        let block_number = quantity(field("blockNumber")?)?;
        Ok(Log {
            topics,
            data,
            block_number,
        })
    }
}

/// A JSON-RPC quantity (`"0x1b4"`) as `u64`.
pub(crate) fn quantity(value: &Value) -> Result<u64, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("quantity is not a string: {value}"))?;
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("quantity `{text}` has no 0x prefix"))?;
    if digits.is_empty() {
        return Err(format!("quantity `{text}` has no digits"));
    }
    u64::from_str_radix(digits, 16).map_err(|e| format!("quantity `{text}`: {e}"))
}

/// A block number as a JSON-RPC quantity.
pub(crate) fn to_quantity(n: u64) -> String {
    format!("{n:#x}")
}

/// `0x`-prefixed lower-case hex of bytes.
pub fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parses `0x`-prefixed hex data (`"0x"` is empty).
pub fn parse_hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("hex data `{text}` has no 0x prefix"))?;
    if digits.len() % 2 != 0 {
        return Err(format!(
            "hex data has an odd number of digits ({})",
            digits.len()
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("hex data has a bad digit near offset {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_hex() {
        assert_eq!(quantity(&json!("0xf3eb18")), Ok(15_985_432));
        assert_eq!(quantity(&json!("0x0")), Ok(0));
        for bad in [
            json!("0x"),
            json!("12"),
            json!(12),
            json!("0xzz"),
            json!(null),
        ] {
            assert!(quantity(&bad).is_err(), "{bad}");
        }
        assert_eq!(to_quantity(15_985_432), "0xf3eb18");
        assert_eq!(hex_bytes(&[0, 0xab, 0x10]), "0x00ab10");
        assert_eq!(parse_hex_bytes("0x00AB10"), Ok(vec![0, 0xab, 0x10]));
        assert_eq!(parse_hex_bytes("0x"), Ok(vec![]));
        for bad in ["00", "0x0", "0xg0", "0x€0"] {
            assert!(parse_hex_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reverts_are_recognised() {
        let rpc = |code, message: &str| RpcError::Rpc {
            url: "u".into(),
            method: "eth_call",
            code,
            message: message.into(),
            data: None,
        };
        assert!(rpc(3, "execution reverted: No data present").is_revert());
        assert!(rpc(
            -32000,
            "VM Exception while processing transaction: revert No data present"
        )
        .is_revert());
        assert!(!rpc(-32601, "method not found").is_revert());
    }
}
