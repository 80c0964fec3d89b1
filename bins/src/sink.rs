//! The embedded default's output: every raw-data message as one JSON line
//! `{"routing_key": …, "body": …}` on stdout or in a file.

use std::sync::Arc;

use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, BusError, Delivery};
use monitor_core::keys::RAW_DATA_EXCHANGE;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The queue the sink reads; bound to every raw-data key.
pub const RAW_DATA_SINK_QUEUE: &str = "panic_monitors_raw_data_sink";

/// Lines are written (and flushed) together, at most this long after the first of them was
/// received: a file written through tokio costs a hand-off to its blocking pool (two thread
/// wake-ups) per write, which per line was a good part of a system round's CPU (issue #14).
const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// ... or once this many bytes of lines are waiting.
const WRITE_BYTES: usize = 64 * 1024;

/// At shutdown, how long the sink waits for one more message before it stops.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Writing the output failed.
    #[error("cannot write raw data output: {0}")]
    Write(#[from] std::io::Error),
}

/// Declare the sink's queue (bound `#` on `raw_data`) so that monitors' publishes are routable
/// from the first round on.
pub async fn declare(bus: &dyn Bus) -> Result<(), BusError> {
    declare_bound_queue(bus, RAW_DATA_SINK_QUEUE, RAW_DATA_EXCHANGE, &["#"]).await
}

/// One output line for a message: `{"routing_key": …, "body": …}`; a body that is not JSON is
/// written as a string so nothing is lost.
///
/// A body already in `serde_json`'s compact form (what the manager publishes) is copied as it is
/// after a check that it is JSON ([`is_compact_json`]); any other body is parsed and written again,
/// compact. Both give the same line for the manager's bodies (issue #14: the re-parse was a fifth
/// of a round's instructions).
pub fn line(routing_key: &str, body: &[u8]) -> String {
    if let Some(text) = is_compact_json(body) {
        let mut s = String::with_capacity(text.len() + routing_key.len() + 32);
        s.push_str("{\"routing_key\":");
        s.push_str(&Value::from(routing_key).to_string());
        s.push_str(",\"body\":");
        s.push_str(text);
        s.push_str("}\n");
        return s;
    }
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(body).into_owned()));
    let mut obj = serde_json::Map::new();
    obj.insert("routing_key".to_owned(), Value::from(routing_key));
    obj.insert("body".to_owned(), body);
    let mut s = Value::Object(obj).to_string();
    s.push('\n');
    s
}

/// How a message becomes an output line: [`line`] (JSON) or [`crate::pretty::line`] (readable).
pub type Render = fn(&str, &[u8]) -> String;

/// `body` as text when it is JSON that `serde_json` writes back unchanged: valid JSON with no
/// whitespace outside strings and no `\u` or `\/` escape in them (which `serde_json` would write
/// differently). Duplicate keys are not looked for: the manager's bodies (a `serde_json::Value`
/// written out) cannot have any.
pub fn is_compact_json(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                if b == b'u' || b == b'/' {
                    return None;
                }
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
            return None;
        }
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(text)
}

/// Write every raw-data message as a JSON line until `shutdown`, then drain what is already
/// queued. Each message is acked only after its line is written and flushed; lines are written
/// together, at most 100 ms after the first of them arrived (or at 64 KiB).
pub async fn run<W: AsyncWrite + Unpin>(
    bus: Arc<dyn Bus>,
    out: W,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    run_rendered(bus, out, shutdown, line).await
}

/// [`run`], with each message written as `render` makes it.
pub async fn run_rendered<W: AsyncWrite + Unpin>(
    bus: Arc<dyn Bus>,
    mut out: W,
    shutdown: CancellationToken,
    render: Render,
) -> Result<(), SinkError> {
    declare(bus.as_ref()).await?;
    let mut consumer = bus.consume(RAW_DATA_SINK_QUEUE, 256).await?;
    // Lines rendered but not yet written, and their deliveries (acked once written).
    let mut lines: Vec<u8> = Vec::new();
    let mut held: Vec<Delivery> = Vec::new();
    let mut deadline = tokio::time::Instant::now();
    loop {
        let next = if held.is_empty() {
            Some(shutdown.run_until_cancelled(consumer.next()).await)
        } else {
            // `Consumer::next` is cancel-safe (a channel receive, then nothing that waits).
            tokio::select! {
                d = shutdown.run_until_cancelled(consumer.next()) => Some(d),
                () = tokio::time::sleep_until(deadline) => None,
            }
        };
        let delivery = match next {
            None => {
                write_held(&mut out, &mut lines, &mut held).await?;
                continue;
            }
            Some(Some(Some(d))) => d,
            Some(Some(None)) => break,
            // Shutting down: drain what is ready without waiting for more.
            Some(None) => match tokio::time::timeout(DRAIN_WAIT, consumer.next()).await {
                Ok(Some(d)) => d,
                _ => break,
            },
        };
        if held.is_empty() {
            deadline = tokio::time::Instant::now() + WRITE_EVERY;
        }
        lines.extend_from_slice(render(&delivery.routing_key, &delivery.body).as_bytes());
        held.push(delivery);
        if lines.len() >= WRITE_BYTES {
            write_held(&mut out, &mut lines, &mut held).await?;
        }
    }
    write_held(&mut out, &mut lines, &mut held).await?;
    out.flush().await?;
    Ok(())
}

