//! What was declared through the bus (exchanges, queues, bindings, consumers), replayed after a
//! reconnection, and the declarations themselves.

use std::collections::{HashMap, HashSet};

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::BusError;

/// A declaration, replayed on reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    DeclareExchange(String),
    CheckExchange(String),
    DeclareQueue(String),
    /// A stream queue (a log queue) with its retention.
    DeclareStream(String, crate::LogRetention),
    Bind {
        queue: String,
        exchange: String,
        key: String,
    },
    DeleteQueue(String),
    DeleteExchange(String),
}

impl Op {
    pub(super) async fn run(&self, ch: &Channel) -> lapin::Result<()> {
        match self {
            Op::DeclareExchange(name) => {
                ch.exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            }
            Op::CheckExchange(name) => {
                ch.exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            }
            Op::DeclareQueue(name) => ch
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|_| ()),
            Op::DeclareStream(name, retention) => {
                let mut args = FieldTable::default();
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("stream".into()),
                );
                args.insert(
                    "x-max-length-bytes".into(),
                    AMQPValue::LongLongInt(i64::try_from(retention.max_bytes).unwrap_or(i64::MAX)),
                );
                args.insert(
                    "x-stream-max-segment-size-bytes".into(),
                    AMQPValue::LongLongInt(
                        i64::try_from(retention.segment_bytes).unwrap_or(i64::MAX),
                    ),
                );
                ch.queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .map(|_| ())
            }
            Op::Bind {
                queue,
                exchange,
                key,
            } => {
                ch.queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Op::DeleteQueue(name) => ch
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map(|_| ()),
            Op::DeleteExchange(name) => {
                ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                    .await
            }
        }
    }

    /// The caller's view of an error of this operation on a live connection.
    pub(super) fn error(&self, e: &lapin::Error) -> BusError {
        if is_not_found(e) {
            match self {
                Op::DeclareExchange(x) | Op::CheckExchange(x) | Op::DeleteExchange(x) => {
                    return BusError::NoSuchExchange(x.clone());
                }
                Op::DeclareQueue(q) | Op::DeclareStream(q, _) | Op::DeleteQueue(q) => {
                    return BusError::NoSuchQueue(q.clone())
                }
                Op::Bind {
                    queue, exchange, ..
                } => {
                    return if error_message(e).contains("no exchange") {
                        BusError::NoSuchExchange(exchange.clone())
                    } else {
                        BusError::NoSuchQueue(queue.clone())
                    };
                }
            }
        }
        BusError::Broker(format!("{self:?}: {e}"))
    }
}

pub(super) fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(p)
        if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

pub(super) fn error_message(e: &lapin::Error) -> String {
    match e.kind() {
        ErrorKind::ProtocolError(p) => p.get_message().to_string(),
        _ => e.to_string(),
    }
}

/// What was declared through this bus, to re-declare after a reconnection.
#[derive(Default)]
pub(super) struct Topology {
    pub(super) exchanges: Vec<String>,
    pub(super) queues: Vec<String>,
    /// Stream (log) queues and their retention.
    pub(super) streams: Vec<(String, crate::LogRetention)>,
    pub(super) bindings: Vec<(String, String, String)>,
    /// Exchanges known to exist (declared here or checked), so publishes need no check.
    pub(super) known_exchanges: HashSet<String>,
    /// Live consumers: id → (queue, cancellation).
    pub(super) consumers: HashMap<u64, (String, CancellationToken)>,
}

impl Topology {
    pub(super) fn replay(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .exchanges
            .iter()
            .map(|x| Op::DeclareExchange(x.clone()))
            .collect();
        ops.extend(self.queues.iter().map(|q| Op::DeclareQueue(q.clone())));
        ops.extend(
            self.streams
                .iter()
                .map(|(q, r)| Op::DeclareStream(q.clone(), *r)),
        );
        ops.extend(self.bindings.iter().map(|(q, x, k)| Op::Bind {
            queue: q.clone(),
            exchange: x.clone(),
            key: k.clone(),
        }));
        ops
    }
}

/// Replay `ops` on `conn`. A failing declaration is logged and skipped (its channel replaced);
/// only the loss of the connection is an error.
pub(super) async fn redeclare(conn: &Connection, ops: &[Op]) -> lapin::Result<()> {
    let mut ch = conn.create_channel().await?;
    for op in ops {
        if let Err(e) = op.run(&ch).await {
            if !conn.status().connected() {
                return Err(e);
            }
            warn!(?op, error = %e, "re-declaration failed");
            ch = conn.create_channel().await?;
        }
    }
    let _ = ch.close(200, "OK".into()).await;
    Ok(())
}

pub(super) fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}
