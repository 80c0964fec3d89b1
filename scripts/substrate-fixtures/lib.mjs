// Helpers of the fixture generator: real runtime metadata from @polkadot/types-support, storage keys
// and SCALE values computed offline with polkadot.js, events, headers, and a canonical JSON writer.
// Every value written is decoded back against the metadata and compared with its input (selfCheck).
import { Metadata, StorageKey, TypeRegistry, expandMetadata } from '@polkadot/types';
import { compactFromU8a, compactToU8a, hexToU8a, stringCamelCase, u8aConcat, u8aToHex } from '@polkadot/util';
import { blake2AsHex, decodeAddress, encodeAddress } from '@polkadot/util-crypto';

// ---------------------------------------------------------------------------------------------
// Runtimes

// Where each runtime's metadata and runtime version live in @polkadot/types-support 16.5.6.
export const RUNTIME_SOURCES = {
  'substrate-268': 'v15/substrate',
  'polkadot-1002005': 'v14/polkadot',
  'polkadot-2000000': 'v15/polkadot',
  'asset-hub-polkadot-2000000': 'v15/asset-hub-polkadot',
  'substrate-contracts-node-100': 'v14/substrate-contracts-node',
};

// The v15 files hold what `state_call Metadata_metadata_at_version(15)` answers (Option<OpaqueMetadata>:
// 0x01, compact length, bytes); the v14 files hold the bare metadata. Return the bare
// RuntimeMetadataPrefixed bytes (starting with the magic "meta" = 0x6d657461).
export function bareMetadata(hex) {
  const u8a = hexToU8a(hex);
  if (u8a[0] === 0x6d && u8a[1] === 0x65 && u8a[2] === 0x74 && u8a[3] === 0x61) return u8a;
  if (u8a[0] !== 0x01) throw new Error('metadata is neither bare nor Option<OpaqueMetadata>');
  const [offset, length] = compactFromU8a(u8a.subarray(1));
  const bytes = u8a.subarray(1 + offset);
  if (bytes.length !== length.toNumber()) throw new Error('metadata length prefix mismatch');
  return bytes;
}

const runtimeCache = new Map();

// A runtime = registry + decorated metadata, for one chain's properties (ss58 format of addresses).
export async function loadRuntime(id, properties) {
  const cacheKey = `${id}/${properties.ss58Format}`;
  if (runtimeCache.has(cacheKey)) return runtimeCache.get(cacheKey);
  const source = RUNTIME_SOURCES[id];
  if (!source) throw new Error(`unknown runtime ${id}`);
  const hex = (await import(`@polkadot/types-support/metadata/${source}-hex`)).default;
  const version = (await import(`@polkadot/types-support/metadata/${source}-ver`)).default;
  const bare = bareMetadata(hex);
  const registry = new TypeRegistry();
  const metadata = new Metadata(registry, bare);
  registry.setMetadata(metadata);
  registry.setChainProperties(registry.createType('ChainProperties', {
    ss58Format: properties.ss58Format,
    tokenDecimals: [properties.tokenDecimals],
    tokenSymbol: [properties.tokenSymbol],
  }));
  const decorated = expandMetadata(registry, metadata);
  if (`${version.specName}`.length === 0 || !id.endsWith(`-${version.specVersion}`)) {
    throw new Error(`runtime ${id}: version file says spec ${version.specVersion}`);
  }
  const rt = { id, source, registry, metadata, decorated, version, metadataHex: u8aToHex(bare), properties,
    metadataVersion: metadata.version };
  runtimeCache.set(cacheKey, rt);
  return rt;
}

export function hasItem(rt, pallet, item) {
  return !!rt.decorated.query[stringCamelCase(pallet)]?.[stringCamelCase(item)];
}

export function storageFn(rt, pallet, item) {
  const fn = rt.decorated.query[stringCamelCase(pallet)]?.[stringCamelCase(item)];
  if (!fn) throw new Error(`${rt.id} has no storage ${pallet}.${item}`);
  return fn;
}

export function valueTypeName(rt, fn) {
  const t = fn.meta.type;
  return rt.registry.createLookupType(t.isPlain ? t.asPlain : t.asMap.value);
}

export function constant(rt, pallet, name) {
  const c = rt.decorated.consts[stringCamelCase(pallet)]?.[stringCamelCase(name)];
  return c === undefined ? null : c;
}

// ---------------------------------------------------------------------------------------------
// Accounts: deterministic 32-byte ids (no keys needed), shown in the chain's SS58 format.

export function accountId(name) {
  return blake2AsHex(`panic-monitors fixture account ${name}`, 256);
}

export function ss58(idHex, format) {
  return encodeAddress(hexToU8a(idHex), format);
}

export function idOf(address) {
  return u8aToHex(decodeAddress(address));
}

// ---------------------------------------------------------------------------------------------
// Self-check: the decoded value must cover every field of the input, with equal values.

function lowerFirst(s) { return s.length ? s[0].toLowerCase() + s.slice(1) : s; }

