// The scenarios. Each builds one or more node fixtures from real runtime metadata.
import { State, accountId, blake2AsHex, loadRuntime, ss58 } from './lib.mjs';
import { buildNode, setRound } from './fixture.mjs';
import { networkData, nodeData } from './reference.mjs';

const UNIT12 = 10n ** 16n; // dev node: 12 decimals; amounts in 10^4 units so totals pass 2^64
const DOT = 10n ** 10n; // Polkadot: 10 decimals

const HEALTHY = { isSyncing: false, peers: 8, shouldHavePeers: true };

// who: account names → { id (hex), addr (ss58 in the chain's format) }
function accounts(names, format) {
  return Object.fromEntries(names.map((n) => {
    const id = accountId(n);
    return [n, { name: n, id, addr: ss58(id, format) }];
  }));
}

function accountLegend(acc) {
  return Object.fromEntries(Object.values(acc).map((a) => [a.addr, a.name]).sort());
}

// expected node data for each (stash, is_validator) over every round, in order (the archive
// window of round k starts after round k-1's finalized height)
function expectNode(built, sources, stashes, roundNames, archive) {
  const out = {};
  let prev = null;
  for (const rn of roundNames) {
    for (const b of [built, ...sources.map((s) => s.built)]) setRound(b, rn);
    const round = { ...built.out.rounds.find((r) => r.name === rn), previous_finalized_height: prev, archive };
    out[rn] = {};
    for (const { addr, isValidator } of stashes) {
      out[rn][addr] = { is_validator: isValidator, data: nodeData({ monitored: built.view, sources: sources.map((s) => s.built.view), stash: addr, isValidator, round }) };
    }
    prev = built.node.numberOf[round.finalized];
  }
  return out;
}

