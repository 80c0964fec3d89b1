//! The Substrate monitors against an in-test websocket JSON-RPC server replaying the fixtures of
//! `fixtures/substrate/` (format: `scripts/substrate-fixtures/README.md`).

mod metadata;
mod network;
mod node;
mod planner;
mod rpc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// The Substrate fixtures.
pub(crate) const SUBSTRATE_FIXTURES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/substrate");

/// A fixture file as JSON.
pub(crate) fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{SUBSTRATE_FIXTURES}/{path}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A metadata file's hex.
pub(crate) fn metadata_hex(file: &str) -> String {
    std::fs::read_to_string(format!("{SUBSTRATE_FIXTURES}/{file}"))
        .unwrap()
        .trim()
        .to_owned()
}

/// One node of a scenario, replayed.
struct NodeData {
    file: Value,
    metadata: BTreeMap<String, String>,
}

/// The replay server of one node file: answers the README's methods from the current round.
pub(crate) struct Replay {
    addr: SocketAddr,
    data: Arc<NodeData>,
    round: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    server: Option<tokio::task::JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Replay {
    /// Serves `<scenario>/<node>.json` on a free local port, at its first round.
    pub(crate) async fn start(scenario: &str, node: &str) -> Replay {
        let file = fixture(&format!("{scenario}/{node}.json"));
        let mut metadata = BTreeMap::new();
        for path in file["rpc"]["state_getMetadata"]
            .as_object()
            .unwrap()
            .values()
        {
            let path = path.as_str().unwrap().to_owned();
            metadata
                .entry(path.clone())
                .or_insert_with(|| metadata_hex(&path));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut replay = Replay {
            addr,
            data: Arc::new(NodeData { file, metadata }),
            round: Arc::new(AtomicUsize::new(0)),
            calls: Arc::default(),
            connections: Arc::default(),
            server: None,
            tls: None,
        };
        replay.serve(listener);
        replay
    }

    /// The same over TLS (`wss://`, the test server's self-signed certificate).
    pub(crate) async fn start_tls(scenario: &str, node: &str) -> Replay {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut replay = Replay::start(scenario, node).await;
        replay.down().await;
        let certs =
            CertificateDer::pem_slice_iter(monitor_strategies::testing::TEST_CERT_PEM.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
        let key_pem =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing/key.pem")).unwrap();
        let key = PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        replay.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        replay.up().await;
        replay
    }

    fn serve(&mut self, listener: TcpListener) {
        let data = Arc::clone(&self.data);
        let round = Arc::clone(&self.round);
        let calls = Arc::clone(&self.calls);
        let connections = Arc::clone(&self.connections);
        let tls = self.tls.clone();
        // Owned by `self.server`: aborted and awaited by `down`, aborted on drop.
        #[allow(clippy::disallowed_methods)]
        let server = tokio::spawn(async move {
            // Dropping (aborting) this task drops the set and so every open connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let data = Arc::clone(&data);
                let round = Arc::clone(&round);
                let calls = Arc::clone(&calls);
                let connections = Arc::clone(&connections);
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve_ws(stream, &data, &round, &calls, &connections).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_ws(stream, &data, &round, &calls, &connections).await;
                            }
                        }
                    }
                });
            }
        });
        self.server = Some(server);
    }

    /// `ws://127.0.0.1:<port>`
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Switches to the round named `name`.
    pub(crate) fn set_round(&self, name: &str) {
        let rounds = self.data.file["rounds"].as_array().unwrap();
        let i = rounds.iter().position(|r| r["name"] == name).unwrap();
        self.round.store(i, Ordering::SeqCst);
    }

    /// Stops listening and closes every connection (the node goes down).
    pub(crate) async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// The methods called so far, in order.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many websocket connections are open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// One websocket connection: answers requests until the client closes.
