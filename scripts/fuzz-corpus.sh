#!/usr/bin/env bash
# Seed corpora for the fuzz targets (fuzz/), generated from the shared fixtures
# (../shared/fixtures, read only) and the repository's own fixtures and example configs.
# Writes fuzz/seeds/<target>/ (not committed; fuzz/corpus/<target>/ holds the minimised corpora
# that are). Each seed is framed as its target expects (selector/status bytes, then the payload):
# see the doc comment of each fuzz/fuzz_targets/<target>.rs.
#
#   scripts/fuzz-corpus.sh [OUT_DIR]      (default fuzz/seeds)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/fuzz/seeds}"
FIXTURES="${FIXTURES:-$ROOT/../shared/fixtures}"
[ -d "$FIXTURES" ] || { echo "fixtures not found at $FIXTURES (set FIXTURES)" >&2; exit 1; }
exec python3 - "$ROOT" "$OUT" "$FIXTURES" <<'PY'
import configparser, hashlib, json, os, random, struct, sys
root, out, fx = sys.argv[1:4]

def seed(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(rel):
    with open(os.path.join(fx, rel), "rb") as f:
        return f.read()

def files(sub):
    d = os.path.join(fx, sub)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []

# --- config messages (JSON bodies) and config files (ini) -------------------------------------
FIELDS = {
    "id": "node_1", "parent_id": "chain_1", "name": "node_1",
    "exporter_url": "http://127.0.0.1:9100/metrics", "monitor_system": "true",
    "repo_name": "SimplyVC/panic", "repo_namespace": "simplyvc", "monitor_repo": "true",
    "node_prometheus_urls": "http://127.0.0.1:6688/metrics,http://127.0.0.2:6688/metrics",
    "evm_nodes_urls": "http://127.0.0.1:8545", "weiwatchers_url": "https://weiwatchers.com/feeds-mainnet.json",
    "monitor_prometheus": "true", "monitor_node": "true", "monitor_contracts": "true",
    "node_http_url": "http://127.0.0.1:8545", "cosmos_rest_url": "http://127.0.0.1:1317",
    "tendermint_rpc_url": "http://127.0.0.1:26657", "prometheus_url": "http://127.0.0.1:26660/metrics",
    "operator_address": "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0",
    "monitor_cosmos_rest": "true", "monitor_tendermint_rpc": "true", "is_validator": "true",
    "is_archive_node": "false", "use_as_data_source": "true", "monitor_network": "true",
    "node_ws_url": "ws://127.0.0.1:9944", "stash_address": "5GrwvaDF2xUaPRtjELHHdQPzLbAc7nQxFbuiFp9DnmCqVsHX",
    "governance_addresses": "5GrwvaDF2xUaPRtjELHHdQPzLbAc7nQxFbuiFp9DnmCqVsHX",
}
KEYS = [
    "general.systems_config", "general.github_repos_config", "general.dockerhub_repos_config",
    "chains.cosmos.cosmoshub.nodes_config", "chains.substrate.polkadot.nodes_config",
    "chains.chainlink.ethereum.nodes_config", "chains.chainlink.ethereum.evm_nodes_config",
    "chains.cosmos.cosmoshub.systems_config", "chains.substrate.polkadot.systems_config",
]
for key in KEYS:
    two = {"node_1": dict(FIELDS), "node_2": dict(FIELDS, id="node_2", name="node_2", monitor_node="false")}
    seed("config_message", key + "\n" + json.dumps(two))
    seed("config_message", key + "\n{}")
    ini = "[DEFAULT]\nparent_id = chain_1\n\n" + "".join(
        "[%s]\n%s\n" % (sid, "".join("%s = %s\n" % kv for kv in sec.items())) for sid, sec in two.items())
    seed("config_ini", key.replace(".", "/") + ".ini\n" + ini)
seed("config_message", "general.systems_config\n" + '{"x": 3, "y": {"id": ["a"]}, "z": {"id": "z", "n": 1, "b": true}}')
for dirpath, _, names in os.walk(os.path.join(root, "examples", "config")):
    for n in names:
        if not n.endswith(".ini"):
            continue
        path = os.path.join(dirpath, n)
        rel = os.path.relpath(path, os.path.join(root, "examples", "config"))
        text = open(path).read()
        seed("config_ini", rel + "\n" + text)
        cp = configparser.ConfigParser(interpolation=None)
        cp.read_string(text)
        body = {s: dict(cp[s]) for s in cp.sections()}
        seed("config_message", rel[:-4].replace("/", ".") + "\n" + json.dumps(body))

# --- Prometheus text ----------------------------------------------------------------------------
for rel in ["node_exporter/metrics.txt", "chainlink/metrics.txt", "tendermint/metrics.txt",
            "tendermint/metrics_evmos_devnet.txt"]:
    if os.path.exists(os.path.join(fx, rel)):
        seed("prometheus", read(rel))
seed("prometheus", '# TYPE x counter\nx_total{a="1",b="q\\"uote"} 1e3\nx_created 1.5\n# TYPE s summary\ns{quantile="0.5"} NaN\ns_sum +Inf\ns_count 2\n')
# query_prometheus_text: byte 0 picks limits and request (fuzz_targets/query_prometheus_text.rs):
# the defaults with each of the four requests, and tiny limits.
PROM_TEXTS = [read(rel) for rel in ["node_exporter/metrics.txt", "chainlink/metrics.txt",
              "tendermint/metrics.txt", "tendermint/metrics_evmos_devnet.txt"]
              if os.path.exists(os.path.join(fx, rel))]
PROM_TEXTS += [t.encode() for t in [
    '# TYPE x counter\nx_total{a="1",b="q\\"uote"} 1e3\nx_created 1.5\n# TYPE s summary\ns{quantile="0.5"} NaN\ns_sum +Inf\ns_count 2\n',
    '# TYPE c counter\nc 1\nc_total 2\nu 3\n# HELP c x\nc 4\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 2\nh_count 3\nh 4\nh_sum 5\n',
    'm{a="1",b="2",a="3"} 1\nm{ a = "3" , b="2" ,} 2\nm{a="x\\"y\\\\z\\n\\q"} 3\n',
    'm{} 1\nm 2\nm{a="1"} 3\n', 'm{a="1"} 1\nm{a="2"} 2\nm{a="3"} 3\nm{a="1"} 4\n',
    'node_cpu_seconds_total{cpu="0",mode="idle"} 1\nnode_cpu_seconds_total{cpu="1",mode="idle"} 2\n',
]]
for text in PROM_TEXTS:
    for sel in [0, 2, 4, 6, 1, 0x0b, 0x4d, 0xc7]:
        seed("query_prometheus_text", bytes([sel]) + text)

# --- JSON-RPC (EVM) and ABI return data ---------------------------------------------------------
METHODS = {"eth_blockNumber": 0, "eth_syncing": 1, "eth_call": 2, "eth_getLogs": 3}
ABI = [("proxy_aggregator", 0), ("proxy_description", 1), ("getOracles", 2),
       ("withdrawablePayment", 3), ("transmitters", 6), ("owedPayment", 7)]
for n in files("evm"):
    body = read("evm/" + n)
    method = next((v for k, v in METHODS.items() if n.startswith(k)), None)
    for m in ([method] if method is not None else range(4)):
        seed("evm_rpc", bytes([m, 0]) + body)
    try:
        result = json.loads(body).get("result")
    except ValueError:
        continue
    if n.startswith("eth_call") and isinstance(result, str):
        data = bytes.fromhex(result[2:])
        which = next((v for k, v in ABI if k in n), None)
        if which is None and ("latestRoundData" in n or "getRoundData" in n):
            which = 4 if "_v3_" in n else 7
        if which is not None:
            seed("abi", bytes([which]) + data)
    if n.startswith("eth_getLogs") and isinstance(result, list):
        for log in result[:4]:
            topics = [bytes.fromhex(t[2:]) for t in log.get("topics", [])]
            seed("abi", bytes([8, len(topics)]) + b"".join(topics) + bytes.fromhex(log.get("data", "0x")[2:]))
seed("evm_rpc", bytes([0, 0]) + b'{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted","data":"0x"}}')

# --- Cosmos REST, Tendermint, GitHub, DockerHub, weiwatchers ------------------------------------
for n in files("cosmos_rest"):
    status = 2 if "404" in n else 0          # fuzz_support::STATUSES: 0 -> 200, 2 -> 404
    seed("cosmos_rest", bytes([status]) + read("cosmos_rest/" + n))
for n in files("tendermint"):
    if n.endswith(".json"):
        seed("tendermint", bytes([0]) + read("tendermint/" + n))
HEADERS = b"x-ratelimit-remaining: 59\nx-ratelimit-reset: 1700003600\nretry-after: 60\n\n"
for n in files("github"):
    body = read("github/" + n)
    if n == "releases.json":
        # The first three releases: the whole list is 79 KB.
        body = json.dumps(json.loads(body)[:3]).encode()
    seed("github", bytes([0]) + HEADERS + body)
for n in files("dockerhub"):
    seed("dockerhub", bytes([1 if "page2" not in n else 0]) + read("dockerhub/" + n))
for n in files("weiwatchers"):
    seed("weiwatchers", read("weiwatchers/" + n))

# --- Substrate: metadata and SCALE values -------------------------------------------------------
meta = os.path.join(root, "fixtures", "substrate", "metadata", "substrate-contracts-node-100.hex")
with open(meta) as f:
    seed("substrate_metadata", bytes.fromhex(f.read().strip()[2:]))
rng = random.Random(16)
for ty in list(range(0, 40)) + [rng.randrange(0, 1200) for _ in range(40)]:
    for payload in [b"", b"\x00", b"\x01" * 32, b"\x04\x2a", bytes(rng.randrange(256) for _ in range(24))]:
        seed("scale_value", struct.pack("<I", ty) + payload)

# --- Substrate: websocket JSON-RPC answers (fuzz_targets/substrate_ws_answer.rs; calls 1, 2, 3 in
# flight): each fixture's RPC results as answers (metadata left out: megabytes), errors,
# notifications, answers to no call, garbage.
for path in sorted(os.listdir(os.path.join(root, "fixtures", "substrate"))):
    d = os.path.join(root, "fixtures", "substrate", path)
    for n in (sorted(os.listdir(d)) if os.path.isdir(d) else []):
        if not n.endswith(".json") or n == "expected.json":
            continue
        with open(os.path.join(d, n)) as f:
            rpc = json.load(f).get("rpc", {})
        for i, (method, results) in enumerate(sorted(rpc.items())):
            if method == "state_getMetadata":
                continue
            values = list(results.values())[:2] if isinstance(results, dict) else [results]
            for v in values:
                frame = json.dumps({"jsonrpc": "2.0", "id": 1 + i % 4, "result": v})
                if len(frame) <= 4096:
                    seed("substrate_ws_answer", frame)
for frame in [
    '{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"Method not found"}}',
    '{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"boom","data":"0x"}}',
    '{"jsonrpc":"2.0","id":1,"error":null,"result":{"isSyncing":false,"peers":3,"shouldHavePeers":true}}',
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
    '{"jsonrpc":"2.0","id":"1","result":1}', '{"jsonrpc":"2.0","id":1.0,"result":1}',
    '{"jsonrpc":"2.0","id":18446744073709551615,"result":[]}', '{"id":1}',
    '{"jsonrpc":"2.0","method":"chain_newHead","params":{"subscription":"abc","result":{"number":"0x10"}}}',
    '{"jsonrpc":"2.0","id":1,"result":NaN}', '[{"jsonrpc":"2.0","id":1,"result":1}]', '12', 'null',
    '"x"', '\u0001garbage{{{ not json', '[' * 200, '{"a":' * 130 + '1' + '}' * 130,
]:
    seed("substrate_ws_answer", frame)
seed("substrate_ws_answer", bytes(range(256)))

# --- The manager's config diff (structure-aware: any bytes are an input) ------------------------
for i in range(16):
    seed("manager_diff", bytes(rng.randrange(256) for _ in range(rng.randrange(8, 200))))
print("seeds written to", out)
for t in sorted(os.listdir(out)):
    d = os.path.join(out, t)
    print("  %-20s %4d files %8d bytes" % (t, len(os.listdir(d)), sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))))
PY
