//! One conformance suite for every [`Bus`]: each check is written once against `&dyn Bus` and run
//! on the in-memory bus and on the real RabbitMQ (127.0.0.1:5672, or `PANIC_TEST_AMQP_URL`).
//!
//! Isolation on RabbitMQ: every test uses exchange and queue names with a unique suffix and deletes
//! them at the end.

use crate::common;

use bytes::Bytes;
use common::{assert_quiet, next, text};
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, BusError, LogRetention};
use monitor_core::ErrorCode;
use std::collections::BTreeMap;

/// Unique names for one test.
struct Names {
    suffix: String,
}

impl Names {
    fn new() -> Self {
        Names {
            suffix: common::unique(),
        }
    }
    fn exchange(&self) -> String {
        format!("conformance-x-{}", self.suffix)
    }
    fn queue(&self, which: &str) -> String {
        format!("conformance-q-{which}-{}", self.suffix)
    }
}

async fn publish(bus: &dyn Bus, exchange: &str, key: &str, body: &str) {
    bus.publish(exchange, key, Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("publish {key} {body}: {e}"));
}

async fn cleanup(bus: &dyn Bus, names: &Names, queues: &[&str]) {
    for q in queues {
        bus.delete_queue(&names.queue(q)).await.unwrap();
    }
    bus.delete_exchange(&names.exchange()).await.unwrap();
}

/// One publish reaches every queue bound for it.
async fn fan_out(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    declare_bound_queue(bus, &n.queue("a"), &x, &["alerts.#"])
        .await
        .unwrap();
    declare_bound_queue(bus, &n.queue("b"), &x, &["alerts.cosmos.*"])
        .await
        .unwrap();
    publish(bus, &x, "alerts.cosmos.node", "hello").await;
    for q in ["a", "b"] {
        let mut c = bus.consume(&n.queue(q), 10).await.unwrap();
        let d = next(&mut c).await;
        assert_eq!(text(&d), "hello");
        assert_eq!(d.routing_key, "alerts.cosmos.node");
        assert_eq!(d.exchange, x);
        assert!(!d.redelivered);
        d.ack().await.unwrap();
        assert_quiet(&mut c, "one publish is one message per queue").await;
    }
    cleanup(bus, n, &["a", "b"]).await;
}

/// `*` matches exactly one word, `#` zero or more; non-matching keys do not arrive.
async fn topic_matching(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    declare_bound_queue(bus, &n.queue("star"), &x, &["a.*.c"])
        .await
        .unwrap();
    declare_bound_queue(bus, &n.queue("hash"), &x, &["a.#"])
        .await
        .unwrap();
    declare_bound_queue(bus, &n.queue("mid"), &x, &["x.#.z"])
        .await
        .unwrap();
    for key in ["a.b.c", "a.b.b.c", "a", "a.c", "x.z", "x.y.y.z"] {
        publish(bus, &x, key, key).await;
    }
    // Matches nothing: `*` needs one word, `x.#.z` needs the trailing `z`.
    for key in ["b.b.c", "x.y.q"] {
        let err = bus
            .publish(&x, key, Bytes::from_static(b"nobody"))
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::Unroutable { .. }), "{key}: {err:?}");
    }
    let expect = [
        ("star", vec!["a.b.c"]),
        ("hash", vec!["a.b.c", "a.b.b.c", "a", "a.c"]),
        ("mid", vec!["x.z", "x.y.y.z"]),
    ];
    for (q, keys) in expect {
        let mut c = bus.consume(&n.queue(q), 0).await.unwrap();
        for key in keys {
            let d = next(&mut c).await;
            assert_eq!(d.routing_key, key, "queue {q}");
            d.ack().await.unwrap();
        }
        assert_quiet(&mut c, q).await;
    }
    cleanup(bus, n, &["star", "hash", "mid"]).await;
}

/// Messages of one queue arrive in publish order.
async fn order_within_queue(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("order");
    declare_bound_queue(bus, &q, &x, &["n.*"]).await.unwrap();
    for i in 0..100 {
        publish(bus, &x, "n.i", &i.to_string()).await;
    }
    let mut c = bus.consume(&q, 20).await.unwrap();
    for i in 0..100 {
        let d = next(&mut c).await;
        assert_eq!(text(&d), i.to_string());
        d.ack().await.unwrap();
    }
    assert_quiet(&mut c, "exactly 100").await;
    cleanup(bus, n, &["order"]).await;
}