async fn serve_ws<S>(
    stream: S,
    data: &NodeData,
    round: &AtomicUsize,
    calls: &Mutex<Vec<String>>,
    connections: &AtomicUsize,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    connections.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let req: Value = serde_json::from_str(&text).unwrap();
        let method = req["method"].as_str().unwrap_or("").to_owned();
        calls.lock().unwrap().push(method.clone());
        let r = round.load(Ordering::SeqCst);
        let answer = match answer(data, r, &method, &req["params"]) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": req["id"], "result": result}),
            Err(message) => json!({"jsonrpc": "2.0", "id": req["id"],
                "error": {"code": 4003, "message": message}}),
        };
        if ws.send(Message::text(answer.to_string())).await.is_err() {
            break;
        }
    }
    connections.fetch_sub(1, Ordering::SeqCst);
}

fn answer(data: &NodeData, round: usize, method: &str, params: &Value) -> Result<Value, String> {
    let file = &data.file;
    let rpc = &file["rpc"];
    let round = &file["rounds"][round];
    let best = round["best"].as_str().unwrap().to_owned();
    let p = |i: usize| params.get(i).filter(|v| !v.is_null());
    let at = |i: usize| {
        p(i).and_then(Value::as_str)
            .map_or(best.clone(), str::to_owned)
    };
    let storage_at = |hash: &str| -> Result<&serde_json::Map<String, Value>, String> {
        file["storage"][hash]
            .as_object()
            .ok_or_else(|| format!("State already discarded for {hash}"))
    };
    Ok(match method {
        "system_health" | "system_properties" | "system_chain" | "system_name"
        | "system_version" => rpc[method].clone(),
        "system_syncState" => round["system_syncState"].clone(),
        "chain_getFinalizedHead" => round["finalized"].clone(),
        "chain_getBlockHash" => match p(0) {
            None => Value::String(best),
            Some(n) => rpc["chain_getBlockHash"]
                .get(n.to_string())
                .cloned()
                .unwrap_or(Value::Null),
        },
        "chain_getHeader" => rpc["chain_getHeader"][at(0)].clone(),
        "state_getRuntimeVersion" | "chain_getRuntimeVersion" => {
            rpc["state_getRuntimeVersion"][at(0)].clone()
        }
        "state_getMetadata" => {
            let path = rpc["state_getMetadata"][at(0)]
                .as_str()
                .ok_or("no metadata at that block")?;
            Value::String(data.metadata[path].clone())
        }
        "state_getStorage" => {
            let key = p(0).and_then(Value::as_str).ok_or("no key")?;
            storage_at(&at(1))?.get(key).cloned().unwrap_or(Value::Null)
        }
        "state_queryStorageAt" => {
            let hash = at(1);
            let map = storage_at(&hash)?;
            let changes: Vec<Value> = p(0)
                .and_then(Value::as_array)
                .ok_or("no keys")?
                .iter()
                .map(|k| {
                    json!([
                        k,
                        map.get(k.as_str().unwrap_or(""))
                            .cloned()
                            .unwrap_or(Value::Null)
                    ])
                })
                .collect();
            json!([{"block": hash, "changes": changes}])
        }
        "state_getKeysPaged" => {
            let prefix = p(0).and_then(Value::as_str).unwrap_or("0x");
            let count = p(1).and_then(Value::as_u64).unwrap_or(1000) as usize;
            let start = p(2).and_then(Value::as_str).unwrap_or("");
            let map = storage_at(&at(3))?;
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| k.starts_with(prefix) && k.as_str() > start)
                .collect();
            keys.sort();
            Value::Array(
                keys.into_iter()
                    .take(count)
                    .map(|k| Value::String(k.clone()))
                    .collect(),
            )
        }
        "state_call" => {
            let f = p(0).and_then(Value::as_str).unwrap_or("");
            rpc["state_call"][f][at(2)].clone()
        }
        "rpc_methods" => json!({"methods": [
            "system_health", "system_properties", "system_syncState", "chain_getFinalizedHead",
            "chain_getBlockHash", "chain_getHeader", "state_getRuntimeVersion",
            "state_getMetadata", "state_getStorage", "state_queryStorageAt", "state_getKeysPaged"]}),
        other => return Err(format!("Method not found: {other}")),
    })
}