function expectNetwork(sources, roundNames, governance) {
  const out = { governance_addresses: governance };
  for (const rn of roundNames) {
    for (const s of sources) setRound(s.built, rn);
    out[rn] = networkData({ sources: sources.map((s) => s.built.view), governance });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. substrate-dev

async function substrateDev() {
  const props = { ss58Format: 42, tokenDecimals: 12, tokenSymbol: 'Unit' }; // scalars, as dev nodes answer
  const rt = await loadRuntime('substrate-268', props);
  const a = accounts(['validator-stash', 'validator-controller', 'validator-2', 'validator-disabled',
    'nominator-1', 'nominator-2', 'nominator-3', 'non-validator-stash', 'governance-1'], 42);
  const V1 = a['validator-stash'].addr;
  const V1C = a['validator-controller'].addr;
  const V2 = a['validator-2'].addr;
  const V3 = a['validator-disabled'].addr;
  const N1 = a['nominator-1'].addr;
  const N2 = a['nominator-2'].addr;
  const N3 = a['nominator-3'].addr;
  const NV = a['non-validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const SESSION = 60;
  const ACTIVE_ERA = 10;
  const CURRENT_ERA = 11;

  const base = new State(rt);
  base.set('Session', 'CurrentIndex', [], SESSION);
  base.set('Session', 'Validators', [], [V2, V1, V3]);
  base.set('Session', 'DisabledValidators', [], [[2, 100000000]]); // V3 (index 2), 10 %
  base.set('Staking', 'ActiveEra', [], { index: ACTIVE_ERA, start: 1700000000000n });
  base.set('Staking', 'CurrentEra', [], CURRENT_ERA);
  // legacy exposure for eras 7..10 (before paged exposure): era 6 none
  for (const era of [7, 8, 9, 10]) {
    base.set('Staking', 'ErasStakers', [era, V1], {
      total: 3000n * UNIT12 + BigInt(era) * UNIT12, own: 1000n * UNIT12,
      others: [{ who: N1, value: 1500n * UNIT12 }, { who: N2, value: 500n * UNIT12 + BigInt(era) * UNIT12 }],
    });
    base.set('Staking', 'ErasStakers', [era, V2], { total: 2000n * UNIT12, own: 2000n * UNIT12, others: [] });
  }
  // the next era is paged: V1 with two pages, V2 with one; V3 not elected
  base.set('Staking', 'ErasStakersOverview', [CURRENT_ERA, V1], { total: 3600n * UNIT12, own: 1000n * UNIT12, nominatorCount: 3, pageCount: 2 });
  base.set('Staking', 'ErasStakersPaged', [CURRENT_ERA, V1, 0], { pageTotal: 2000n * UNIT12, others: [{ who: N1, value: 1500n * UNIT12 }, { who: N2, value: 500n * UNIT12 }] });
  base.set('Staking', 'ErasStakersPaged', [CURRENT_ERA, V1, 1], { pageTotal: 600n * UNIT12, others: [{ who: N3, value: 600n * UNIT12 }] });
  base.set('Staking', 'ErasStakersOverview', [CURRENT_ERA, V2], { total: 2000n * UNIT12, own: 2000n * UNIT12, nominatorCount: 0, pageCount: 1 });
  base.set('Staking', 'ErasStakersPaged', [CURRENT_ERA, V2, 0], { pageTotal: 0n, others: [] });
  base.set('Staking', 'Bonded', [V1], V1C);
  base.set('Staking', 'Ledger', [V1C], { stash: V1, total: 1000n * UNIT12, active: 1000n * UNIT12, unlocking: [], legacyClaimedRewards: [7, 8] });
  base.set('Staking', 'Bonded', [NV], NV);
  base.set('Staking', 'Ledger', [NV], { stash: NV, total: 50n * UNIT12, active: 40n * UNIT12, unlocking: [{ value: 10n * UNIT12, era: 12 }], legacyClaimedRewards: [] });
  base.set('Staking', 'Bonded', [V3], V3);
  base.set('Staking', 'Ledger', [V3], { stash: V3, total: 900n * UNIT12, active: 900n * UNIT12, unlocking: [], legacyClaimedRewards: [] });
  base.set('Staking', 'Validators', [V1], { commission: 50000000, blocked: false });
  base.set('Staking', 'Validators', [V2], { commission: 0, blocked: false });
  base.set('Staking', 'Validators', [V3], { commission: 1000000000, blocked: true });
  base.set('Staking', 'ErasRewardPoints', [ACTIVE_ERA - 1], { total: 200, individual: { [a['validator-stash'].id]: 120, [a['validator-2'].id]: 80 } });
  base.set('ImOnline', 'AuthoredBlocks', [SESSION, V1], 7);
  base.set('ImOnline', 'AuthoredBlocks', [SESSION, V2], 3);
  base.set('ImOnline', 'ReceivedHeartbeats', [SESSION, 1], true); // V1 is index 1
  // Democracy: one public proposal, referendum 0 finished (approved), 1 ongoing
  const preimage = blake2AsHex('panic fixture: remark proposal', 256);
  const refPreimage = blake2AsHex('panic fixture: referendum 1 call', 256);
  base.set('Democracy', 'PublicPropCount', [], 1);
  base.set('Democracy', 'PublicProps', [], [[0, { Lookup: { hash_: preimage, len: 42 } }, NV]]);
  base.set('Democracy', 'ReferendumCount', [], 2);
  base.set('Democracy', 'ReferendumInfoOf', [0], { Finished: { approved: true, end: 90 } });
  base.set('Democracy', 'ReferendumInfoOf', [1], { Ongoing: { end: 200, proposal: { Lookup: { hash_: refPreimage, len: 37 } }, threshold: 'SuperMajorityApprove', delay: 10, tally: { ayes: 1200n * UNIT12, nays: 300n * UNIT12, turnout: 1500n * UNIT12 } } });
  base.set('Democracy', 'VotingOf', [G1], { Direct: { votes: [[1, { Standard: { vote: { aye: true, conviction: 'Locked1x' }, balance: 100n * UNIT12 } }]], delegations: { votes: 0, capital: 0 }, prior: [0, 0] } });

  const events = {
    102: [{ phase: 'Initialization', pallet: 'Staking', event: 'Slashed', fields: { staker: V1, amount: 250n * UNIT12 } }],
    103: [{ phase: 'Initialization', pallet: 'Staking', event: 'Slashed', fields: { staker: V2, amount: 1n * UNIT12 } }],
    104: [{ phase: 'Finalization', pallet: 'ImOnline', event: 'SomeOffline', fields: { offline: [[V1, null]] } }],
  };
  const built = buildNode({
    name: 'validator',
    description: 'Substrate dev node (spec 268) of a validator, archive, its own data source',
    chainName: 'Development', systemName: 'Substrate Node', properties: props, health: HEALTHY,
    seed: 'substrate-dev', tip: 108, keep: [100, 101, 102, 103, 104, 105, 106, 107],
    runtimeOf: () => rt,
    stateOf: (n) => {
      const s = base.clone();
      s.set('System', 'Number', [], n);
      s.setEvents(events[n] || []);
      return s;
    },
    rounds: [
      { name: 'first', best: 102, finalized: 100, highest: 102 },
      { name: 'second', best: 107, finalized: 105, highest: 108 },
    ],
  });
  const sources = [{ built }];
  const stashes = [{ addr: V1, isValidator: true }, { addr: V3, isValidator: true }, { addr: NV, isValidator: false }, { addr: NV, isValidator: true, key: 'nv-as-validator' }];
  built.out.accounts = accountLegend(a);
  built.out.expected = {
    data_sources: ['validator'],
    archive_node: 'validator',
    node: expectNode(built, sources, stashes.slice(0, 3), ['first', 'second'], 'validator'),
    network: expectNetwork(sources, ['first', 'second'], [G1]),
  };
  return { files: [{ name: 'validator', json: built.out }], runtimes: [rt] };
}

export const SCENARIOS = [
  { name: 'substrate-dev', description: 'Substrate dev node: ImOnline, Democracy, legacy and paged exposure, a slash and an offline event', build: substrateDev },
];
