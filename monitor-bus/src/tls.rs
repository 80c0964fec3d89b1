//! TLS settings of a connection (RabbitMQ's `amqps://`, Redis's `rediss://`), as plain data the
//! binaries build from their flags; the rustls client configuration made from them; and what a
//! failed handshake means, worded for the person who has to fix it.
//!
//! The same [`TlsOptions`] serve the bus (here) and the Redis clients of `monitorables-store` and
//! `heartbeat` (which hand [`TlsOptions::read_pem`] to the `redis` crate), so both kinds of
//! connection trust the same things the same way:
//!
//! * a CA file given: exactly the certificates in it (not the system's store as well);
//! * no CA file: the system's trust store (`rustls-native-certs`, which honours `SSL_CERT_FILE`);
//! * a client certificate and key given: presented when the server asks for one;
//! * `accept_invalid_certs`: the server's certificate is not checked at all (tests only; the
//!   binaries warn loudly when it is set).

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// TLS settings of one connection. The default trusts the system's store and presents no client
/// certificate. Only used for `amqps://` and `rediss://` URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust instead of the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) to present when the server asks for one.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
    /// Do not verify the server's certificate at all (for tests only: anyone between us and the
    /// server can read and change everything, passwords included).
    pub accept_invalid_certs: bool,
}

/// A TLS setting that cannot be used (a file that cannot be read or holds no certificate, a
/// certificate without its key, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS settings: {0}")]
pub struct TlsError(pub String);

