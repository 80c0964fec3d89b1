//! TLS test support: a [`Pki`] made at test time (a CA, a server certificate for `127.0.0.1` and
//! `localhost`, a client certificate, and a second, unrelated CA: the wrong one), and servers that
//! really speak TLS, each a child process the test owns and kills when dropped: [`TlsRedis`]
//! (`redis-server --tls-port`, milliseconds to start) and [`TlsRabbit`] (a private RabbitMQ node
//! with only a TLS listener, its own node name, ports, data and cookie; seconds to start). The
//! machine's own RabbitMQ and Redis are never touched.

// Test support: anything that goes wrong fails the test, loudly.
#![allow(clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::unique;
use crate::TlsOptions;

/// How long a server may take to start before the test fails (a bound, not an expectation).
const START_PATIENCE: Duration = Duration::from_secs(90);

/// A folder of its own under the system's temp folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `<temp>/<prefix>-<unique>`.
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {path:?}: {e}"));
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Certificates and keys made for one test, as PEM files in a folder removed when dropped.
#[derive(Debug)]
pub struct Pki {
    dir: TempDir,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the servers present: the wrong CA.
    pub wrong_ca: PathBuf,
    /// The server's certificate (SANs `localhost`, `127.0.0.1`), signed by [`Pki::ca`].
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate (client-auth usage), signed by [`Pki::ca`].
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Pki {
    /// Make a CA, a server and a client certificate signed by it, and a wrong CA.
    pub fn generate() -> Pki {
        let dir = TempDir::new("panic-tls");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
            path
        };
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params("panic-monitors test CA")
            .self_signed(&ca_key)
            .expect("CA cert");
        let ca = write("ca.pem", &ca_cert.pem());
        let issuer = Issuer::new(ca_params("panic-monitors test CA"), ca_key);

        let wrong_key = KeyPair::generate().expect("wrong CA key");
        let wrong = ca_params("some other CA")
            .self_signed(&wrong_key)
            .expect("wrong CA cert");
        let wrong_ca = write("wrong-ca.pem", &wrong.pem());

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");

        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(DnType::CommonName, "panic-monitors test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client.signed_by(&client_key, &issuer).expect("client cert");

        Pki {
            ca,
            wrong_ca,
            server_cert: write("server.pem", &server_cert.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_cert: write("client.pem", &client_cert.pem()),
            client_key: write("client.key", &client_key.serialize_pem()),
            dir,
        }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Trust [`Pki::ca`], no client certificate.
    pub fn trust(&self) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.ca.clone()),
            ..TlsOptions::default()
        }
    }

    /// Trust [`Pki::ca`] and present the client certificate.
    pub fn trust_with_client_cert(&self) -> TlsOptions {
        TlsOptions {
            client_cert_file: Some(self.client_cert.clone()),
            client_key_file: Some(self.client_key.clone()),
            ..self.trust()
        }
    }

    /// Trust only [`Pki::wrong_ca`] (and present the client certificate, so that only the server's
    /// certificate can be what fails).
    pub fn trust_wrong_ca(&self) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.wrong_ca.clone()),
            ..self.trust_with_client_cert()
        }
    }
}

/// A TCP port nobody listened on a moment ago (the OS's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A child process and its process group, killed (the whole group) and reaped when dropped.
#[derive(Debug)]
struct Owned(Child);

impl Owned {
    fn spawn(cmd: &mut Command) -> Owned {
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?} (scripts/ensure-services.sh): {e}"));
        Owned(child)
    }

    fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // The group: `rabbitmq-server` is a shell script whose Erlang VM is its child.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// `redis-server` on a TLS port only (no plain port, no persistence), with [`Pki`]'s server
