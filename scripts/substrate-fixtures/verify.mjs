// Reads a written fixtures folder back from disk and checks it on its own: every node file's storage
// value decodes (all bytes, identical re-encoding) as the type of the item its legend names, against
// the metadata file of its block; every key is under that item's prefix; every header hashes to its
// block hash; rounds point at stored blocks. Values the legend marks MALFORMED must NOT decode.
// node verify.mjs <fixtures folder>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, TypeRegistry, expandMetadata } from '@polkadot/types';
import { stringCamelCase, u8aToHex } from '@polkadot/util';
import { decodeExact } from './lib.mjs';

const dir = process.argv[2];
const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
const runtimes = new Map();
function runtime(path) {
  if (!runtimes.has(path)) {
    const registry = new TypeRegistry();
    const metadata = new Metadata(registry, readFileSync(join(dir, path), 'utf8').trim());
    registry.setMetadata(metadata);
    runtimes.set(path, { registry, decorated: expandMetadata(registry, metadata) });
  }
  return runtimes.get(path);
}
let values = 0;
let files = 0;
for (const [scenario, { nodes }] of Object.entries(index.scenarios)) {
  for (const [name, file] of Object.entries(nodes)) {
    if (name === 'expected') continue;
    const node = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    files++;
    for (const [hash, header] of Object.entries(node.rpc.chain_getHeader)) {
      const rt = runtime(node.rpc.state_getMetadata[hash]);
      const h = rt.registry.createType('Header', { ...header, number: BigInt(header.number) });
      if (h.hash.toHex() !== hash) throw new Error(`${file}: header of ${hash} hashes to ${h.hash.toHex()}`);
    }
    for (const r of node.rounds) {
      if (!node.storage[r.best] || !node.storage[r.finalized]) throw new Error(`${file}: round ${r.name} points at a block without storage`);
    }
    for (const [hash, map] of Object.entries(node.storage)) {
      const rt = { ...runtime(node.rpc.state_getMetadata[hash]) };
      for (const [key, value] of Object.entries(map)) {
        const meaning = node.legend[key];
        if (!meaning) throw new Error(`${file}: key ${key} has no legend`);
        const [, pallet, item] = meaning.match(/^(\w+)\.(\w+)/);
        const fn = rt.decorated.query[stringCamelCase(pallet)]?.[stringCamelCase(item)];
        if (!fn) throw new Error(`${file}: ${meaning}: no such storage item`);
        if (!key.startsWith(u8aToHex(fn.keyPrefix()))) throw new Error(`${file}: ${key} is not under ${meaning}`);
        const t = fn.meta.type;
        const typeName = rt.registry.createLookupType(t.isPlain ? t.asPlain : t.asMap.value);
        let ok = true;
        try { decodeExact(rt, typeName, value); } catch (e) { if (!e.malformed) throw e; ok = false; if (!meaning.includes('MALFORMED')) throw new Error(`${file}: ${meaning}: ${e.message}`); }
        if (ok && meaning.includes('MALFORMED')) throw new Error(`${file}: ${meaning} decodes`);
        values++;
      }
    }
  }
}
console.error(`verify: ${files} node files, ${values} storage values decode against their block's metadata`);