/// A message left unacked comes back, marked `redelivered`, once its consumer is gone (RabbitMQ:
/// its channel closed); an acked one does not.
async fn unacked_is_redelivered(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("redeliver");
    declare_bound_queue(bus, &q, &x, &["r"]).await.unwrap();
    publish(bus, &x, "r", "first").await;
    publish(bus, &x, "r", "second").await;
    {
        let mut c = bus.consume(&q, 10).await.unwrap();
        let d1 = next(&mut c).await;
        assert_eq!(text(&d1), "first");
        assert!(!d1.redelivered);
        d1.ack().await.unwrap();
        let d2 = next(&mut c).await;
        assert_eq!(text(&d2), "second");
        assert!(!d2.redelivered);
        // d2 is dropped unacked together with its consumer.
    }
    let mut c = bus.consume(&q, 10).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "second");
    assert!(
        d.redelivered,
        "a message that was delivered before is marked redelivered"
    );
    d.ack().await.unwrap();
    assert_quiet(&mut c, "the acked message is not redelivered").await;
    cleanup(bus, n, &["redeliver"]).await;
}

/// `nack(requeue = true)` puts the message back; `nack(requeue = false)` drops it.
async fn nack_requeue(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("nack");
    declare_bound_queue(bus, &q, &x, &["k"]).await.unwrap();
    publish(bus, &x, "k", "m").await;
    let mut c = bus.consume(&q, 1).await.unwrap();
    let d = next(&mut c).await;
    assert!(!d.redelivered);
    d.nack(true).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "m");
    assert!(d.redelivered);
    d.nack(false).await.unwrap();
    assert_quiet(&mut c, "nack without requeue drops the message").await;
    cleanup(bus, n, &["nack"]).await;
}

/// With prefetch 2, a third delivery waits until one of the first two is acked.
async fn prefetch_limit(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("prefetch");
    declare_bound_queue(bus, &q, &x, &["p"]).await.unwrap();
    for i in 0..5 {
        publish(bus, &x, "p", &i.to_string()).await;
    }
    let mut c = bus.consume(&q, 2).await.unwrap();
    let d0 = next(&mut c).await;
    let d1 = next(&mut c).await;
    assert_eq!((text(&d0), text(&d1)), ("0".to_owned(), "1".to_owned()));
    assert_quiet(&mut c, "prefetch 2 allows only 2 unacked").await;
    d0.ack().await.unwrap();
    let d2 = next(&mut c).await;
    assert_eq!(text(&d2), "2");
    assert_quiet(&mut c, "still 2 unacked").await;
    d1.ack().await.unwrap();
    d2.ack().await.unwrap();
    for i in 3..5 {
        let d = next(&mut c).await;
        assert_eq!(text(&d), i.to_string());
        d.ack().await.unwrap();
    }
    cleanup(bus, n, &["prefetch"]).await;
}