function isNumeric(x) {
  return typeof x === 'bigint' || typeof x === 'number' || (typeof x === 'string' && /^(0x[0-9a-f]+|-?[0-9]+)$/i.test(x));
}

export function covers(input, decoded, path = '$') {
  if (input === null || input === undefined) {
    if (decoded !== null && decoded !== undefined) throw new Error(`${path}: expected null, decoded ${JSON.stringify(decoded)}`);
    return;
  }
  if (typeof input === 'bigint' || typeof input === 'number') {
    if (!isNumeric(decoded) || BigInt(decoded) !== BigInt(input)) throw new Error(`${path}: input ${input}, decoded ${JSON.stringify(decoded)}`);
    return;
  }
  if (typeof input === 'boolean') {
    if (decoded !== input) throw new Error(`${path}: input ${input}, decoded ${JSON.stringify(decoded)}`);
    return;
  }
  if (typeof input === 'string') {
    if (typeof decoded !== 'string') throw new Error(`${path}: input ${input}, decoded ${JSON.stringify(decoded)}`);
    if (input.startsWith('0x') || decoded.startsWith('0x')) {
      const a = input.startsWith('0x') ? input.toLowerCase() : null;
      const b = decoded.toLowerCase();
      if (a !== b && !(a === null && input === decoded)) {
        // an address given as hex and decoded as ss58 (or the reverse)
        let ok = false;
        try { ok = idOf(input) === idOf(decoded); } catch (e) { ok = false; }
        if (!ok) throw new Error(`${path}: input ${input}, decoded ${decoded}`);
      }
      return;
    }
    if (input !== decoded) {
      let ok = false;
      try { ok = idOf(input) === idOf(decoded); } catch (e) { ok = false; }
      if (!ok) throw new Error(`${path}: input ${input}, decoded ${decoded}`);
    }
    return;
  }
  if (Array.isArray(input)) {
    if (!Array.isArray(decoded) || decoded.length !== input.length) throw new Error(`${path}: input has ${input.length} items, decoded ${JSON.stringify(decoded)}`);
    input.forEach((x, i) => covers(x, decoded[i], `${path}[${i}]`));
    return;
  }
  if (typeof input === 'object') {
    if (decoded === null || typeof decoded !== 'object') throw new Error(`${path}: input object, decoded ${JSON.stringify(decoded)}`);
    for (const [k, v] of Object.entries(input)) {
      const dk = [k, lowerFirst(k), stringCamelCase(k)].find((c) => Object.prototype.hasOwnProperty.call(decoded, c));
      if (dk === undefined) {
        // a map keyed by address: input in hex, decoded in ss58
        const byId = Object.keys(decoded).find((c) => { try { return idOf(c) === idOf(k); } catch (e) { return false; } });
        if (byId === undefined) throw new Error(`${path}: field ${k} missing in decoded ${JSON.stringify(decoded)}`);
        covers(v, decoded[byId], `${path}.${k}`);
      } else {
        covers(v, decoded[dk], `${path}.${k}`);
      }
    }
    return;
  }
  throw new Error(`${path}: cannot compare ${typeof input}`);
}

// Decode `hex` as `typeName` and require: every byte consumed, re-encoding identical.
// Errors carry `malformed: true` (what a monitor reports as 5033 / 5034).
export function decodeExact(rt, typeName, hex) {
  const malformed = (m) => Object.assign(new Error(m), { malformed: true });
  const u8a = hexToU8a(hex);
  let decoded;
  try {
    decoded = rt.registry.createTypeUnsafe(typeName, [u8a]);
  } catch (e) {
    throw malformed(`${typeName}: ${e.message}`);
  }
  if (decoded.encodedLength !== u8a.length) throw malformed(`${typeName}: ${u8a.length - decoded.encodedLength} bytes left over`);
  if (u8aToHex(decoded.toU8a()) !== u8aToHex(u8a)) throw malformed(`${typeName}: re-encoding differs (input too short?)`);
  return decoded;
}

// ---------------------------------------------------------------------------------------------
// State: one block's storage, { key hex: value hex } plus the legend { key hex: human meaning }.

function describeArg(rt, a) {
  if (typeof a === 'string' && /^0x[0-9a-f]{64}$/i.test(a)) return ss58(a, rt.properties.ss58Format);
  return `${a}`;
}

export class State {
  constructor(rt) {
    this.rt = rt;
    this.values = new Map();
    this.legend = new Map();
  }

  clone(rt = this.rt) {
    const s = new State(rt);
    for (const [k, v] of this.values) s.values.set(k, v);
    for (const [k, v] of this.legend) s.legend.set(k, v);
    return s;
  }

  key(pallet, item, args = []) {
    const fn = storageFn(this.rt, pallet, item);
    const key = new StorageKey(this.rt.registry, [fn, args]).toHex();
    // self-check: the key decodes back to the same arguments
    const back = new StorageKey(this.rt.registry, key);
    back.setMeta(fn.meta, fn.section, fn.method);
    covers(args, back.args.map((a) => a.toPrimitive()), `${pallet}.${item} key`);
    return key;
  }

