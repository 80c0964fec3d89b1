//! A TCP proxy to the machine's RabbitMQ for outage tests: it passes bytes, holds them
//! (blackhole: connections stay open, nothing moves), or refuses (open connections are closed, new
//! ones closed at once). Listens on 127.0.0.1 only; its tasks end when it is dropped.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The machine's RabbitMQ, which the proxy forwards to.
const RABBITMQ: &str = "127.0.0.1:5672";

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes flow.
    Pass,
    /// Bytes are held (nothing read, nothing sent), connections stay open.
    Blackhole,
    /// Open connections are closed, new ones closed at once.
    Refuse,
}

/// A TCP proxy to RabbitMQ on 127.0.0.1 (see the module documentation).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    _tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts the proxy on a free loopback port, passing traffic.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the test proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the test proxy's address: {e}"));
        let mode = watch::Sender::new(ProxyMode::Pass);
        let mut tasks = JoinSet::new();
        let modes = mode.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                while connections.try_join_next().is_some() {}
                if *modes.borrow() == ProxyMode::Refuse {
                    drop(client);
                    continue;
                }
                connections.spawn(relay(client, modes.subscribe()));
            }
        });
        Proxy {
            addr,
            mode,
            _tasks: tasks,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (an AMQP URL of the machine's RabbitMQ, `127.0.0.1:5672`) through this proxy.
    pub fn url(&self, url: &str) -> String {
        url.replace(RABBITMQ, &self.addr.to_string())
    }

    /// Switches the proxy to `mode`, for open connections and new ones.
    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }
}

async fn relay(client: TcpStream, mode: watch::Receiver<ProxyMode>) {
    let Ok(upstream) = TcpStream::connect(RABBITMQ).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    // Either direction ending closes both.
    tokio::select! {
        () = pipe(cr, uw, mode.clone()) => {}
        () = pipe(ur, cw, mode) => {}
    }
}

async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = match mode.wait_for(|m| *m != ProxyMode::Blackhole).await {
            Ok(m) => *m,
            Err(_) => return,
        };
        if now == ProxyMode::Refuse {
            return;
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