/// A mandatory publish no queue is bound for is reported, as PANIC's 5001.
async fn unroutable_is_reported(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("routed");
    declare_bound_queue(bus, &q, &x, &["bound.key"])
        .await
        .unwrap();
    let err = bus
        .publish(&x, "unbound.key", Bytes::from_static(b"lost"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BusError::Unroutable {
            exchange: x.clone(),
            routing_key: "unbound.key".to_owned()
        }
    );
    let panic_error = err.to_panic_error();
    assert_eq!(panic_error.code, ErrorCode::MessageWasNotDelivered);
    assert_eq!(panic_error.code.code(), 5001);
    // The bus still works after an unroutable publish.
    publish(bus, &x, "bound.key", "kept").await;
    let mut c = bus.consume(&q, 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "kept");
    d.ack().await.unwrap();
    cleanup(bus, n, &["routed"]).await;
}

/// Missing exchanges and queues are errors, and deleting a queue ends its consumers.
async fn missing_things_and_deletion(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("del");
    let err = bus
        .publish(&x, "k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err, BusError::NoSuchExchange(x.clone()));
    let err = bus.consume(&n.queue("never"), 1).await.unwrap_err();
    assert_eq!(err, BusError::NoSuchQueue(n.queue("never")));
    bus.declare_exchange(&x).await.unwrap();
    let err = bus
        .bind_queue(&n.queue("never"), &x, "k")
        .await
        .unwrap_err();
    assert_eq!(err, BusError::NoSuchQueue(n.queue("never")));
    // Declarations are idempotent.
    declare_bound_queue(bus, &q, &x, &["k"]).await.unwrap();
    declare_bound_queue(bus, &q, &x, &["k"]).await.unwrap();
    publish(bus, &x, "k", "one").await;
    let mut c = bus.consume(&q, 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "one");
    d.ack().await.unwrap();
    bus.delete_queue(&q).await.unwrap();
    let end = tokio::time::timeout(common::PATIENCE, c.next())
        .await
        .expect("consumer of a deleted queue ends");
    assert!(end.is_none(), "{end:?}");
    let err = bus
        .publish(&x, "k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unroutable { .. }), "{err:?}");
    bus.delete_exchange(&x).await.unwrap();
}

/// Concurrent publishes all arrive, each once.
async fn concurrent_publishes(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let q = n.queue("concurrent");
    declare_bound_queue(bus, &q, &x, &["c.#"]).await.unwrap();
    let x = x.as_str();
    let publishes = (0..200).map(|i| {
        let body = i.to_string();
        async move { bus.publish(x, "c.i", Bytes::from(body)).await }
    });
    for r in futures::future::join_all(publishes).await {
        r.unwrap();
    }
    let mut c = bus.consume(&q, 50).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let d = next(&mut c).await;
        assert!(seen.insert(text(&d)), "duplicate {d:?}");
        d.ack().await.unwrap();
    }
    assert_quiet(&mut c, "exactly 200").await;
    cleanup(bus, n, &["concurrent"]).await;
}

/// A log queue is read from its start by every reader, and what they compact (the last message
/// per routing key) is the same on both buses; the default exchange reaches it by name; a reader
/// also gets what comes later.
async fn log_queue_last_per_key(bus: &dyn Bus, n: &Names) {
    let x = n.exchange();
    let log = n.queue("log");
    bus.declare_exchange(&x).await.unwrap();
    let retention = LogRetention {
        max_bytes: 1024 * 1024,
        segment_bytes: 64 * 1024,
    };
    bus.declare_log_queue(&log, retention).await.unwrap();
    bus.bind_queue(&log, &x, "cfg.#").await.unwrap();
    publish(bus, &x, "cfg.a", "a1").await;
    publish(bus, &x, "cfg.b", "b1").await;
    publish(bus, &x, "cfg.a", "a2").await;
    publish(bus, "", &log, "direct").await;
    let mut first = bus.consume_log(&log, 10).await.unwrap();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    want.insert("cfg.a".to_owned(), "a2".to_owned());
    want.insert("cfg.b".to_owned(), "b1".to_owned());
    want.insert(log.clone(), "direct".to_owned());
    assert_eq!(read_compacted(&mut first, &want, 4).await, want);
    publish(bus, &x, "cfg.c", "c1").await;
    let later = next(&mut first).await;
    assert_eq!(later.routing_key, "cfg.c");
    assert_eq!(text(&later), "c1");
    later.ack().await.unwrap();
    // A second reader reads it all from the start.
    let mut second = bus.consume_log(&log, 10).await.unwrap();
    want.insert("cfg.c".to_owned(), "c1".to_owned());
    assert_eq!(read_compacted(&mut second, &want, 5).await, want);
    drop(first);
    drop(second);
    bus.delete_queue(&log).await.unwrap();
    bus.delete_exchange(&x).await.unwrap();
}

/// Read at most `max` deliveries, keeping the last body per routing key, until that is `want`.
async fn read_compacted(
    c: &mut monitor_bus::Consumer,
    want: &BTreeMap<String, String>,
    max: usize,
) -> BTreeMap<String, String> {
    let mut last = BTreeMap::new();
    for _ in 0..max {
        let d = next(c).await;
        last.insert(d.routing_key.clone(), text(&d));
        d.ack().await.unwrap();
        if &last == want {
            break;
        }
    }
    last
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use monitor_bus::MemoryBus;
            $(
                #[tokio::test]
                async fn $check() {
                    let bus = MemoryBus::new();
                    super::$check(&bus, &super::Names::new()).await;
                }
            )*
        }
        mod amqp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let bus = crate::common::amqp_bus_at(
                        &crate::common::amqp_url(),
                        concat!("conformance-", stringify!($check)),
                    )
                    .await;
                    super::$check(&bus, &super::Names::new()).await;
                    bus.close().await;
                }
            )*
        }
    };
}

conformance!(
    fan_out,
    topic_matching,
    order_within_queue,
    unacked_is_redelivered,
    nack_requeue,
    prefetch_limit,
    unroutable_is_reported,
    missing_things_and_deletion,
    concurrent_publishes,
    log_queue_last_per_key,
);
