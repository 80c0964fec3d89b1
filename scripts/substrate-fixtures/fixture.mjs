// Assembles one node's replay fixture (format described in README.md) and computes `expected`.
import { State, canonicalJSON, makeChain } from './lib.mjs';
import { NodeView } from './reference.mjs';

export const FORMAT = 'panic-substrate-replay/1';

export function metadataPath(rt) { return `metadata/${rt.id}.hex`; }

// spec: { name, description, chainName, systemName, properties (as the node answers system_properties),
//   health, seed, keep (block numbers with storage; genesis and the highest block get a header only), runtimeOf(n) → rt,
//   stateOf(n, rt) → State for block n (complete: every key a reader may ask at that block),
//   rounds: [{ name, best, finalized, highest }] }
export function buildNode(spec) {
  const rt0 = spec.runtimeOf(0);
  const highest = Math.max(...spec.rounds.map((r) => r.highest));
  const keep = [...new Set([0, ...spec.keep, highest])].sort((a, b) => a - b);
  const chain = makeChain(rt0, spec.seed, keep);
  const node = {
    name: spec.name,
    rpc: { system_health: spec.health, system_properties: spec.properties },
    storage: {}, runtimeAt: {}, numberOf: {}, hashOf: {}, head: {},
  };
  const out = {
    format: FORMAT,
    description: spec.description,
    node: spec.name,
    chain: spec.chainName,
    ss58_format: spec.properties.ss58Format,
    rpc: {
      system_health: spec.health,
      system_properties: spec.properties,
      system_chain: spec.chainName,
      system_name: spec.systemName,
      system_version: spec.systemVersion || '1.0.0-fixture',
      chain_getBlockHash: {},
      chain_getHeader: {},
      state_getRuntimeVersion: {},
      state_getMetadata: {},
      state_call: { Metadata_metadata_versions: {} },
    },
    rounds: [],
    storage: {},
    legend: {},
  };
  const legend = new Map();
  for (const n of keep) {
    const b = chain[n];
    const rt = spec.runtimeOf(n);
    out.rpc.chain_getBlockHash[n] = b.hash;
    out.rpc.chain_getHeader[b.hash] = b.header;
    out.rpc.state_getRuntimeVersion[b.hash] = rt.version;
    out.rpc.state_getMetadata[b.hash] = metadataPath(rt);
    // SCALE Vec<u32> with the one metadata version the file holds
    out.rpc.state_call.Metadata_metadata_versions[b.hash] = `0x04${rt.metadataVersion.toString(16).padStart(2, '0')}000000`;
    node.runtimeAt[b.hash] = rt;
    node.numberOf[b.hash] = n;
    node.hashOf[n] = b.hash;
    if (n === 0 || !spec.keep.includes(n)) continue; // genesis, highest: header and hash only
    const st = spec.stateOf(n, rt, b);
    if (!(st instanceof State)) throw new Error('stateOf must return a State');
    out.storage[b.hash] = st.toJSON();
    node.storage[b.hash] = out.storage[b.hash];
    for (const [k, v] of st.legend) {
      if (legend.has(k) && legend.get(k) !== v && !v.startsWith('System.Events') && !v.startsWith('System.Number')) {
        throw new Error(`legend conflict for ${k}: ${legend.get(k)} / ${v}`);
      }
      if (!legend.has(k)) legend.set(k, v.startsWith('System.Events') ? 'System.Events' : v.startsWith('System.Number') ? 'System.Number' : v);
    }
  }
  out.legend = Object.fromEntries([...legend.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const r of spec.rounds) {
    out.rounds.push({
      name: r.name,
      best: chain[r.best].hash,
      finalized: chain[r.finalized].hash,
      system_syncState: { startingBlock: 0, currentBlock: r.best, highestBlock: r.highest },
    });
  }
  node.chain = chain;
  const view = new NodeView(node);
  return { out, node, view, chain };
}

// Point a node's "head" at one round (what the reference reader and a replay server call latest).
export function setRound(built, roundName) {
  const r = built.out.rounds.find((x) => x.name === roundName);
  if (!r) throw new Error(`no round ${roundName}`);
  built.node.head = { best: r.best, finalized: r.finalized };
  return r;
}

export function writeJSON(value) { return `${canonicalJSON(value)}\n`; }
