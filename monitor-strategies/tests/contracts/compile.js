// Compiles Aggregators.sol with solc-js and prints {"<contract>": {"abi": [...], "bytecode": "0x…"}}
// as JSON on stdout. Errors go to stderr with exit code 1.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const source = fs.readFileSync(path.join(__dirname, 'Aggregators.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'Aggregators.sol': { content: source } },
  settings: {
    // ganache 7 runs the Shanghai EVM at most.
    evmVersion: 'paris',
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const result = {};
for (const [name, contract] of Object.entries(output.contracts['Aggregators.sol'])) {
  result[name] = { abi: contract.abi, bytecode: '0x' + contract.evm.bytecode.object };
}
process.stdout.write(JSON.stringify(result));
