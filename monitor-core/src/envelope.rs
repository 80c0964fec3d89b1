//! Result and error envelopes, heartbeat and monitorable message shapes, exactly as PANIC's Python
//! consumers read them.
//!
//! Floats go through `serde_json`'s `f64` printing, which always writes a fractional part or an
//! exponent (`6924314.0`), so Python's `json.loads` gives back a `float` as it did with PANIC.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::errors::PanicError;

/// Wall-clock time as float UNIX seconds (`time` and `timestamp` fields).
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A `meta_data` object under construction, keys kept in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaData(pub Map<String, Value>);

impl MetaData {
    /// Starts with `monitor_name`, as every PANIC meta_data does.
    pub fn new(monitor_name: &str) -> Self {
        let mut m = Map::new();
        m.insert("monitor_name".to_owned(), Value::from(monitor_name));
        MetaData(m)
    }

    /// Adds a field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Adds `time` = now.
    pub fn timed(self) -> Self {
        self.with("time", now_unix())
    }
}

/// `{"result": {"meta_data": …, "data": …}}`
pub fn result_envelope(meta_data: MetaData, data: Value) -> Value {
    let mut inner = Map::new();
    inner.insert("meta_data".to_owned(), Value::Object(meta_data.0));
    inner.insert("data".to_owned(), data);
    let mut outer = Map::new();
    outer.insert("result".to_owned(), Value::Object(inner));
    Value::Object(outer)
}

/// `{"error": {"meta_data": …, "message": …, "code": …}}`
pub fn error_envelope(meta_data: MetaData, error: &PanicError) -> Value {
    let mut inner = Map::new();
    inner.insert("meta_data".to_owned(), Value::Object(meta_data.0));
    inner.insert("message".to_owned(), Value::from(error.message.as_str()));
    inner.insert("code".to_owned(), Value::from(error.code.code()));
    let mut outer = Map::new();
    outer.insert("error".to_owned(), Value::Object(inner));
    Value::Object(outer)
}

/// Either envelope from a round's outcome.
pub fn envelope(meta_data: MetaData, outcome: Result<Value, PanicError>) -> Value {
    match outcome {
        Ok(data) => result_envelope(meta_data, data),
        Err(e) => error_envelope(meta_data, &e),
    }
}

/// A float that must print with a fractional part; non-finite values become `null`.
pub fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// PANIC's `round(x, 2)` (half-to-even on the binary value, like Python).
pub fn round2(x: f64) -> f64 {
    // Python rounds the exact binary value correctly; formatting with 2 decimals does the same.
    format!("{x:.2}").parse().unwrap_or(x)
}

/// A worker heartbeat (`heartbeat.worker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// Component name, e.g. `System monitor (validator_host)`.
    pub component_name: String,
    /// Always true for monitors (sent after a round).
    pub is_alive: bool,
    /// Float UNIX seconds.
    pub timestamp: f64,
}

impl WorkerHeartbeat {
    /// A heartbeat for `component_name` now.
    pub fn alive(component_name: &str) -> Self {
        WorkerHeartbeat {
            component_name: component_name.to_owned(),
            is_alive: true,
            timestamp: now_unix(),
        }
    }
}

/// A manager heartbeat (`heartbeat.manager`, in reply to a ping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagerHeartbeat {
    /// The manager's name.
    pub component_name: String,
    /// Component names of running monitors.
    pub running_processes: Vec<String>,
    /// Component names of monitors found dead since the last heartbeat.
    pub dead_processes: Vec<String>,
    /// Float UNIX seconds.
    pub timestamp: f64,
}

/// One source in a monitorable message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorableSource {
    /// The chain's `parent_id` (`GENERAL` or the chain id for general configs as sent).
    pub chain_id: String,
    /// The sub chain name (`general` for general configs).
    pub chain_name: String,
    /// The config id.
    pub source_id: String,
    /// The monitorable's display name.
    pub source_name: String,
}

/// A monitorable message (`monitorable` exchange, `<base_chain>.<type>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorableMessage {
    /// The manager that runs these.
    pub manager_name: String,
    /// Every monitor of that type the manager runs on that base chain.
    pub sources: Vec<MonitorableSource>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::PanicError;

    #[test]
    fn floats_keep_their_fraction() {
        let v = result_envelope(
            MetaData::new("System monitor (x)").with("time", 1.5),
            serde_json::json!({"a": float(6924314.0), "b": float(0.78125), "c": float(f64::NAN)}),
        );
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(
            s,
            r#"{"result":{"meta_data":{"monitor_name":"System monitor (x)","time":1.5},"data":{"a":6924314.0,"b":0.78125,"c":null}}}"#
        );
    }

    #[test]
    fn error_shape() {
        let v = error_envelope(MetaData::new("m"), &PanicError::system_is_down("h"));
        assert_eq!(
            v,
            serde_json::json!({"error": {"meta_data": {"monitor_name": "m"}, "message": "System h is unreachable", "code": 5004}})
        );
    }

    #[test]
    fn rounding_matches_python() {
        assert_eq!(round2(7.854999), 7.85);
        assert_eq!(round2(34.0899), 34.09);
        // Python: round(2.675, 2) == 2.67 (binary value is below the half).
        assert_eq!(round2(2.675), 2.67);
        assert_eq!(round2(0.0), 0.0);
    }
}
