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

// One case of expected.json: a monitored node, its data sources (in order) and archive node, the
// node data for each (stash, is_validator) and the network data, over the rounds in order (the
// archive window of round k starts after round k-1's finalized height of the archive node).
// A round that a correct monitor cannot complete gives { "error": { "code" } } instead of data.
function errorOf(e, malformedCode) {
  if (e.code === 5019) return { error: { code: 5019, message: 'no synced data source' } };
  if (e.malformed) return { error: { code: malformedCode, message: 'malformed SCALE value' } };
  throw e;
}

function expectCase({ name, description, monitored, sources, archive, stashes, rounds, governance }) {
  const all = [monitored, ...sources];
  const node = {};
  const network = { governance_addresses: governance };
  let prev = null;
  for (const rn of rounds) {
    for (const b of all) setRound(b, rn);
    const round = { ...monitored.out.rounds.find((r) => r.name === rn), previous_finalized_height: prev, archive };
    node[rn] = {};
    for (const { addr, isValidator } of stashes) {
      try {
        node[rn][addr] = { is_validator: isValidator, data: nodeData({ monitored: monitored.view, sources: sources.map((s) => s.view), stash: addr, isValidator, round }) };
      } catch (e) {
        node[rn][addr] = { is_validator: isValidator, ...errorOf(e, 5033) };
      }
    }
    try {
      network[rn] = networkData({ sources: sources.map((s) => s.view), governance });
    } catch (e) {
      network[rn] = errorOf(e, 5034);
    }
    const arch = all.find((b) => b.node.name === archive);
    prev = arch ? arch.node.numberOf[arch.node.head.finalized] : null;
  }
  return { name, description, monitored_node: monitored.node.name, data_sources: sources.map((s) => s.node.name),
    archive_node: archive, node, network };
}

// ---------------------------------------------------------------------------------------------
// 1. substrate-dev

const DEV_PROPS = { ss58Format: 42, tokenDecimals: 12, tokenSymbol: 'Unit' }; // scalars, as dev nodes answer

function devAccounts() {
  return accounts(['validator-stash', 'validator-controller', 'validator-2', 'validator-disabled',
    'nominator-1', 'nominator-2', 'nominator-3', 'non-validator-stash', 'governance-1', 'governance-2'], 42);
}