  // Encode `value` as the item's value type, decode it back and compare with the input.
  set(pallet, item, args, value) {
    const fn = storageFn(this.rt, pallet, item);
    const typeName = valueTypeName(this.rt, fn);
    // toU8a, not toHex: toHex of an integer is its big-endian hex, not SCALE
    const hex = u8aToHex(this.rt.registry.createTypeUnsafe(typeName, [value]).toU8a());
    const decoded = decodeExact(this.rt, typeName, hex);
    covers(value, decoded.toPrimitive(), `${pallet}.${item}(${args.join(', ')})`);
    const key = this.key(pallet, item, args);
    this.values.set(key, hex);
    this.legend.set(key, `${pallet}.${item}${args.length ? `(${args.map((a) => describeArg(this.rt, a)).join(', ')})` : ''}`);
    return key;
  }

  setRaw(key, hex, meaning) {
    this.values.set(key, hex);
    this.legend.set(key, meaning);
  }

  delete(pallet, item, args = []) {
    const key = this.key(pallet, item, args);
    this.values.delete(key);
    this.legend.delete(key);
  }

  // System.Events from records { phase, pallet, event, fields }; phase: { ApplyExtrinsic: n } |
  // 'Finalization' | 'Initialization'. Built byte by byte (pallet index, variant), then decoded back.
  setEvents(records) {
    const { registry, metadata } = this.rt;
    const parts = [compactToU8a(records.length)];
    for (const r of records) {
      const pallet = metadata.asLatest.pallets.find((p) => p.name.toString() === r.pallet);
      if (!pallet || pallet.events.isNone) throw new Error(`${this.rt.id} has no events for ${r.pallet}`);
      const evType = registry.createLookupType(pallet.events.unwrap().type);
      const inner = registry.createTypeUnsafe(evType, [{ [r.event]: r.fields }]);
      covers({ [r.event]: r.fields }, inner.toPrimitive(), `${r.pallet}.${r.event} event`);
      let phase;
      if (typeof r.phase === 'object') phase = u8aConcat([0], registry.createType('u32', r.phase.ApplyExtrinsic).toU8a());
      else if (r.phase === 'Finalization') phase = new Uint8Array([1]);
      else if (r.phase === 'Initialization') phase = new Uint8Array([2]);
      else throw new Error(`phase ${r.phase}`);
      parts.push(phase, new Uint8Array([pallet.index.toNumber()]), inner.toU8a(), compactToU8a(0));
    }
    const hex = u8aToHex(u8aConcat(...parts));
    const fn = storageFn(this.rt, 'System', 'Events');
    const decoded = decodeExact(this.rt, valueTypeName(this.rt, fn), hex);
    if (decoded.length !== records.length) throw new Error('event count');
    decoded.forEach((rec, i) => {
      const r = records[i];
      if (rec.event.section !== stringCamelCase(r.pallet) || rec.event.method !== r.event) {
        throw new Error(`event ${i}: decoded ${rec.event.section}.${rec.event.method}`);
      }
    });
    const key = this.key('System', 'Events');
    this.values.set(key, hex);
    this.legend.set(key, `System.Events [${records.map((r) => `${r.pallet}.${r.event}`).join(', ')}]`);
    return key;
  }

  toJSON() {
    return Object.fromEntries([...this.values.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}

// ---------------------------------------------------------------------------------------------
// Blocks: real headers (hash = blake2 of the SCALE header). Only the numbers in `keep` are built;
// a block's parent is the previous kept block when that is n - 1, else a stand-in hash.

export function makeChain(rt, seed, keep) {
  const blocks = {};
  for (const n of [...keep].sort((x, y) => x - y)) {
    let parentHash;
    if (n === 0) parentHash = `0x${'00'.repeat(32)}`;
    else if (blocks[n - 1]) parentHash = blocks[n - 1].hash;
    else parentHash = blake2AsHex(`${seed} block ${n - 1}`, 256);
    const header = rt.registry.createType('Header', {
      parentHash,
      number: n,
      stateRoot: blake2AsHex(`${seed} state ${n}`, 256),
      extrinsicsRoot: blake2AsHex(`${seed} extrinsics ${n}`, 256),
      digest: { logs: [] },
    });
    // as chain_getHeader answers: the number as a hex string
    blocks[n] = { number: n, hash: header.hash.toHex(), header: { ...header.toJSON(), number: `0x${n.toString(16)}` } };
  }
  return blocks;
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON: sorted keys, BigInt as plain integer digits, 1 item per line, newline at the end.

export function canonicalJSON(value, indent = '') {
  const next = `${indent}  `;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`unsafe number ${value}: use a BigInt`);
    return String(value);
  }
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => canonicalJSON(v)).join(', ')}]`;
    return `[\n${value.map((v) => next + canonicalJSON(v, next)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    if (keys.length === 0) return '{}';
    return `{\n${keys.map((k) => `${next}${JSON.stringify(k)}: ${canonicalJSON(value[k], next)}`).join(',\n')}\n${indent}}`;
  }
  throw new Error(`cannot write ${typeof value}`);
}

export { blake2AsHex, hexToU8a, u8aToHex, stringCamelCase };
