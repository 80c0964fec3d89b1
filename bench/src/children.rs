//! Child processes the side-by-side benchmarks start and own (the stand-in, the release
//! `monitors-manager`, Prometheus, node_exporter), a blocking HTTP/1.0 GET for talking to them,
//! and the loopback addresses that make many distinct targets on one port.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

/// The `i`-th distinct loopback address (127.0.0.2, 127.0.0.3, …; last octets 0 and 255 skipped).
/// Linux routes all of 127.0.0.0/8 to `lo`, so a server bound to `0.0.0.0` answers every one.
pub(crate) fn loopback_addr(i: usize) -> Ipv4Addr {
    let i = i + 1; // 127.0.0.1 stays the harness's own
    let hi = u32::try_from(i / 254).unwrap_or(u32::MAX);
    let lo = u8::try_from(i % 254 + 1).unwrap_or(1);
    let hi = hi.min(0xFFFF);
    Ipv4Addr::new(127, (hi >> 8) as u8, (hi & 0xFF) as u8, lo)
}

/// A free TCP port on 127.0.0.1 (bound, read, released: another process may take it in between,
/// which the caller's start-up check would show).
pub(crate) fn free_port() -> Result<u16, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::io("finding a port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("finding a port", e))
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(crate) struct Owned {
    pub(crate) child: Child,
    pub(crate) what: String,
}

impl Owned {
    /// Start `program args…` with stdout and stderr to `log` (or discarded).
    pub(crate) fn spawn(
        what: &str,
        program: &Path,
        args: &[OsString],
        envs: &[(&str, String)],
        log: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        match log {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
                let g = f
                    .try_clone()
                    .map_err(|e| BenchError::io(format!("opening {}", path.display()), e))?;
                cmd.stdout(f).stderr(g);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {what} ({})", program.display()), e))?;
        Ok(Owned {
            child,
            what: what.to_owned(),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::Setup(format!(
                "{} exited early ({status})",
                self.what
            ))),
            _ => Ok(()),
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `bench serve` stand-in child; it exits when its stdin closes (when this is dropped).
pub(crate) struct StandIn {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The bound address.
    pub(crate) addr: SocketAddr,
}

impl StandIn {
    /// `bench serve ARGS…`, waiting for its `LISTENING` line.
    pub(crate) fn start(args: &[OsString]) -> Result<Self, BenchError> {
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("locating the bench executable", e))?;
        let mut child = Command::new(exe)
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::io("starting the stand-in", e))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("the stand-in's stdout is missing".into()))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| BenchError::io("reading the stand-in's address", e))?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| BenchError::Setup(format!("the stand-in said {line:?}")))?;
        Ok(StandIn { child, stdin, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stdin.take();
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.0 (so the body is not chunked: it ends with the connection): the
/// status and the body.
pub(crate) fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), BenchError> {
    let io = |e| BenchError::io(format!("GET http://{addr}{path}"), e);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(io)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| BenchError::Setup(format!("GET http://{addr}{path}: no response head")))?;
    let head = String::from_utf8_lossy(&all[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, all[end + 4..].to_vec()))
}

/// Poll `GET path` until it answers 200 (the body), or fail after `within`.
pub(crate) fn wait_for_200(
    addr: SocketAddr,
    path: &str,
    within: Duration,
    child: &mut Owned,
) -> Result<Vec<u8>, BenchError> {
    let deadline = Instant::now() + within;
    loop {
        child.check_alive()?;
        if let Ok((200, body)) = http_get(addr, path, Duration::from_secs(5)) {
            return Ok(body);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "{} did not answer GET http://{addr}{path} within {within:?}",
                child.what
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `%`-encoding of a query-string value.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The release binary `name` beside this executable (`target/release/bench` →
/// `target/release/monitors-manager`).
pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_distinct_and_usable() {
        assert_eq!(loopback_addr(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(loopback_addr(252), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(loopback_addr(253), Ipv4Addr::new(127, 0, 1, 1));
        let all: std::collections::HashSet<_> = (0..100_000).map(loopback_addr).collect();
        assert_eq!(all.len(), 100_000);
        assert!(all
            .iter()
            .all(|a| a.is_loopback() && a.octets()[3] != 0 && a.octets()[3] != 255));
        assert_eq!(url_encode("up[5s] x"), "up%5B5s%5D%20x");
    }
}