// The dev node's state (without System.Number/Events); `session`/`activeEra` vary for stale copies.
function devBase(rt, a, { session = 60, activeEra = 10 } = {}) {
  const V1 = a['validator-stash'].addr;
  const V1C = a['validator-controller'].addr;
  const V2 = a['validator-2'].addr;
  const V3 = a['validator-disabled'].addr;
  const N1 = a['nominator-1'].addr;
  const N2 = a['nominator-2'].addr;
  const N3 = a['nominator-3'].addr;
  const NV = a['non-validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const SESSION = session;
  const ACTIVE_ERA = activeEra;
  const CURRENT_ERA = activeEra + 1;

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
  base.set('Democracy', 'VotingOf', [a['governance-2'].addr], { Delegating: { balance: 77n * UNIT12, target: G1, conviction: 'Locked2x', delegations: { votes: 0, capital: 0 }, prior: [0, 0] } });
  base.set('Democracy', 'VotingOf', [G1], { Direct: { votes: [[1, { Standard: { vote: { aye: true, conviction: 'Locked1x' }, balance: 100n * UNIT12 } }]], delegations: { votes: 0, capital: 0 }, prior: [0, 0] } });

  return base;
}

async function substrateDev() {
  const props = DEV_PROPS;
  const rt = await loadRuntime('substrate-268', props);
  const a = devAccounts();
  const V1 = a['validator-stash'].addr;
  const V2 = a['validator-2'].addr;
  const V3 = a['validator-disabled'].addr;
  const NV = a['non-validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const base = devBase(rt, a);
  const events = {
    102: [{ phase: 'Initialization', pallet: 'Staking', event: 'Slashed', fields: { staker: V1, amount: 250n * UNIT12 } }],
    103: [{ phase: 'Initialization', pallet: 'Staking', event: 'Slashed', fields: { staker: V2, amount: 1n * UNIT12 } }],
    104: [{ phase: 'Finalization', pallet: 'ImOnline', event: 'SomeOffline', fields: { offline: [[V1, null]] } }],
  };
  const built = buildNode({
    name: 'validator',
    description: 'Substrate dev node (spec 268) of a validator, archive, its own data source',
    chainName: 'Development', systemName: 'Substrate Node', properties: props, health: HEALTHY,
    seed: 'substrate-dev', keep: [100, 101, 102, 103, 104, 105, 106, 107],
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
  const stashes = [{ addr: V1, isValidator: true }, { addr: V3, isValidator: true }, { addr: NV, isValidator: false }];
  built.out.accounts = accountLegend(a);
  const expected = {
    description: 'What a correct monitor publishes from validator.json (scripts/substrate-fixtures/README.md)',
    accounts: accountLegend(a),
    cases: [expectCase({ name: 'validator', description: 'the validator node, its own data source and archive',
      monitored: built, sources: [built], archive: 'validator', stashes, rounds: ['first', 'second'], governance: [G1, a['governance-2'].addr] })],
  };
  return { files: [{ name: 'validator', json: built.out }, { name: 'expected', json: expected }], runtimes: [rt] };
}

// ---------------------------------------------------------------------------------------------
// 2. polkadot-assethub: the relay keeps Session/Grandpa/validators/disabling, Asset Hub has staking
//    (paged only) and OpenGov; the relay's Staking/Referenda are in its metadata but empty.

const RELAY_HEIGHTS = { first: 28000000, second: 28000003 };
const AH_HEIGHTS = { first: 10000000, second: 10000003 };

async function polkadotAssetHub() {
  const props = { ss58Format: 0, tokenDecimals: 10, tokenSymbol: 'DOT' };
  const relayRt = await loadRuntime('polkadot-2000000', props);
  const ahRt = await loadRuntime('asset-hub-polkadot-2000000', props);
  const a = accounts(['validator-active', 'validator-elected-only', 'validator-disabled', 'validator-other',
    'nominator-1', 'nominator-2', 'nominator-3', 'collator-1', 'collator-2', 'governance-1', 'governance-2',
    'referendum-submitter'], 0);
  const VA = a['validator-active'].addr;
  const VE = a['validator-elected-only'].addr;
  const VD = a['validator-disabled'].addr;
  const VO = a['validator-other'].addr;
  const [N1, N2, N3] = ['nominator-1', 'nominator-2', 'nominator-3'].map((n) => a[n].addr);
  const [C1, C2] = [a['collator-1'].addr, a['collator-2'].addr];
  const [G1, G2] = [a['governance-1'].addr, a['governance-2'].addr];
  const SUB = a['referendum-submitter'].addr;
  const RELAY_SESSION = 11000;
  const ACTIVE_ERA = 1900;
  const CURRENT_ERA = 1901;

  // relay: Session, Grandpa, validator set and disabling; Staking and Referenda left empty
  const relay = new State(relayRt);
  relay.set('Session', 'CurrentIndex', [], RELAY_SESSION);
  relay.set('Session', 'Validators', [], [VO, VA, VD]);
  relay.set('Session', 'DisabledValidators', [], [[2, 50000000]]); // VD, index 2
  relay.set('Grandpa', 'Stalled', [], [27999000, 16]);

  // asset hub: its Session is the collators'
  const ah = new State(ahRt);
  ah.set('Session', 'CurrentIndex', [], 45000);
  ah.set('Session', 'Validators', [], [C1, C2]);
  ah.set('Session', 'DisabledValidators', [], []);
  ah.set('Staking', 'ActiveEra', [], { index: ACTIVE_ERA, start: 1760000000000n });
  ah.set('Staking', 'CurrentEra', [], CURRENT_ERA);
  const exposure = (era, stash, own, pages) => {
    const others = pages.flat();
    const total = own + others.reduce((x, o) => x + o.value, 0n);
    ah.set('Staking', 'ErasStakersOverview', [era, stash], { total, own, nominatorCount: others.length, pageCount: pages.length });
    pages.forEach((page, i) => ah.set('Staking', 'ErasStakersPaged', [era, stash, i], { pageTotal: page.reduce((x, o) => x + o.value, 0n), others: page }));
  };
  for (const era of [1897, 1898, 1899, 1900]) {
    exposure(era, VA, 20000n * DOT * 10n ** 6n, [[{ who: N1, value: 1500000n * DOT * 10n ** 3n }, { who: N2, value: BigInt(era) * DOT * 10n ** 6n }], [{ who: N3, value: 700n * DOT * 10n ** 6n }]]);
  }
  exposure(ACTIVE_ERA, VD, 5000n * DOT, [[{ who: N3, value: 100n * DOT }]]);
  exposure(ACTIVE_ERA, VO, 9000n * DOT, [[]]);
  // elected for the next era: VA and VE (not VD)
  exposure(CURRENT_ERA, VA, 20000n * DOT * 10n ** 6n, [[{ who: N1, value: 1500000n * DOT * 10n ** 3n }], [{ who: N2, value: 3n * DOT }]]);
  exposure(CURRENT_ERA, VE, 8000n * DOT, [[{ who: N3, value: 800n * DOT }]]);
  ah.set('Staking', 'ClaimedRewards', [1897, VA], [0, 1]); // both pages: claimed
  ah.set('Staking', 'ClaimedRewards', [1898, VA], [0]); // one page of two: not claimed
  for (const v of [VA, VE, VD]) {
    ah.set('Staking', 'Bonded', [v], v);
    ah.set('Staking', 'Ledger', [v], { stash: v, total: 20000n * DOT, active: 20000n * DOT, unlocking: [] });
    ah.set('Staking', 'Validators', [v], { commission: 30000000, blocked: false });
  }
  ah.set('Staking', 'ErasRewardPoints', [ACTIVE_ERA - 1], { total: 100000, individual: { [a['validator-active'].id]: 68120, [a['validator-disabled'].id]: 31880 } });
  // OpenGov: 0 approved, 1 rejected, 2 ongoing (root track), 3 killed
  const dep = (amount) => ({ who: SUB, amount });
  ah.set('Referenda', 'ReferendumCount', [], 4);
  ah.set('Referenda', 'ReferendumInfoFor', [0], { Approved: [9990000, dep(10n * DOT), null] });
  ah.set('Referenda', 'ReferendumInfoFor', [1], { Rejected: [9995000, dep(10n * DOT), dep(100000n * DOT)] });
  ah.set('Referenda', 'ReferendumInfoFor', [2], { Ongoing: {
    track: 0, origin: { system: { Root: null } },
    proposal: { Lookup: { hash_: blake2AsHex('panic fixture: opengov referendum 2 call', 256), len: 64 } },
    enactment: { After: 14400 }, submitted: 9999000, submissionDeposit: dep(10n * DOT),
    decisionDeposit: dep(100000n * DOT), deciding: { since: 9999100, confirming: null },
    tally: { ayes: 12345678n * DOT * 10n ** 3n, nays: 2000n * DOT, support: 3000000n * DOT }, inQueue: false,
    alarm: [10100000, [10100000, 0]],
  } });
  ah.set('Referenda', 'ReferendumInfoFor', [3], { Killed: 9996000 });
  ah.set('ConvictionVoting', 'VotingFor', [G1, 0], { Casting: { votes: [[2, { Standard: { vote: { aye: true, conviction: 'Locked3x' }, balance: 40000n * DOT * 10n ** 6n } }]], delegations: { votes: 0, capital: 0 }, prior: [0, 0] } });
  ah.set('ConvictionVoting', 'VotingFor', [G2, 0], { Casting: { votes: [[2, { Split: { aye: 5n * DOT, nay: 7n * DOT } }]], delegations: { votes: 0, capital: 0 }, prior: [0, 0] } });

  const relayBuilt = buildNode({
    name: 'relay',
    description: 'Polkadot relay node (spec 2000000) after the Asset Hub migration: Session, Grandpa, validators, disabling; Staking and Referenda empty',
    chainName: 'Polkadot', systemName: 'Parity Polkadot', properties: props, health: HEALTHY,
    seed: 'polkadot-relay', keep: [28000000, 28000001, 28000002, 28000003, 28000004, 28000005],
    runtimeOf: () => relayRt,
    stateOf: (n) => { const st = relay.clone(); st.set('System', 'Number', [], n); st.setEvents([]); return st; },
    rounds: [
      { name: 'first', best: RELAY_HEIGHTS.first + 2, finalized: RELAY_HEIGHTS.first, highest: RELAY_HEIGHTS.first + 2 },
      { name: 'second', best: RELAY_HEIGHTS.second + 2, finalized: RELAY_HEIGHTS.second, highest: RELAY_HEIGHTS.second + 2 },
    ],
  });
  const ahEvents = { [AH_HEIGHTS.first + 2]: [{ phase: { ApplyExtrinsic: 1 }, pallet: 'Staking', event: 'Slashed', fields: { staker: VD, amount: 123456789012345678901n } }] };
  const ahBuilt = buildNode({
    name: 'assethub',
    description: 'Asset Hub Polkadot node (spec 2000000, archive): staking with paged exposure, ClaimedRewards, OpenGov; its Session is the collators\'',
    chainName: 'Polkadot Asset Hub', systemName: 'Polkadot parachain', properties: props, health: HEALTHY,
    seed: 'polkadot-asset-hub', keep: [10000000, 10000001, 10000002, 10000003, 10000004, 10000005],
    runtimeOf: () => ahRt,
    stateOf: (n) => { const st = ah.clone(); st.set('System', 'Number', [], n); st.setEvents(ahEvents[n] || []); return st; },
    rounds: [
      { name: 'first', best: AH_HEIGHTS.first + 2, finalized: AH_HEIGHTS.first, highest: AH_HEIGHTS.first + 2 },
      { name: 'second', best: AH_HEIGHTS.second + 2, finalized: AH_HEIGHTS.second, highest: AH_HEIGHTS.second + 2 },
    ],
  });
  relayBuilt.out.accounts = accountLegend(a);
  ahBuilt.out.accounts = accountLegend(a);
  const stashes = [VA, VE, VD].map((addr) => ({ addr, isValidator: true }));
  const expected = {
    description: 'What a correct monitor publishes from relay.json and assethub.json (scripts/substrate-fixtures/README.md)',
    accounts: accountLegend(a),
    cases: [
      expectCase({ name: 'relay-and-assethub', description: 'validator node = relay, data sources relay then assethub; `historical` is read from assethub (archive; slashes are Asset Hub events now), so its heights are Asset Hub heights',
        monitored: relayBuilt, sources: [relayBuilt, ahBuilt], archive: 'assethub', stashes, rounds: ['first', 'second'], governance: [G1, G2] }),
      expectCase({ name: 'relay-only', description: 'the relay alone: its Staking and Referenda are in the metadata but empty (staking fields empty or null, no referendums)',
        monitored: relayBuilt, sources: [relayBuilt], archive: 'relay', stashes, rounds: ['first', 'second'], governance: [G1, G2] }),
    ],
  };
  return { files: [{ name: 'relay', json: relayBuilt.out }, { name: 'assethub', json: ahBuilt.out }, { name: 'expected', json: expected }], runtimes: [relayRt, ahRt] };
}

// ---------------------------------------------------------------------------------------------
// 3. runtime-upgrade: one Polkadot relay node (staking still on the relay) upgraded from spec
//    1002005 (V14; DisabledValidators a list of indices) to 2000000 (V15; (index, Perbill) pairs)
//    at block 25000003. Each runtime encodes the same state with its own types.

async function runtimeUpgrade() {
  const props = { ss58Format: 0, tokenDecimals: 10, tokenSymbol: 'DOT' };
  const oldRt = await loadRuntime('polkadot-1002005', props);
  const newRt = await loadRuntime('polkadot-2000000', props);
  const a = accounts(['validator-stash', 'validator-2', 'validator-disabled', 'nominator-1', 'nominator-2', 'governance-1'], 0);
  const V1 = a['validator-stash'].addr;
  const V2 = a['validator-2'].addr;
  const V3 = a['validator-disabled'].addr;
  const N1 = a['nominator-1'].addr;
  const N2 = a['nominator-2'].addr;
  const G1 = a['governance-1'].addr;
  const UPGRADE = 25000003;
  const fill = (rt, n) => {
    const st = new State(rt);
    const session = n >= UPGRADE ? 9001 : 9000;
    st.set('System', 'Number', [], n);
    st.set('Session', 'CurrentIndex', [], session);
    st.set('Session', 'Validators', [], [V1, V2, V3]);
    // the shape changed with the upgrade: indices before, (index, Perbill) pairs after
    st.set('Session', 'DisabledValidators', [], rt === oldRt ? [2] : [[2, 100000000]]);
    st.set('Staking', 'ActiveEra', [], { index: 1500, start: 1740000000000n });
    st.set('Staking', 'CurrentEra', [], 1500);
    for (const era of [1498, 1499, 1500]) {
      st.set('Staking', 'ErasStakersOverview', [era, V1], { total: 2500000n * DOT * 10n ** 3n, own: 1000000n * DOT * 10n ** 3n, nominatorCount: 2, pageCount: 2 });
      st.set('Staking', 'ErasStakersPaged', [era, V1, 0], { pageTotal: 1000000n * DOT * 10n ** 3n, others: [{ who: N1, value: 1000000n * DOT * 10n ** 3n }] });
      st.set('Staking', 'ErasStakersPaged', [era, V1, 1], { pageTotal: 500000n * DOT * 10n ** 3n, others: [{ who: N2, value: 500000n * DOT * 10n ** 3n }] });
      st.set('Staking', 'ErasStakersOverview', [era, V2], { total: 9000n * DOT, own: 9000n * DOT, nominatorCount: 0, pageCount: 1 });
    }
    st.set('Staking', 'ClaimedRewards', [1498, V1], [0, 1]);
    st.set('Staking', 'Bonded', [V1], V1);
    st.set('Staking', 'Ledger', [V1], { stash: V1, total: 1000000n * DOT * 10n ** 3n, active: 1000000n * DOT * 10n ** 3n, unlocking: [], legacyClaimedRewards: [1400, 1401] });
    st.set('Staking', 'ErasRewardPoints', [1499], { total: 3000, individual: { [a['validator-stash'].id]: 1880, [a['validator-2'].id]: 1120 } });
    st.set('Referenda', 'ReferendumCount', [], 1);
    st.set('Referenda', 'ReferendumInfoFor', [0], { Killed: 24000000 });
    const events = [];
    if (n === UPGRADE) events.push({ phase: 'Initialization', pallet: 'System', event: 'CodeUpdated', fields: null });
    if (n === UPGRADE - 1 || n === UPGRADE + 1) events.push({ phase: { ApplyExtrinsic: 2 }, pallet: 'Staking', event: 'Slashed', fields: { staker: V1, amount: BigInt(n - UPGRADE + 3) * DOT * 10n ** 9n } });
    st.setEvents(events);
    if (n >= UPGRADE) st.set('System', 'LastRuntimeUpgrade', [], { specVersion: 2000000, specName: 'polkadot' });
    else st.set('System', 'LastRuntimeUpgrade', [], { specVersion: 1002005, specName: 'polkadot' });
    return st;
  };
  const built = buildNode({
    name: 'validator',
    description: 'Polkadot relay validator node (archive, its own data source) upgraded from spec 1002005 (V14) to 2000000 (V15) at block 25000003; round `before` is on the old runtime, `after` on the new',
    chainName: 'Polkadot', systemName: 'Parity Polkadot', properties: props, health: HEALTHY,
    seed: 'runtime-upgrade', keep: [25000000, 25000001, 25000002, 25000003, 25000004, 25000005],
    runtimeOf: (n) => (n >= UPGRADE ? newRt : oldRt),
    stateOf: (n, rt) => fill(rt, n),
    rounds: [
      { name: 'before', best: 25000002, finalized: 25000001, highest: 25000002 },
      { name: 'after', best: 25000005, finalized: 25000004, highest: 25000005 },
    ],
  });
  built.out.accounts = accountLegend(a);
  const expected = {
    description: 'What a correct monitor publishes from validator.json (scripts/substrate-fixtures/README.md)',
    accounts: accountLegend(a),
    cases: [expectCase({ name: 'upgrade', description: 'round `before` on spec 1002005, then round `after` on 2000000 (metadata re-read; the archive window 25000002..25000004 spans both runtimes: decode each block with its own metadata)',
      monitored: built, sources: [built], archive: 'validator', stashes: [V1, V3].map((addr) => ({ addr, isValidator: true })), rounds: ['before', 'after'], governance: [G1] })],
  };
  return { files: [{ name: 'validator', json: built.out }, { name: 'expected', json: expected }], runtimes: [oldRt, newRt] };
}

// ---------------------------------------------------------------------------------------------
// 4. Faults (small). Node down needs no fixture: no server.

// 4a. a data source that is syncing (system_health isSyncing true) and has stale state
async function faultSyncing() {
  const props = DEV_PROPS;
  const rt = await loadRuntime('substrate-268', props);
  const a = devAccounts();
  const V1 = a['validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const fresh = devBase(rt, a);
  const stale = devBase(rt, a, { session: 40, activeEra: 6 });
  const mk = (name, description, base, health, keep, rounds) => buildNode({
    name, description, chainName: 'Development', systemName: 'Substrate Node', properties: props, health,
    seed: 'substrate-dev', keep, runtimeOf: () => rt,
    stateOf: (n) => { const st = base.clone(); st.set('System', 'Number', [], n); st.setEvents([]); return st; },
    rounds,
  });
  const syncing = mk('syncing', 'Substrate dev node still syncing (isSyncing true, at block 70 of 107) with stale state (session 40, era 6)',
    stale, { isSyncing: true, peers: 3, shouldHavePeers: true }, [68, 69, 70], [{ name: 'only', best: 70, finalized: 68, highest: 107 }]);
  const synced = mk('synced', 'Substrate dev node, synced (the same chain as syncing.json)',
    fresh, HEALTHY, [105, 106, 107], [{ name: 'only', best: 107, finalized: 105, highest: 107 }]);
  syncing.out.accounts = accountLegend(a);
  synced.out.accounts = accountLegend(a);
  const stashes = [{ addr: V1, isValidator: true }];
  const expected = {
    description: 'A syncing data source is skipped; with no synced one the round fails with 5019',
    accounts: accountLegend(a),
    cases: [
      expectCase({ name: 'skip-syncing', description: 'monitored node = syncing (its own heights), data sources syncing then synced: everything else comes from synced',
        monitored: syncing, sources: [syncing, synced], archive: 'synced', stashes, rounds: ['only'], governance: [G1] }),
      expectCase({ name: 'only-syncing', description: 'the syncing node is the only data source: node error 5019, network error 5019',
        monitored: syncing, sources: [syncing], archive: 'syncing', stashes, rounds: ['only'], governance: [G1] }),
    ],
  };
  return { files: [{ name: 'syncing', json: syncing.out }, { name: 'synced', json: synced.out }, { name: 'expected', json: expected }], runtimes: [rt] };
}

// 4b. a data source whose runtime lacks the pallets (substrate-contracts-node 100: no Session,
//     Staking, ImOnline, Grandpa, Democracy, Referenda)
async function faultMissingPallet() {
  const props = DEV_PROPS;
  const rt = await loadRuntime('substrate-contracts-node-100', props);
  const devRt = await loadRuntime('substrate-268', props);
  const a = devAccounts();
  const V1 = a['validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const lacking = buildNode({
    name: 'lacking', description: 'substrate-contracts-node (spec 100, V14): no Session, Staking, ImOnline, Grandpa, Democracy or Referenda pallet',
    chainName: 'Development', systemName: 'Substrate Contracts Node', properties: props, health: HEALTHY,
    seed: 'contracts-node', keep: [50, 51, 52], runtimeOf: () => rt,
    stateOf: (n) => { const st = new State(rt); st.set('System', 'Number', [], n); st.setEvents([]); return st; },
    rounds: [{ name: 'only', best: 52, finalized: 50, highest: 52 }],
  });
  const full = buildNode({
    name: 'full', description: 'Substrate dev node (spec 268) with the same state as substrate-dev',
    chainName: 'Development', systemName: 'Substrate Node', properties: props, health: HEALTHY,
    seed: 'substrate-dev', keep: [105, 106, 107], runtimeOf: () => devRt,
    stateOf: (n) => { const st = devBase(devRt, a).clone(); st.set('System', 'Number', [], n); st.setEvents([]); return st; },
    rounds: [{ name: 'only', best: 107, finalized: 105, highest: 107 }],
  });
  lacking.out.accounts = accountLegend(a);
  full.out.accounts = accountLegend(a);
  const stashes = [{ addr: V1, isValidator: true }];
  const expected = {
    description: 'A source whose runtime lacks a pallet is skipped for that pallet; where no source has it, its fields are null and the round still succeeds',
    accounts: accountLegend(a),
    cases: [
      expectCase({ name: 'lacking-only', description: 'the lacking node monitored and its only data source: session/staking/ImOnline fields null, governance null',
        monitored: lacking, sources: [lacking], archive: 'lacking', stashes, rounds: ['only'], governance: [G1] }),
      expectCase({ name: 'lacking-then-full', description: 'data sources lacking then full: every pallet is read from full (the monitored node\'s own heights stay lacking\'s)',
        monitored: lacking, sources: [lacking, full], archive: 'full', stashes, rounds: ['only'], governance: [G1] }),
    ],
  };
  return { files: [{ name: 'lacking', json: lacking.out }, { name: 'full', json: full.out }, { name: 'expected', json: expected }], runtimes: [rt, devRt] };
}

// 4c. malformed SCALE: values truncated
async function faultMalformed() {
  const props = DEV_PROPS;
  const rt = await loadRuntime('substrate-268', props);
  const a = devAccounts();
  const V1 = a['validator-stash'].addr;
  const G1 = a['governance-1'].addr;
  const base = devBase(rt, a);
  const built = buildNode({
    name: 'validator', description: 'Substrate dev node whose Staking.ActiveEra and Democracy.ReferendumCount values are truncated',
    chainName: 'Development', systemName: 'Substrate Node', properties: props, health: HEALTHY,
    seed: 'substrate-dev', keep: [105, 106, 107], runtimeOf: () => rt,
    stateOf: (n) => {
      const st = base.clone();
      st.set('System', 'Number', [], n);
      st.setEvents([]);
      // ActiveEra {index: u32, start: Option<u64>}: 2 bytes of the index only
      st.setRaw(st.key('Staking', 'ActiveEra'), '0x0a00', 'Staking.ActiveEra MALFORMED: truncated (2 bytes of a u32, no start)');
      // ReferendumCount u32: 1 byte
      st.setRaw(st.key('Democracy', 'ReferendumCount'), '0x02', 'Democracy.ReferendumCount MALFORMED: truncated (1 byte of a u32)');
      return st;
    },
    rounds: [{ name: 'only', best: 107, finalized: 105, highest: 107 }],
  });
  built.out.accounts = accountLegend(a);
  const expected = {
    description: 'Malformed storage values: the node round fails with 5033, the network round with 5034',
    accounts: accountLegend(a),
    cases: [expectCase({ name: 'malformed', description: 'the validator node, its own data source',
      monitored: built, sources: [built], archive: 'validator', stashes: [{ addr: V1, isValidator: true }], rounds: ['only'], governance: [G1] })],
  };
  return { files: [{ name: 'validator', json: built.out }, { name: 'expected', json: expected }], runtimes: [rt] };
}

export const SCENARIOS = [
  { name: 'substrate-dev', description: 'Substrate dev node: ImOnline, Democracy, legacy and paged exposure, a slash and an offline event', build: substrateDev },
  { name: 'polkadot-assethub', description: 'Polkadot relay + Asset Hub Polkadot after the migration: no ImOnline, OpenGov, paged exposure; validators active+elected, elected only, disabled', build: polkadotAssetHub },
  { name: 'runtime-upgrade', description: 'A Polkadot node upgraded from spec 1002005 (V14) to 2000000 (V15) between two rounds', build: runtimeUpgrade },
  { name: 'fault-syncing', description: 'A data source that is syncing: skipped; alone: 5019', build: faultSyncing },
  { name: 'fault-missing-pallet', description: 'A data source whose runtime lacks Session, Staking, ImOnline, Grandpa and governance', build: faultMissingPallet },
  { name: 'fault-malformed', description: 'Truncated SCALE values: 5033 (node), 5034 (network)', build: faultMalformed },
];
