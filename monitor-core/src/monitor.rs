//! The strategy trait: one monitor type's "observe once" for one monitorable.

use async_trait::async_trait;
use serde_json::Value;

use crate::keys::RawDataKey;

/// One message a round wants published to `raw_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Raw-data routing key.
    pub routing_key: RawDataKey,
    /// The body: a PANIC envelope, or a source-keyed object of envelopes.
    pub body: Value,
}

impl Publication {
    /// A publication.
    pub fn new(routing_key: RawDataKey, body: Value) -> Self {
        Publication { routing_key, body }
    }
}

/// An unexpected failure of a round (PANIC's processing errors): nothing is published, no
/// heartbeat is sent, and the runner logs and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoundError(pub String);

impl RoundError {
    /// An error with a message; the password of any URL in it is replaced by `***`
    /// ([`crate::redact_urls`]), as the runner logs it.
    pub fn new(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        match crate::redact_urls(&msg) {
            std::borrow::Cow::Borrowed(_) => RoundError(msg),
            std::borrow::Cow::Owned(redacted) => RoundError(redacted),
        }
    }
}

/// A monitor strategy. It never sleeps, loops, spawns or retries: the runner owns time.
///
/// Expected failures (a target down, a bad body) are returned as error envelopes inside
/// `Ok(publications)`; `Err` is for what PANIC treats as a processing error.
#[async_trait]
pub trait Monitor: Send {
    /// PANIC's component name (`System monitor (validator_host)`), used in meta_data and heartbeats.
    fn name(&self) -> &str;

    /// Run one round and return what to publish, in order.
    async fn round(&mut self) -> Result<Vec<Publication>, RoundError>;

    /// What to publish after a round that ended in `error`, before the worker heartbeat the
    /// runner sends after every finished round. PANIC publishes nothing on a processing error, so
    /// a target serving garbage looked dead from outside; a monitor whose data could not be read
    /// returns its error envelope here (PANIC's 5005 or the type's own code). Default: nothing.
    fn failed_round(&self, error: &RoundError) -> Vec<Publication> {
        let _ = error;
        Vec::new()
    }
}