/// The PEM contents of [`TlsOptions`]' files, read and checked (for clients that parse PEM
/// themselves, such as the `redis` crate's).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    /// The CA bundle, if a CA file is given.
    pub ca: Option<Vec<u8>>,
    /// The client certificate (chain) and its key, if given.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a private key.
        f.debug_struct("TlsPem")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("client", &self.client.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl TlsOptions {
    /// What the server's certificate is checked against, for messages: `the CA file `/x``, `the
    /// system's trust store`, or `nothing (verification is off)`.
    pub fn trusted(&self) -> String {
        if self.accept_invalid_certs {
            "nothing (certificate verification is off)".to_owned()
        } else if let Some(ca) = &self.ca_file {
            format!("the CA file `{}`", ca.display())
        } else {
            "the system's trust store".to_owned()
        }
    }

    /// The client certificate presented, for messages.
    fn client_identity(&self) -> String {
        match &self.client_cert_file {
            Some(cert) => format!("the client certificate `{}`", cert.display()),
            None => "no client certificate".to_owned(),
        }
    }

    /// Read and check the files: the CA file must hold at least one certificate, the client
    /// certificate and key come together and must parse.
    pub fn read_pem(&self) -> Result<TlsPem, TlsError> {
        let ca = match &self.ca_file {
            Some(path) => {
                read_certs(path, "CA file")?;
                Some(read(path, "CA file")?)
            }
            None => None,
        };
        let client = match self.identity()? {
            Some((cert, key)) => {
                Some((read(cert, "client certificate")?, read(key, "client key")?))
            }
            None => None,
        };
        Ok(TlsPem { ca, client })
    }

    fn identity(&self) -> Result<Option<(&Path, &Path)>, TlsError> {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                read_certs(cert, "client certificate")?;
                PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| TlsError(format!("the client key `{}`: {e}", key.display())))?;
                Ok(Some((cert, key)))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError(
                "a client certificate is given without its key".to_owned(),
            )),
            (None, Some(_)) => Err(TlsError(
                "a client key is given without its certificate".to_owned(),
            )),
        }
    }

    /// The rustls client configuration these settings describe (aws-lc-rs, TLS 1.2 and 1.3).
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            match &self.ca_file {
                Some(path) => {
                    for cert in read_certs(path, "CA file")? {
                        roots.add(cert).map_err(|e| {
                            TlsError(format!("the CA file `{}`: {e}", path.display()))
                        })?;
                    }
                }
                None => {
                    let loaded = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(loaded.certs);
                    if roots.is_empty() {
                        let why: Vec<String> =
                            loaded.errors.iter().map(|e| e.to_string()).collect();
                        return Err(TlsError(format!(
                            "the system's trust store has no usable CA certificate ({}); give a CA file",
                            why.join("; ")
                        )));
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        match self.identity()? {
            Some((cert, key)) => {
                let chain = read_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| TlsError(format!("the client key `{}`: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError(format!("the client certificate and key: {e}")))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("the {what} `{}`: {e}", path.display())))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("the {what} `{}`: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "the {what} `{}` holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The verifier of [`TlsOptions::accept_invalid_certs`]: any certificate, any name; handshake
/// signatures are still checked (so the connection is encrypted, to whoever answered).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS handshake failed, found in an error's chain by [`tls_failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate did not verify against what we trust (unknown issuer, wrong name,
    /// expired, …).
    ServerCertificate(String),
    /// The server refused the handshake with an alert about certificates: it wants a client
    /// certificate we did not send, or does not accept the one we sent.
    Rejected(String),
    /// Any other TLS error (e.g. the port does not speak TLS).
    Other(String),
    /// The server reset or closed the connection during the handshake or right after it while
    /// we presented no client certificate: under TLS 1.3 a server that requires one checks it
    /// after the client has finished, and its refusal can reach us as a reset before its alert
    /// can be read ([`closed_without_client_certificate`]).
    ClosedWithoutClientCertificate(String),
}

/// The TLS error in `err`'s chain (looking through `std::io::Error`s, which hide the error they
/// wrap from `source()`), classified; `None` when the failure is not TLS's. Some clients (the
/// `redis` crate's connection manager) pass errors on as text only: then rustls's wording is
/// recognised in the message.
pub fn tls_failure(err: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    typed_tls_failure(err).or_else(|| tls_failure_in_text(&err.to_string()))
}

/// A connection attempt to a TLS server, with no client certificate configured in `tls`, that
/// the server reset or closed (`err`'s chain holds an I/O error of kind connection reset, broken
/// pipe, connection aborted or unexpected end of file): possibly its refusal for want of a client
/// certificate (see [`TlsFailure::ClosedWithoutClientCertificate`]). `None` otherwise, and
/// whenever a client certificate is configured. Use it only for connection attempts, not for a
/// connection lost later.
pub fn closed_without_client_certificate(
    err: &(dyn StdError + 'static),
    tls: &TlsOptions,
) -> Option<TlsFailure> {
    if tls.client_cert_file.is_some() {
        return None;
    }
    closed_in_chain(err).then(|| TlsFailure::ClosedWithoutClientCertificate(err.to_string()))
}

/// Whether `err`'s chain holds an I/O error of kind reset, broken pipe, aborted or unexpected end
/// of file.
fn closed_in_chain(err: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    find_in_chain(err, &|e| {
        e.downcast_ref::<std::io::Error>()
            .filter(|io| {
                matches!(
                    io.kind(),
                    ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
                )
            })
            .map(|_| ())
    })
    .is_some()
}

/// The first error of `err`'s chain for which `found` answers, looking through
/// `std::io::Error`s, which hide the error they wrap from `source()`.
fn find_in_chain<T>(
    err: &(dyn StdError + 'static),
    found: &dyn Fn(&(dyn StdError + 'static)) -> Option<T>,
) -> Option<T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(answer) = found(e) {
            return Some(answer);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(answer) = find_in_chain(inner, found) {
                return Some(answer);
            }
        }
        next = e.source();
    }
    None
}

/// [`tls_failure`] from a message alone: rustls's wording of a certificate it did not accept
/// (`invalid peer certificate: …`) or of an alert about ours (`received fatal alert: …`).
fn tls_failure_in_text(text: &str) -> Option<TlsFailure> {
    const ALERTS: [&str; 9] = [
        "CertificateRequired",
        "BadCertificate",
        "UnknownCA",
        "UnsupportedCertificate",
        "CertificateRevoked",
        "CertificateExpired",
        "CertificateUnknown",
        "AccessDenied",
        "HandshakeFailure",
    ];
    if let Some(at) = text.find("invalid peer certificate: ") {
        return Some(TlsFailure::ServerCertificate(text[at..].to_owned()));
    }
    let at = text.find("received fatal alert: ")?;
    let alert = &text[at..];
    if ALERTS
        .iter()
        .any(|a| alert["received fatal alert: ".len()..].starts_with(a))
    {
        Some(TlsFailure::Rejected(alert.to_owned()))
    } else {
        Some(TlsFailure::Other(alert.to_owned()))
    }
}

fn typed_tls_failure(err: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    find_in_chain(err, &|e| e.downcast_ref::<rustls::Error>().map(classify))
}

fn classify(e: &rustls::Error) -> TlsFailure {
    match e {
        rustls::Error::InvalidCertificate(_) => TlsFailure::ServerCertificate(e.to_string()),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied
            | AlertDescription::HandshakeFailure,
        ) => TlsFailure::Rejected(e.to_string()),
        _ => TlsFailure::Other(e.to_string()),
    }
}

impl TlsFailure {
    /// Whether it is the server's certificate that did not verify.
    pub fn is_verification(&self) -> bool {
        matches!(self, TlsFailure::ServerCertificate(_))
    }

    /// The message for a person: what failed, on which URL (give it redacted), what we trusted or
    /// presented, and what to change.
    pub fn explain(&self, redacted_url: &str, tls: &TlsOptions) -> String {
        match self {
            TlsFailure::ServerCertificate(e) => format!(
                "TLS certificate verification failed for `{redacted_url}`: {e}. The server's \
                 certificate was checked against {}: give the CA certificate that signed it as \
                 the CA file option, or fix the server's certificate",
                tls.trusted()
            ),
            TlsFailure::Rejected(e) => format!(
                "the server at `{redacted_url}` refused the TLS handshake ({e}) with {}: it \
                 requires a client certificate it accepts (the client certificate and key \
                 options)",
                tls.client_identity()
            ),
            TlsFailure::Other(e) => format!(
                "TLS handshake with `{redacted_url}` failed: {e} (does that port speak TLS?)"
            ),
            TlsFailure::ClosedWithoutClientCertificate(e) => format!(
                "the server at `{redacted_url}` closed the connection during the TLS handshake or \
                 right after it ({e}) with {}: if it requires a client certificate, that is how \
                 it refused the TLS handshake (under TLS 1.3 the refusal can arrive as a reset); \
                 give the client certificate and key options, else see the server's log",
                tls.client_identity()
            ),
        }
    }
}

/// The warning the binaries print (at start, at WARN) when verification is turned off.
pub fn insecure_warning(connection: &str) -> String {
    format!(
        "!!! TLS CERTIFICATE VERIFICATION IS OFF for {connection}: any server can pretend to be \
         it and read everything sent, passwords included. For tests only: never in production !!!"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_without_a_client_certificate_is_explained_as_a_possible_refusal() {
        use std::io::{Error, ErrorKind};
        let reset = Error::new(ErrorKind::ConnectionReset, "Connection reset by peer");
        let none = TlsOptions::default();
        let failure = closed_without_client_certificate(&reset, &none).expect("explained");
        let message = failure.explain("amqps://broker:5671/%2f", &none);
        assert!(
            message.contains("refused the TLS handshake")
                && message.contains("no client certificate")
                && message.contains("Connection reset by peer")
                && message.contains("amqps://broker:5671/%2f"),
            "{message}"
        );
        assert!(!failure.is_verification());
        // Wrapped one level down, as lapin's error holds it.
        let wrapped = Error::other(Error::new(ErrorKind::UnexpectedEof, "eof"));
        assert!(closed_without_client_certificate(&wrapped, &none).is_some());
        // Not with a client certificate configured, nor for a refused connection.
        let with_cert = TlsOptions {
            client_cert_file: Some("/c.pem".into()),
            ..TlsOptions::default()
        };
        assert!(closed_without_client_certificate(&reset, &with_cert).is_none());
        let refused = Error::new(ErrorKind::ConnectionRefused, "refused");
        assert!(closed_without_client_certificate(&refused, &none).is_none());
    }

    #[test]
    fn trusted_names_what_is_trusted() {
        let mut tls = TlsOptions::default();
        assert_eq!(tls.trusted(), "the system's trust store");
        tls.ca_file = Some("/etc/ca.pem".into());
        assert_eq!(tls.trusted(), "the CA file `/etc/ca.pem`");
        tls.accept_invalid_certs = true;
        assert!(tls.trusted().contains("verification is off"));
    }

    #[test]
    fn half_an_identity_is_an_error() {
        let tls = TlsOptions {
            client_cert_file: Some("/nonexistent/cert.pem".into()),
            ..TlsOptions::default()
        };
        let err = tls.read_pem().unwrap_err();
        assert!(err.to_string().contains("without its key"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let tls = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let err = tls.client_config().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn failures_are_found_through_io_errors() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let failure = tls_failure(&io).unwrap();
        assert!(failure.is_verification());
        let text = failure.explain("amqps://guest:***@h/%2f", &TlsOptions::default());
        assert!(text.contains("certificate verification failed"), "{text}");
        assert!(text.contains("system's trust store"), "{text}");
        let plain = std::io::Error::other("connection refused");
        assert_eq!(tls_failure(&plain), None);
        // Passed on as text only.
        let text = std::io::Error::other("Io: received fatal alert: CertificateRequired");
        assert!(matches!(tls_failure(&text), Some(TlsFailure::Rejected(_))));
        let text = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert!(tls_failure(&text).unwrap().is_verification());
    }
}
