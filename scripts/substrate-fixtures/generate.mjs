// Writes fixtures/substrate/: node generate.mjs <output folder>
// Deterministic: no clock, no randomness; the same bytes on every run.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJSON } from './lib.mjs';
import { metadataPath } from './fixture.mjs';
import { SCENARIOS } from './scenarios.mjs';

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node generate.mjs <output folder>');
  process.exit(2);
}

const only = process.argv.slice(3);
const runtimes = new Map();
const index = { format: 'panic-substrate-replay/1', metadata: {}, scenarios: {} };

rmSync(outDir, { recursive: true, force: true });
mkdirSync(join(outDir, 'metadata'), { recursive: true });

for (const scenario of SCENARIOS) {
  if (only.length && !only.includes(scenario.name)) continue;
  const t0 = Date.now();
  const result = await scenario.build();
  mkdirSync(join(outDir, scenario.name), { recursive: true });
  index.scenarios[scenario.name] = { description: scenario.description, nodes: {} };
  for (const file of result.files) {
    writeFileSync(join(outDir, scenario.name, `${file.name}.json`), `${canonicalJSON(file.json)}\n`);
    index.scenarios[scenario.name].nodes[file.name] = `${scenario.name}/${file.name}.json`;
  }
  for (const rt of result.runtimes) runtimes.set(rt.id, rt);
  console.error(`${scenario.name}: ${result.files.length} files, ${Date.now() - t0} ms`);
}

for (const [id, rt] of [...runtimes.entries()].sort()) {
  writeFileSync(join(outDir, metadataPath(rt)), `${rt.metadataHex}\n`);
  index.metadata[id] = {
    file: metadataPath(rt),
    metadata_version: rt.metadataVersion,
    spec_name: rt.version.specName,
    spec_version: rt.version.specVersion,
    source: `@polkadot/types-support@16.5.6 metadata/${rt.source}-hex.js`,
  };
}
writeFileSync(join(outDir, 'index.json'), `${canonicalJSON(index)}\n`);
