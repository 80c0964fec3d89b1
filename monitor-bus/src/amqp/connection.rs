//! Connection supervision: the live [`Link`] in a `watch` channel, waiting for it, declarations
//! on side channels, and the supervisor task that reconnects with backoff and re-declares.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, TLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::topology::{redeclare, Op, Topology};
use super::AmqpSettings;
use crate::tls::{closed_without_client_certificate, tls_failure};
use crate::BusError;

/// How often the supervisor checks the connection's state besides lapin's error events.
pub(super) const STATUS_POLL: Duration = Duration::from_millis(250);

/// One live connection and its generation (1 for the first, +1 per reconnection).
pub(super) struct Link {
    pub(super) generation: u64,
    pub(super) conn: Connection,
}

impl Link {
    pub(super) fn alive(&self) -> bool {
        self.conn.status().connected()
    }
}

pub(super) struct Shared {
    pub(super) settings: AmqpSettings,
    /// The TLS connector of an `amqps://` URL, built once from `settings.tls`.
    pub(super) tls: Option<RustlsConnector>,
    pub(super) link: watch::Sender<Option<Arc<Link>>>,
    pub(super) topology: Mutex<Topology>,
    /// The publishing channel (with the generation of the link it belongs to). Its lock is the FIFO
    /// that keeps publishes (and the outbox) in order.
    pub(super) publisher: tokio::sync::Mutex<Option<(u64, Channel)>>,
    pub(super) outbox: AtomicUsize,
    pub(super) dropped: AtomicU64,
    pub(super) reconnections: AtomicU64,
    /// Subscriptions found stuck and resubscribed.
    pub(super) consumer_restarts: AtomicU64,
    pub(super) next_id: AtomicU64,
    pub(super) shutdown: CancellationToken,
    /// Owns the consumer tasks, so that [`super::AmqpBus::close`] waits for them to end.
    pub(super) consumers: tokio_util::task::TaskTracker,
}

/// Open one connection to `url`: over our own rustls connector when there is one (`amqps://`),
/// else as lapin does by default.
pub(super) async fn open(
    url: &str,
    props: ConnectionProperties,
    tls: Option<&RustlsConnector>,
) -> Result<Connection, lapin::Error> {
    let Some(connector) = tls else {
        return Connection::connect(url, props).await;
    };
    let uri: AMQPUri = url
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if uri.scheme != AMQPScheme::AMQPS {
        return Connection::connect(url, props).await;
    }
    let connector = connector.clone();
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            // TCP as lapin does it (the URI made plain), then our TLS handshake on top.
            let mut plain = uri.clone();
            plain.scheme = AMQPScheme::AMQP;
            let stream = plain
                .connect_with_config_async(TLSConfig::default(), &runtime)
                .await?;
            Ok(stream.into_rustls(&connector, &uri.authority.host).await?)
        },
        props,
    )
    .await
}

/// A failed connection attempt as a [`BusError`]: a TLS failure explained (URL redacted, what is
/// trusted, what to change) as [`BusError::Tls`] (the binaries stop on it: waiting will not mend
/// it), anything else as [`BusError::Broker`] (retried). `tls` is the connector of an `amqps://`
/// URL: such an attempt the broker reset or closed while we presented no client certificate stays
/// a [`BusError::Broker`], since a reset may be transient, but says that it may be a refusal for
/// want of one: a broker with `fail_if_no_peer_cert` under TLS 1.3 checks the certificate after
/// our side of the handshake and its alert can be lost to the reset that follows it.
pub(super) fn connect_error(
    settings: &AmqpSettings,
    tls: Option<&RustlsConnector>,
    e: &lapin::Error,
) -> BusError {
    let url = monitor_core::redact_url(&settings.url);
    if let Some(failure) = tls_failure(e) {
        return BusError::Tls(failure.explain(&url, &settings.tls));
    }
    match tls.and_then(|_| closed_without_client_certificate(e, &settings.tls)) {
        Some(closed) => BusError::Broker(format!(
            "connecting to RabbitMQ: {}",
            closed.explain(&url, &settings.tls)
        )),
        None => BusError::Broker(format!("connecting to RabbitMQ: {e}")),
    }
}