/// Writes and flushes the held lines, then acks their deliveries.
async fn write_held<W: AsyncWrite + Unpin>(
    out: &mut W,
    lines: &mut Vec<u8>,
    held: &mut Vec<Delivery>,
) -> Result<(), SinkError> {
    if held.is_empty() {
        return Ok(());
    }
    out.write_all(lines).await?;
    out.flush().await?;
    lines.clear();
    for delivery in held.drain(..) {
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "raw data sink could not ack a written message");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_bus::MemoryBus;

    /// The copied line is the re-written one, for the manager's bodies (envelopes with floats,
    /// escapes, non-ASCII) and for anything else (re-written).
    #[test]
    fn copied_lines_are_the_rewritten_ones() {
        let bodies = [
            serde_json::json!({"result": {"meta_data": {"monitor_name": "System monitor (é \"q\" \\ \n\u{1f})", "time": 1796143289.258228},
                "data": {"a": 6924314.0, "b": 0.000858306884765625, "c": null, "d": 1e16, "e": -0.0, "f": [1, 2.5, "x"], "g": true}}}),
            serde_json::json!({"error": {"message": "tab\there", "code": 5005}}),
        ];
        for body in bodies {
            let bytes = serde_json::to_vec(&body).unwrap();
            let reparsed = {
                let mut obj = serde_json::Map::new();
                obj.insert("routing_key".to_owned(), Value::from("system"));
                obj.insert(
                    "body".to_owned(),
                    serde_json::from_slice::<Value>(&bytes).unwrap(),
                );
                format!("{}\n", Value::Object(obj))
            };
            assert_eq!(line("system", &bytes), reparsed);
        }
        for other in [
            &b"{\"a\": 1}"[..],
            b"{\"a\":\"\\u0041\"}",
            b"{\"a\":\"\\/\"}",
            b"[1,2",
            b"",
            b"\xff",
        ] {
            assert!(is_compact_json(other).is_none(), "{other:?}");
        }
        assert_eq!(
            line("x", b"{\"a\":\"\\u0041\"}"),
            "{\"routing_key\":\"x\",\"body\":{\"a\":\"A\"}}\n"
        );
    }

    #[test]
    fn lines_are_json() {
        assert_eq!(
            line("system", br#"{"result": {"data": {"a": 1.0}}}"#),
            "{\"routing_key\":\"system\",\"body\":{\"result\":{\"data\":{\"a\":1.0}}}}\n"
        );
        assert_eq!(
            line("x", b"not json"),
            "{\"routing_key\":\"x\",\"body\":\"not json\"}\n"
        );
    }

    #[tokio::test]
    async fn writes_every_raw_data_message() {
        let bus = Arc::new(MemoryBus::new());
        declare(bus.as_ref()).await.unwrap();
        for (key, body) in [("system", "{\"n\":1}"), ("node.cosmos", "{\"n\":2}")] {
            bus.publish(RAW_DATA_EXCHANGE, key, body.as_bytes().to_vec().into())
                .await
                .unwrap();
        }
        let shutdown = CancellationToken::new();
        let (w, mut r) = tokio::io::duplex(4096);
        #[allow(clippy::disallowed_methods)] // awaited at the end of the test
        let task = tokio::spawn(run(bus.clone(), w, shutdown.clone()));
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while got.lines().count() < 2 {
            let n = tokio::io::AsyncReadExt::read(&mut r, &mut buf)
                .await
                .unwrap();
            got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let lines: Vec<Value> = got
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["routing_key"], "system");
        assert_eq!(lines[1]["body"]["n"], 2);
        assert_eq!(bus.queue_len(RAW_DATA_SINK_QUEUE), Some(0));
        assert_eq!(bus.unacked_len(RAW_DATA_SINK_QUEUE), Some(0));
    }
}
