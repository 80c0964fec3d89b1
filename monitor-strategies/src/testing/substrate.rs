//! A websocket JSON-RPC server replaying the Substrate fixtures of `fixtures/substrate/` (format:
//! `scripts/substrate-fixtures/README.md`) for the Substrate monitors' tests here and in other
//! crates: one [`Replay`] per node file, at one of its rounds at a time.
//!
//! ```ignore
//! let relay = Replay::start("polkadot-assethub", "relay").await;
//! let assethub = Replay::start_sharing("polkadot-assethub", "assethub", &relay).await;
//! // Both switch to `second` at the start of the monitor's second round, never in the middle.
//! relay.switch_on_call("system_syncState", 2, "second");
//! ```

// Test support: a fixture that does not parse is a broken test, reported by the panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// The Substrate fixtures folder (`fixtures/substrate` of the workspace).
pub const SUBSTRATE_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/substrate");

/// A fixture file (`<scenario>/<file>.json`, relative to [`SUBSTRATE_FIXTURES`]) as JSON.
pub fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{SUBSTRATE_FIXTURES}/{path}"))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A metadata file's hex (`metadata/<name>.hex`, relative to [`SUBSTRATE_FIXTURES`]).
pub fn metadata_hex(file: &str) -> String {
    std::fs::read_to_string(format!("{SUBSTRATE_FIXTURES}/{file}"))
        .unwrap_or_else(|e| panic!("metadata {file}: {e}"))
        .trim()
        .to_owned()
}

/// One node of a scenario, replayed.
struct NodeData {
    file: Value,
    metadata: BTreeMap<String, String>,
}

/// A scheduled round switch: at this server's `nth` call of `method`.
struct Switch {
    method: String,
    nth: usize,
    round: String,
}

/// What the server's connections share.
struct Shared {
    data: NodeData,
    /// The current round's name; shared by the replays of one case ([`Replay::start_sharing`]).
    round: Arc<Mutex<String>>,
    calls: Mutex<Vec<String>>,
    connections: AtomicUsize,
    switches: Mutex<Vec<Switch>>,
}

/// The replay server of one node file: answers the README's methods from the current round.
/// It listens on `127.0.0.1`; dropping it stops it and closes its connections.
pub struct Replay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Serves `<scenario>/<node>.json` on a free local port, at its first round.
    pub async fn start(scenario: &str, node: &str) -> Replay {
        Replay::start_with_round(scenario, node, None).await
    }

    /// The same, sharing `leader`'s round (by name): the nodes of one case move together, by
    /// [`Replay::set_round`] or a scheduled switch of either server.
    pub async fn start_sharing(scenario: &str, node: &str, leader: &Replay) -> Replay {
        Replay::start_with_round(scenario, node, Some(Arc::clone(&leader.shared.round))).await
    }

    async fn start_with_round(
        scenario: &str,
        node: &str,
        round: Option<Arc<Mutex<String>>>,
    ) -> Replay {
        let file = fixture(&format!("{scenario}/{node}.json"));
        let mut metadata = BTreeMap::new();
        for path in file["rpc"]["state_getMetadata"]
            .as_object()
            .expect("rpc.state_getMetadata")
            .values()
        {
            let path = path.as_str().expect("a metadata path").to_owned();
            metadata
                .entry(path.clone())
                .or_insert_with(|| metadata_hex(&path));
        }
        let first = file["rounds"][0]["name"]
            .as_str()
            .expect("rounds[0].name")
            .to_owned();
        let round = round.unwrap_or_else(|| Arc::new(Mutex::new(first)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut replay = Replay {
            addr,
            shared: Arc::new(Shared {
                data: NodeData { file, metadata },
                round,
                calls: Mutex::default(),
                connections: AtomicUsize::default(),
                switches: Mutex::default(),
            }),
            server: None,
            tls: None,
        };
        replay.serve(listener);
        replay
    }

    /// The same over TLS (`wss://`, the self-signed [`super::TEST_CERT_PEM`]).
    pub async fn start_tls(scenario: &str, node: &str) -> Replay {
        let mut replay = Replay::start(scenario, node).await;
        replay.down().await;
        replay.tls = Some(super::tls_acceptor().expect("the test certificate"));
        replay.up().await;
        replay
    }

    fn serve(&mut self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
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
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve_ws(stream, &shared).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_ws(stream, &shared).await;
                            }
                        }
                    }
                });
                // Reap finished connections.
                while conns.try_join_next().is_some() {}
            }
        });
        self.server = Some(server);
    }

    /// `ws://127.0.0.1:<port>` (`wss://` for [`Replay::start_tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Switches to the round named `name` (and so every replay sharing this one's round).
    pub fn set_round(&self, name: &str) {
        let rounds = self.shared.data.file["rounds"].as_array().unwrap();
        assert!(
            rounds.iter().any(|r| r["name"] == name),
            "no round `{name}` in this node file"
        );
        *self.shared.round.lock().unwrap() = name.to_owned();
    }

    /// The current round's name.
    pub fn round(&self) -> String {
        self.shared.round.lock().unwrap().clone()
    }

    /// Schedules a switch to round `name`, made when this server receives its `nth` call
    /// (1-based, counting every call since it started) of `method`, before answering it. With the
    /// method a monitor calls once, first, in every round (`system_syncState` on a node monitor's
    /// node, `system_health` on a network monitor's first data source), round `nth` of that
    /// monitor is the first to see round `name`, all of it.
    pub fn switch_on_call(&self, method: &str, nth: usize, name: &str) {
        self.shared.switches.lock().unwrap().push(Switch {
            method: method.to_owned(),
            nth,
            round: name.to_owned(),
        });
    }

    /// Stops listening and closes every connection (the node goes down).
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// The methods called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// How many websocket connections are open.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
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
async fn serve_ws<S>(stream: S, shared: &Shared)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    shared.connections.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(req) = serde_json::from_str::<Value>(&text) else {
            break;
        };
        let method = req["method"].as_str().unwrap_or("").to_owned();
        let nth = {
            let mut calls = shared.calls.lock().unwrap();
            calls.push(method.clone());
            calls.iter().filter(|m| **m == method).count()
        };
        let switch = shared
            .switches
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.method == method && s.nth == nth)
            .map(|s| s.round.clone());
        let round = {
            let mut round = shared.round.lock().unwrap();
            if let Some(name) = switch {
                *round = name;
            }
            round.clone()
        };
        let answer = match answer(&shared.data, &round, &method, &req["params"]) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": req["id"], "result": result}),
            Err(message) => json!({"jsonrpc": "2.0", "id": req["id"],
                "error": {"code": 4003, "message": message}}),
        };
        if ws.send(Message::text(answer.to_string())).await.is_err() {
            break;
        }
    }
    shared.connections.fetch_sub(1, Ordering::SeqCst);
}

fn answer(data: &NodeData, round: &str, method: &str, params: &Value) -> Result<Value, String> {
    let file = &data.file;
    let rpc = &file["rpc"];
    let round = file["rounds"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == round))
        .ok_or_else(|| format!("no round `{round}` in this node file"))?;
    let best = round["best"]
        .as_str()
        .ok_or("round without best")?
        .to_owned();
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
