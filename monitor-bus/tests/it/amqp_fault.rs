//! Fault tests on the real RabbitMQ: the broker force-closes the bus's connection
//! (`rabbitmqctl close_all_connections -p <vhost>`) while it is publishing and consuming.
//!
//! Each test runs in a vhost of its own (created and deleted by the test), so closing "all
//! connections" closes only this test's, never another test's or another engineer's.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::Vhost;
use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings};
use monitor_bus::{Bus, BusError};

/// Confirmed publishes required between and after the forced closes.
const STEP: usize = 300;

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < give_up, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every publish that returned `Ok` is in the queue after two forced disconnections, publishing
/// resumes by itself, and the same `Consumer` keeps receiving across reconnections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_forced_disconnections() {
    let vhost = Vhost::create("panic-fault");
    let bus = Arc::new(common::amqp_bus_at(&vhost.url(), "fault-stream").await);
    let (x, q) = ("fault-x", "fault-q");
    declare_bound_queue(bus.as_ref(), q, x, &["stream.#"])
        .await
        .unwrap();

    // A consumer running through the faults, acking what it gets (an ack on a dead channel fails
    // and the message comes again: duplicates are allowed).
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let mut consumer = bus.consume(q, 50).await.unwrap();
    let consumer_task = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut ack_failures = 0u32;
            while let Some(d) = consumer.next().await {
                let n: u32 = std::str::from_utf8(&d.body).unwrap().parse().unwrap();
                received.lock().unwrap().insert(n);
                match d.ack().await {
                    Ok(()) => {}
                    Err(BusError::AckFailed(_)) => ack_failures += 1,
                    Err(e) => panic!("ack: {e}"),
                }
            }
            ack_failures
        })
    };

    // The publisher: a numbered stream, recording what was confirmed, until told to stop.
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, confirmed, failed, stop) =
            (bus.clone(), confirmed.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                match bus.publish(x, "stream.n", Bytes::from(i.to_string())).await {
                    Ok(()) => confirmed.lock().unwrap().push(i),
                    Err(e) => failed.lock().unwrap().push((i, e)),
                }
                i += 1;
            }
            i
        })
    };

    let count = || confirmed.lock().unwrap().len();
    wait_until("publishing progresses", || count() >= 400).await;
    for round in 1..=2u64 {
        // The publisher is running: the connection is closed mid-stream.
        let out = vhost.close_connections().await;
        assert!(out.contains("Closed 1 connections"), "{out}");
        let after_close = count();
        wait_until("the bus reconnects", || bus.reconnections() >= round).await;
        // Messages published after the close are confirmed: publishing resumed by itself.
        wait_until("publishing resumes", || count() >= after_close + STEP).await;
    }
    stop.store(true, Ordering::SeqCst);
    let published = publisher.await.unwrap();

    let confirmed: Vec<u32> = confirmed.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "a sequential publisher never overflows the outbox, every publish must end confirmed: {failed:?}"
    );
    assert_eq!(confirmed.len(), published as usize);
    assert!(bus.reconnections() >= 2);
    assert_eq!(bus.dropped(), 0);
    assert_eq!(bus.outbox_len(), 0);

    let want: BTreeSet<u32> = confirmed.into_iter().collect();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<u32> = want
            .difference(&received.lock().unwrap())
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{} confirmed messages never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    bus.delete_queue(q).await.unwrap();
    bus.delete_exchange(x).await.unwrap();
    bus.close().await;
    let ack_failures = tokio::time::timeout(Duration::from_secs(20), consumer_task)
        .await
        .expect("the consumer ends when the bus closes")
        .unwrap();
    eprintln!("ack failures across the faults: {ack_failures}");
}

/// While the broker is away, publishes wait in the bounded outbox; past its capacity they are
/// dropped, counted and reported; the waiting ones are confirmed after reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_is_bounded_and_drops_are_counted() {
    const CAPACITY: usize = 3;
    const PUBLISHES: usize = 10;
    common::init_tracing();
    let vhost = Vhost::create("panic-outbox");
    // A long backoff keeps the broker "away" long enough for the publishes below to queue up.
    let bus = Arc::new(
        AmqpBus::connect(AmqpSettings {
            url: vhost.url(),
            outbox_capacity: CAPACITY,
            min_backoff: Duration::from_secs(6),
            max_backoff: Duration::from_secs(6),
            connection_name: "fault-outbox".to_owned(),
            ..AmqpSettings::default()
        })
        .await
        .unwrap(),
    );
    let (x, q) = ("outbox-x", "outbox-q");
    declare_bound_queue(bus.as_ref(), q, x, &["#"])
        .await
        .unwrap();
    bus.publish(x, "before", Bytes::from_static(b"before"))
        .await
        .unwrap();

    let out = vhost.close_connections().await;
    assert!(out.contains("Closed 1 connections"), "{out}");
    wait_until("the bus notices the loss", || !bus.is_connected()).await;

    let tasks: Vec<_> = (0..PUBLISHES)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish(x, "during", Bytes::from(i.to_string())).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(BusError::OutboxFull)))
        .count();
    assert_eq!(ok, CAPACITY, "{results:?}");
    assert_eq!(full, PUBLISHES - CAPACITY, "{results:?}");
    assert_eq!(bus.dropped(), (PUBLISHES - CAPACITY) as u64);
    assert_eq!(bus.outbox_len(), 0);
    assert_eq!(bus.reconnections(), 1);

    let mut c = bus.consume(q, 10).await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..=CAPACITY {
        let d = common::next(&mut c).await;
        bodies.push(common::text(&d));
        d.ack().await.unwrap();
    }
    assert_eq!(bodies[0], "before");
    common::assert_quiet(&mut c, "dropped messages are not delivered").await;
    drop(c);
    bus.delete_queue(q).await.unwrap();
    bus.delete_exchange(x).await.unwrap();
    bus.close().await;
}

/// A delivery received before the connection died cannot be acked (`AckFailed`); the broker
/// delivers it again, marked `redelivered`, to the same `Consumer` after the reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_delivery_comes_back_to_the_same_consumer() {
    let vhost = Vhost::create("panic-redeliver");
    let bus = common::amqp_bus_at(&vhost.url(), "fault-redeliver").await;
    let (x, q) = ("redeliver-x", "redeliver-q");
    declare_bound_queue(&bus, q, x, &["k"]).await.unwrap();
    bus.publish(x, "k", Bytes::from_static(b"m")).await.unwrap();
    let mut c = bus.consume(q, 1).await.unwrap();
    let d = common::next(&mut c).await;
    assert!(!d.redelivered);

    let out = vhost.close_connections().await;
    assert!(out.contains("Closed 1 connections"), "{out}");
    wait_until("the bus reconnects", || bus.reconnections() >= 1).await;
    let err = d.ack().await.unwrap_err();
    assert!(matches!(err, BusError::AckFailed(_)), "{err:?}");

    let again = common::next(&mut c).await;
    assert_eq!(common::text(&again), "m");
    assert!(again.redelivered);
    again.ack().await.unwrap();
    // Declarations survived the reconnection (re-declared): publishing and routing still work.
    bus.publish(x, "k", Bytes::from_static(b"after"))
        .await
        .unwrap();
    let after = common::next(&mut c).await;
    assert_eq!(common::text(&after), "after");
    after.ack().await.unwrap();
    common::assert_quiet(&mut c, "nothing else").await;
    drop(c);
    bus.delete_queue(q).await.unwrap();
    bus.delete_exchange(x).await.unwrap();
    bus.close().await;
}
