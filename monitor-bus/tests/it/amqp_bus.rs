//! RabbitMQ-only behaviour of [`AmqpBus`] beyond the shared conformance suite.

use crate::common;

use bytes::Bytes;
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, BusError};

/// An exchange declared by someone else is publishable (checked passively); once it is deleted,
/// publishing to it is `NoSuchExchange` and the bus keeps publishing elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_declared_elsewhere() {
    let url = common::amqp_url();
    let owner = common::amqp_bus_at(&url, "amqp-bus-owner").await;
    let user = common::amqp_bus_at(&url, "amqp-bus-user").await;
    let suffix = common::unique();
    let (foreign, own) = (format!("foreign-x-{suffix}"), format!("own-x-{suffix}"));
    let (fq, oq) = (format!("foreign-q-{suffix}"), format!("own-q-{suffix}"));
    declare_bound_queue(&owner, &fq, &foreign, &["#"])
        .await
        .unwrap();
    declare_bound_queue(&user, &oq, &own, &["#"]).await.unwrap();

    user.publish(&foreign, "a", Bytes::from_static(b"1"))
        .await
        .unwrap();
    owner.delete_exchange(&foreign).await.unwrap();
    let err = user
        .publish(&foreign, "a", Bytes::from_static(b"2"))
        .await
        .unwrap_err();
    assert_eq!(err, BusError::NoSuchExchange(foreign.clone()));
    user.publish(&own, "a", Bytes::from_static(b"3"))
        .await
        .unwrap();

    let mut c = user.consume(&fq, 1).await.unwrap();
    let d = common::next(&mut c).await;
    assert_eq!(common::text(&d), "1");
    d.ack().await.unwrap();
    let mut c = user.consume(&oq, 1).await.unwrap();
    let d = common::next(&mut c).await;
    assert_eq!(common::text(&d), "3");
    d.ack().await.unwrap();
    drop(c);

    owner.delete_queue(&fq).await.unwrap();
    user.delete_queue(&oq).await.unwrap();
    user.delete_exchange(&own).await.unwrap();
    owner.close().await;
    user.close().await;
}

/// After `close`, operations report `Closed` and consumers end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_bus_reports_closed() {
    let bus = common::amqp_bus_at(&common::amqp_url(), "amqp-bus-close").await;
    let suffix = common::unique();
    let (x, q) = (format!("close-x-{suffix}"), format!("close-q-{suffix}"));
    declare_bound_queue(&bus, &q, &x, &["#"]).await.unwrap();
    let mut c = bus.consume(&q, 1).await.unwrap();
    bus.delete_queue(&q).await.unwrap();
    bus.delete_exchange(&x).await.unwrap();
    bus.close().await;
    assert!(!bus.is_connected());
    let end = tokio::time::timeout(common::PATIENCE, c.next())
        .await
        .unwrap();
    assert!(end.is_none());
    let err = bus
        .publish(&x, "k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err, BusError::Closed);
    assert_eq!(bus.declare_queue(&q).await.unwrap_err(), BusError::Closed);
}