pub(super) fn lock(topology: &Mutex<Topology>) -> MutexGuard<'_, Topology> {
    topology.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn properties(&self) -> ConnectionProperties {
        ConnectionProperties::default()
            .with_connection_name(self.settings.connection_name.as_str().into())
    }

    pub(super) fn is_connected(&self) -> bool {
        self.link.borrow().as_ref().is_some_and(|l| l.alive())
    }

    /// The current link once it is alive and at least of generation `min_gen`.
    pub(super) async fn wait_link(&self, min_gen: u64) -> Result<Arc<Link>, BusError> {
        let mut rx = self.link.subscribe();
        let live = rx.wait_for(|l| {
            l.as_ref()
                .is_some_and(|l| l.generation >= min_gen && l.alive())
        });
        // Bound to a local so the watch guard is dropped before `rx`.
        let link = match self.shutdown.run_until_cancelled(live).await {
            Some(Ok(guard)) => guard.as_ref().cloned().ok_or(BusError::Closed),
            Some(Err(_)) | None => Err(BusError::Closed),
        };
        link
    }

    /// Run a declaration on a channel of its own, retrying it on the next connection when the
    /// current one dies under it.
    pub(super) async fn admin(&self, op: &Op) -> Result<(), BusError> {
        let mut min_gen = 0;
        loop {
            let link = self.wait_link(min_gen).await?;
            let attempt = async {
                match link.conn.create_channel().await {
                    Ok(ch) => {
                        let r = op.run(&ch).await;
                        if ch.status().connected() {
                            let _ = ch.close(200, "OK".into()).await;
                        }
                        r
                    }
                    Err(e) => Err(e),
                }
            };
            let Some(result) = self.bounded(attempt).await else {
                if !link.alive() {
                    min_gen = link.generation + 1;
                    continue;
                }
                return Err(BusError::Broker(format!("{op:?}: timed out")));
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if !link.alive() => {
                    debug!(?op, error = %e, "connection lost during a declaration; retrying after reconnection");
                    min_gen = link.generation + 1;
                }
                Err(e) => return Err(op.error(&e)),
            }
        }
    }

    /// `fut` within `operation_timeout`, or `None` (timed out or the bus shut down).
    pub(super) async fn bounded<F: std::future::Future>(&self, fut: F) -> Option<F::Output> {
        let timed = tokio::time::timeout(self.settings.operation_timeout, fut);
        match self.shutdown.run_until_cancelled(timed).await {
            Some(Ok(out)) => Some(out),
            Some(Err(_)) | None => None,
        }
    }

    /// How many messages are ready in `queue` (passive declare on a side channel of `link`);
    /// `None` when that cannot be known now.
    pub(super) async fn ready_count(&self, link: &Link, queue: &str) -> Option<u32> {
        let probe = async {
            let ch = link.conn.create_channel().await.ok()?;
            let declared = ch
                .queue_declare(
                    queue.into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..lapin::options::QueueDeclareOptions::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await;
            if ch.status().connected() {
                let _ = ch.close(200, "OK".into()).await;
            }
            declared.ok().map(|q| q.message_count())
        };
        self.bounded(probe).await.flatten()
    }

    /// Make sure `exchange` exists before publishing to it (passive declare on a side channel).
    pub(super) async fn ensure_exchange(&self, exchange: &str) -> Result<(), BusError> {
        if exchange.is_empty() || lock(&self.topology).known_exchanges.contains(exchange) {
            return Ok(());
        }
        self.admin(&Op::CheckExchange(exchange.to_owned())).await?;
        lock(&self.topology)
            .known_exchanges
            .insert(exchange.to_owned());
        Ok(())
    }
}

/// Keeps the connection: detects its loss, reconnects, re-declares, publishes the new link.
pub(super) async fn supervise(shared: Arc<Shared>, first: Arc<Link>) {
    let mut link = first;
    loop {
        // Watch the current connection.
        let mut events = link.conn.events_listener();
        loop {
            tokio::select! {
                _ = shared.shutdown.cancelled() => {
                    shared.link.send_replace(None);
                    if link.alive() {
                        let close = link.conn.close(200, "OK".into());
                        match tokio::time::timeout(shared.settings.operation_timeout, close).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!(error = %e, "closing the connection"),
                            Err(_) => debug!("closing the connection timed out"),
                        }
                    }
                    info!("RabbitMQ bus closed");
                    return;
                }
                event = events.next() => {
                    if let Some(lapin::Event::Error(e)) = event {
                        debug!(error = %e, "connection event");
                    }
                }
                () = tokio::time::sleep(STATUS_POLL) => {}
            }
            if !link.alive() {
                break;
            }
        }
        warn!(
            generation = link.generation,
            "RabbitMQ connection lost; reconnecting"
        );
        shared.link.send_replace(None);

        // Reconnect with backoff and re-declare the topology. Failed attempts are logged for the
        // first three, then every 15th (about every 30 s at the default 2 s cap), with how long
        // the broker has been away: a long outage is a few lines, not one per attempt.
        let mut attempt: u32 = 0;
        let lost_at = tokio::time::Instant::now();
        let loud = |attempt: u32| attempt <= 3 || attempt % 15 == 0;
        let conn = loop {
            let delay = shared.settings.reconnect_backoff().delay(attempt);
            attempt = attempt.saturating_add(1);
            if shared
                .shutdown
                .run_until_cancelled(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
            // Bounded, and cut short by shutdown: a broker that accepts TCP and never answers
            // (or a blackholed connect) must not keep the bus from closing.
            let connect = open(
                &shared.settings.url,
                shared.properties(),
                shared.tls.as_ref(),
            );
            let conn = match shared.bounded(connect).await {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    if loud(attempt) {
                        // A TLS failure is explained: it will not go away by waiting.
                        let error = connect_error(&shared.settings, shared.tls.as_ref(), &e);
                        warn!(attempt, %error, down_for = ?lost_at.elapsed(),
                            next_delay_max = ?shared.settings.max_backoff, "reconnection failed");
                    }
                    continue;
                }
                None if shared.shutdown.is_cancelled() => return,
                None => {
                    if loud(attempt) {
                        warn!(attempt, down_for = ?lost_at.elapsed(), "reconnection timed out");
                    }
                    continue;
                }
            };
            let ops = lock(&shared.topology).replay();
            match shared.bounded(redeclare(&conn, &ops)).await {
                Some(Ok(())) => break conn,
                Some(Err(e)) => {
                    warn!(attempt, error = %e, "connection lost while re-declaring; retrying");
                }
                None if shared.shutdown.is_cancelled() => return,
                None => {
                    warn!(attempt, "re-declaring timed out; reconnecting");
                    let _ = tokio::time::timeout(
                        shared.settings.operation_timeout,
                        conn.close(200, "OK".into()),
                    )
                    .await;
                }
            }
        };
        let generation = link.generation + 1;
        link = Arc::new(Link { generation, conn });
        shared.reconnections.fetch_add(1, Ordering::SeqCst);
        shared.link.send_replace(Some(link.clone()));
        info!(generation, "RabbitMQ connection re-established");
    }
}
