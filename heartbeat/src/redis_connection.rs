//! The one way this workspace opens Redis (feature `redis`): the health checker's sink and the
//! monitorables store both connect through [`connection_manager`], so a `rediss://` URL, its CA,
//! client certificate and `#insecure` mean the same everywhere, and a bad URL's error names it
//! with its password redacted.

use std::time::Duration;

use monitor_bus::TlsOptions;
use monitor_core::redact_url;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ClientTlsConfig, TlsCertificates};

/// A [`ConnectionManager`] for `url` that connects lazily (so a service can start before Redis),
/// reconnects with capped exponential backoff (at most 2 s between tries) and bounds every command
/// with a timeout (2 s to connect, 5 s per response). `tls` applies to `rediss://` URLs only.
///
/// The error is a message naming the URL with its password replaced by `***`
/// (``redis url `rediss://:***@host:6380`: …``).
pub fn connection_manager(url: &str, tls: &TlsOptions) -> Result<ConnectionManager, String> {
    let config_error = |e: &dyn std::fmt::Display| format!("redis url `{}`: {e}", redact_url(url));
    let client = redis_client(url, tls).map_err(|e| config_error(&e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(3);
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| config_error(&e))
}

/// The client for `url`: for `rediss://`, with `tls`'s CA and client certificate, and `#insecure`
/// appended when verification is off.
fn redis_client(url: &str, tls: &TlsOptions) -> Result<redis::Client, String> {
    if !url.starts_with("rediss:") {
        return redis::Client::open(url).map_err(|e| e.to_string());
    }
    let url = if tls.accept_invalid_certs && !url.contains('#') {
        format!("{url}#insecure")
    } else {
        url.to_owned()
    };
    let pem = tls.read_pem().map_err(|e| e.to_string())?;
    if pem.ca.is_none() && pem.client.is_none() {
        return redis::Client::open(url).map_err(|e| e.to_string());
    }
    let certificates = TlsCertificates {
        client_tls: pem.client.map(|(client_cert, client_key)| ClientTlsConfig {
            client_cert,
            client_key,
        }),
        root_cert: pem.ca,
    };
    redis::Client::build_with_tls(url, certificates).map_err(|e| e.to_string())
}
