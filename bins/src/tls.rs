//! The TLS flags every binary shares, as clap structs flattened into each binary's `Args`:
//! [`AmqpTlsArgs`] (`--amqp-ca-file`, `--amqp-client-cert`, `--amqp-client-key`,
//! `--amqp-insecure-skip-verify`) and [`RedisTlsArgs`] (the same with `redis`), each with its
//! env variable, turned into the libraries' [`TlsOptions`].
//!
//! Used for `amqps://` and `rediss://` URLs only. With no CA file the system's trust store is
//! used (`SSL_CERT_FILE` still works). The `…-insecure-skip-verify` flags are for tests: the
//! binaries warn at start, loudly, that anyone can impersonate the server.

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use monitor_bus::tls::insecure_warning;
use monitor_bus::TlsOptions;

/// TLS of the RabbitMQ connection (`amqps://`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AmqpTlsArgs {
    /// amqps://: PEM file of the CA certificate(s) that signed the broker's certificate, trusted
    /// instead of the system's store. Env: AMQP_CA_FILE.
    #[arg(long, value_name = "FILE", env = "AMQP_CA_FILE")]
    pub amqp_ca_file: Option<PathBuf>,

    /// amqps://: PEM file of the client certificate, for a broker that asks for one
    /// (`ssl_options.verify = verify_peer`). Env: AMQP_CLIENT_CERT.
    #[arg(
        long,
        value_name = "FILE",
        env = "AMQP_CLIENT_CERT",
        requires = "amqp_client_key"
    )]
    pub amqp_client_cert: Option<PathBuf>,

    /// amqps://: PEM file of the client certificate's private key. Env: AMQP_CLIENT_KEY.
    #[arg(
        long,
        value_name = "FILE",
        env = "AMQP_CLIENT_KEY",
        requires = "amqp_client_cert"
    )]
    pub amqp_client_key: Option<PathBuf>,

    /// amqps://: do not verify the broker's certificate. FOR TESTS ONLY (warns at start).
    /// Env: AMQP_INSECURE_SKIP_VERIFY=true.
    #[arg(long, env = "AMQP_INSECURE_SKIP_VERIFY", value_parser = FalseyValueParser::new())]
    pub amqp_insecure_skip_verify: bool,
}

impl AmqpTlsArgs {
    /// The bus's TLS settings.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.amqp_ca_file.clone(),
            client_cert_file: self.amqp_client_cert.clone(),
            client_key_file: self.amqp_client_key.clone(),
            accept_invalid_certs: self.amqp_insecure_skip_verify,
        }
    }

    /// Warn, loudly, when verification is off (call once at start).
    pub fn warn_if_insecure(&self, url: &str) {
        warn_if_insecure(self.amqp_insecure_skip_verify, "RabbitMQ", "amqps:", url);
    }
}

/// The flags to name after a RabbitMQ TLS failure.
pub const AMQP_TLS_HINT: &str =
    "TLS options: --amqp-ca-file (AMQP_CA_FILE) for the CA that signed \
     the broker's certificate; --amqp-client-cert and --amqp-client-key (AMQP_CLIENT_CERT, \
     AMQP_CLIENT_KEY) when the broker requires a client certificate";

/// TLS of the Redis connection (`rediss://`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedisTlsArgs {
    /// rediss://: PEM file of the CA certificate(s) that signed Redis's certificate, trusted
    /// instead of the system's store. Env: REDIS_CA_FILE.
    #[arg(long, global = true, value_name = "FILE", env = "REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// rediss://: PEM file of the client certificate, for a Redis that asks for one
    /// (`tls-auth-clients yes`). Env: REDIS_CLIENT_CERT.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "REDIS_CLIENT_CERT",
        requires = "redis_client_key"
    )]
    pub redis_client_cert: Option<PathBuf>,

    /// rediss://: PEM file of the client certificate's private key. Env: REDIS_CLIENT_KEY.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "REDIS_CLIENT_KEY",
        requires = "redis_client_cert"
    )]
    pub redis_client_key: Option<PathBuf>,

    /// rediss://: do not verify Redis's certificate. FOR TESTS ONLY (warns at start).
    /// Env: REDIS_INSECURE_SKIP_VERIFY=true.
    #[arg(long, global = true, env = "REDIS_INSECURE_SKIP_VERIFY", value_parser = FalseyValueParser::new())]
    pub redis_insecure_skip_verify: bool,
}

impl RedisTlsArgs {
    /// The Redis clients' TLS settings.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.redis_ca_file.clone(),
            client_cert_file: self.redis_client_cert.clone(),
            client_key_file: self.redis_client_key.clone(),
            accept_invalid_certs: self.redis_insecure_skip_verify,
        }
    }

    /// Warn, loudly, when verification is off (call once at start).
    pub fn warn_if_insecure(&self, url: &str) {
        warn_if_insecure(self.redis_insecure_skip_verify, "Redis", "rediss:", url);
    }
}

/// The flags to name after a Redis TLS failure.
pub const REDIS_TLS_HINT: &str = "TLS options: --redis-ca-file (REDIS_CA_FILE) for the CA that \
     signed Redis's certificate; --redis-client-cert and --redis-client-key (REDIS_CLIENT_CERT, \
     REDIS_CLIENT_KEY) when Redis requires a client certificate (tls-auth-clients)";

fn warn_if_insecure(insecure: bool, what: &str, tls_scheme: &str, url: &str) {
    if !insecure {
        return;
    }
    if url.starts_with(tls_scheme) {
        let line = insecure_warning(what);
        // Three lines, so it cannot be missed among the start-up lines.
        for _ in 0..3 {
            tracing::warn!("{line}");
        }
    } else {
        tracing::warn!(
            "the {what} insecure-skip-verify option is set but the URL is not {tls_scheme}//: ignored"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Both {
        #[command(flatten)]
        amqp: AmqpTlsArgs,
        #[command(flatten)]
        redis: RedisTlsArgs,
    }

    #[test]
    fn flags_make_options() {
        let args = Both::try_parse_from([
            "x",
            "--amqp-ca-file",
            "/ca.pem",
            "--amqp-client-cert",
            "/c.pem",
            "--amqp-client-key",
            "/k.pem",
            "--redis-insecure-skip-verify",
        ])
        .unwrap();
        let amqp = args.amqp.options();
        assert_eq!(amqp.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(amqp.client_key_file, Some(PathBuf::from("/k.pem")));
        assert!(!amqp.accept_invalid_certs);
        assert!(args.redis.options().accept_invalid_certs);
        assert_eq!(args.redis.options().ca_file, None);
    }

    #[test]
    fn a_certificate_needs_its_key() {
        assert!(Both::try_parse_from(["x", "--redis-client-cert", "/c.pem"]).is_err());
    }
}
