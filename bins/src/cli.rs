//! What the binaries share: logging, the shutdown signal, env and flag parsing, and connecting to
//! RabbitMQ.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use monitor_bus::{AmqpBus, AmqpSettings, BusError, TlsOptions};
use monitor_core::PeriodGroup;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A binary's exit status from what its `run` returned: success, or the error on stderr after the
/// program's name and exit status 2 (a bad flag, an unreadable file, a service that cannot start).
pub fn exit_status(program: &str, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Install the tracing subscriber on stderr. `RUST_LOG` wins; else PANIC's `LOGGING_LEVEL`
/// (`DEBUG`, `INFO`, …); else `info`.
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("LOGGING_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".to_owned());
    let filter = with_quiet_payloads(filter);
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("invalid log filter {filter:?} ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// lapin logs every message the broker returns (an unroutable mandatory publish) at WARN with its
/// whole body as a byte array (one line per round, payload included), and three ERROR lines for
/// every failed connection attempt during an outage. The bus logs both its own way (unroutable
/// publishes counted and rate-limited, lost connections and reconnection attempts rate-limited),
/// so lapin is silenced unless the filter names `lapin` itself.
pub fn with_quiet_payloads(filter: String) -> String {
    if filter.contains("lapin") {
        filter
    } else {
        format!("{filter},lapin=off")
    }
}

/// The binaries' shutdown signal: a token cancelled on the first SIGINT or SIGTERM, and the task
/// that listens for them, owned here. [`Signals::stop`] ends the listener (if no signal came) and
/// waits for it; a binary calls it once its work has stopped.
#[derive(Debug)]
pub struct Signals {
    token: CancellationToken,
    listener: JoinHandle<()>,
}

impl Signals {
    /// Start listening for SIGINT and SIGTERM (on a task of the current runtime).
    pub fn listen() -> Self {
        let token = CancellationToken::new();
        // Owned: `Signals::stop` aborts and awaits the handle.
        #[allow(clippy::disallowed_methods)]
        let listener = tokio::spawn(cancel_on_signal(token.clone()));
        Signals { token, listener }
    }

    /// The token cancelled on the first signal (give it, or a child of it, to the services).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Stop listening and wait for the listener to end.
    pub async fn stop(self) {
        self.listener.abort();
        if let Err(e) = self.listener.await {
            if e.is_panic() {
                tracing::error!(error = %e, "the signal listener panicked");
            }
        }
    }
}

/// Run `work` with a token cancelled on the first SIGINT or SIGTERM; when `work` ends, stop
/// listening (see [`Signals`]) and return what it returned.
pub async fn with_signals<T, Fut>(work: impl FnOnce(CancellationToken) -> Fut) -> T
where
    Fut: std::future::Future<Output = T>,
{
    let signals = Signals::listen();
    let out = work(signals.token()).await;
    signals.stop().await;
    out
}

/// Wait for the first SIGINT or SIGTERM, then cancel `token`.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    token.cancel();
}

/// Parse a duration: `30`, `30s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The periods PANIC's env variables set (`SYSTEM_MONITOR_PERIOD_SECONDS`, …). A variable that is
/// set but not a positive number of seconds is an error naming it.
pub fn periods_from_env() -> Result<BTreeMap<PeriodGroup, Duration>, String> {
    periods_from(|name| std::env::var(name).ok())
}

/// [`periods_from_env`] over any lookup (testable).
pub fn periods_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<PeriodGroup, Duration>, String> {
    let mut out = BTreeMap::new();
    for group in PeriodGroup::ALL {
        let name = group.env_name();
        if let Some(v) = lookup(name) {
            let secs: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{name}={v:?} is not a number of seconds"))?;
            if !secs.is_finite() || secs <= 0.0 || secs > 1e7 {
                return Err(format!("{name}={v:?} must be a positive number of seconds"));
            }
            out.insert(group, Duration::from_secs_f64(secs));
        }
    }
    Ok(out)
}

/// The request timeout of a group: the configured one, but always below the period (90 % of it),
/// so a slow target gives an error envelope rather than a cut-off round.
pub fn timeout_below_period(request_timeout: Duration, period: Duration) -> Duration {
    request_timeout.min(period.mul_f64(0.9))
}

/// Check that `url` is an AMQP URL (`amqp://` or `amqps://`, host, optional port and vhost):
/// a URL that cannot parse is a mistake to report at once, not an outage to retry.
pub fn check_amqp_url(url: &str) -> Result<(), String> {
    url.parse::<lapin::uri::AMQPUri>().map(|_| ()).map_err(|e| {
        format!(
            "--amqp-url / AMQP_URL `{}` is not an AMQP URL (amqp://user:password@host:port/vhost): {e}",
            redact_url(url)
        )
    })
}

/// Connect to RabbitMQ, retrying with capped backoff until it answers or `shutdown` (then
/// `Ok(None)`). A URL that does not parse is an error at once (see [`check_amqp_url`]). No TLS
/// options: see [`connect_amqp_with_tls`].
pub async fn connect_amqp(
    url: &str,
    connection_name: &str,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<AmqpBus>>, String> {
    connect_amqp_with_tls(url, connection_name, &TlsOptions::default(), shutdown).await
}

/// [`connect_amqp`] with the TLS settings of an `amqps://` URL. A TLS failure (the broker's
/// certificate does not verify, it wants a client certificate, a file cannot be read) is an error
/// at once, explained and naming the flags: waiting does not fix it.
pub async fn connect_amqp_with_tls(
    url: &str,
    connection_name: &str,
    tls: &TlsOptions,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<AmqpBus>>, String> {
    check_amqp_url(url)?;
    let mut settings = AmqpSettings::new(url);
    settings.connection_name = connection_name.to_owned();
    settings.tls = tls.clone();
    let mut delay = Duration::from_millis(500);
    loop {
        match AmqpBus::connect(settings.clone()).await {
            Ok(bus) => return Ok(Some(Arc::new(bus))),
            Err(BusError::Tls(e)) => {
                return Err(format!(
                    "cannot connect to RabbitMQ: {e} ({})",
                    crate::tls::AMQP_TLS_HINT
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %redact_url(url), retry_in = ?delay, "cannot connect to RabbitMQ");
            }
        }
        if shutdown
            .run_until_cancelled(tokio::time::sleep(delay))
            .await
            .is_none()
        {
            return Ok(None);
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

pub use monitor_core::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "s", "10x", "-1", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods() {
        let p = periods_from(|n| (n == "SYSTEM_MONITOR_PERIOD_SECONDS").then(|| "5".to_owned()))
            .unwrap();
        assert_eq!(p.get(&PeriodGroup::System), Some(&Duration::from_secs(5)));
        assert_eq!(p.len(), 1);
        let err = periods_from(|n| (n == "NODE_MONITOR_PERIOD_SECONDS").then(|| "x".to_owned()))
            .unwrap_err();
        assert!(err.contains("NODE_MONITOR_PERIOD_SECONDS"));
        assert!(periods_from(|_| Some("0".to_owned())).is_err());
    }

    #[test]
    fn timeouts_stay_below_period() {
        let t = timeout_below_period(Duration::from_secs(10), Duration::from_secs(10));
        assert!(t < Duration::from_secs(10));
        let t = timeout_below_period(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(t, Duration::from_secs(10));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