/// certificate; killed when dropped.
#[derive(Debug)]
pub struct TlsRedis {
    child: Owned,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl TlsRedis {
    /// Start it; with `require_client_cert`, clients must present a certificate signed by
    /// [`Pki::ca`] (`--tls-auth-clients yes`).
    pub fn start(pki: &Pki, require_client_cert: bool) -> TlsRedis {
        let dir = TempDir::new("panic-tls-redis");
        let port = free_port();
        let log = dir.path().join("redis.log");
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let mut child = Owned::spawn(
            Command::new(bin)
                .arg("--port")
                .arg("0")
                .arg("--tls-port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--tls-cert-file")
                .arg(&pki.server_cert)
                .arg("--tls-key-file")
                .arg(&pki.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&pki.ca)
                .arg("--tls-auth-clients")
                .arg(if require_client_cert { "yes" } else { "no" })
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let started = Instant::now();
        while !port_open(port) {
            assert!(
                !child.exited() && started.elapsed() < START_PATIENCE,
                "redis-server --tls-port {port} did not start: {}",
                read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis {
            child,
            port,
            _dir: dir,
        }
    }

    /// `rediss://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        !self.child.exited()
    }
}

/// A private RabbitMQ node listening only on a TLS port (guest/guest, vhost `/`), with
/// [`Pki`]'s server certificate; killed when dropped. It shares nothing with the machine's broker
/// but epmd: its own node name, AMQP and distribution ports, data and log folders, Erlang cookie
/// and (empty) plugin list.
#[derive(Debug)]
pub struct TlsRabbit {
    /// Kept to be killed when dropped.
    _child: Owned,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
    /// How long it took to start.
    pub start_time: Duration,
}

impl TlsRabbit {
    /// Start it and wait until it accepts connections; with `require_client_cert`, clients must
    /// present a certificate signed by [`Pki::ca`] (`verify_peer`, `fail_if_no_peer_cert`).
    pub fn start(pki: &Pki, require_client_cert: bool) -> TlsRabbit {
        let dir = TempDir::new("panic-tls-rabbit");
        let port = free_port();
        let dist_port = free_port();
        let path = |name: &str| dir.path().join(name);
        let (verify, fail_if_no_peer_cert) = if require_client_cert {
            ("verify_peer", "true")
        } else {
            ("verify_none", "false")
        };
        let conf = format!(
            "listeners.tcp = none\n\
             listeners.ssl.default = 127.0.0.1:{port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = {verify}\n\
             ssl_options.fail_if_no_peer_cert = {fail_if_no_peer_cert}\n",
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
        );
        std::fs::write(path("rabbitmq.conf"), conf).expect("writing rabbitmq.conf");
        std::fs::write(path("enabled_plugins"), "[].\n").expect("writing enabled_plugins");
        std::fs::write(path("rabbitmq-env.conf"), "").expect("writing rabbitmq-env.conf");
        std::fs::create_dir_all(path("home")).expect("creating home");
        let out = path("server.log");
        let log = std::fs::File::create(&out).expect("creating server.log");
        let bin = std::env::var("RABBITMQ_SERVER_BIN")
            .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".to_owned());
        let started = Instant::now();
        let mut child = Owned::spawn(
            Command::new(bin)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", path("home"))
                .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
                .env("RABBITMQ_NODENAME", format!("panic-tls-{port}@localhost"))
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
                .env("RABBITMQ_LOG_BASE", path("log"))
                .env("RABBITMQ_CONFIG_FILE", path("rabbitmq"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
                .env("RABBITMQ_PID_FILE", path("pid"))
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log),
        );
        // Ready once it says so (its listeners are open by then).
        while !read_log(&out).contains("completed with") || !port_open(port) {
            assert!(
                !child.exited() && started.elapsed() < START_PATIENCE,
                "the TLS RabbitMQ node did not start: {}",
                read_log(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TlsRabbit {
            _child: child,
            port,
            start_time: started.elapsed(),
            dir,
        }
    }

    /// `amqps://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// What the node printed so far (for failure messages).
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("server.log"))
    }
}
