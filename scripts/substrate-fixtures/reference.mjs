// A reference reader: computes the `expected` blocks from the fixture's own bytes only (storage map,
// headers, runtime per block), decoding with polkadot.js against the metadata. It follows the
// rules written in README.md ("What `expected` means"), which are the ones the Rust monitors apply.
import { StorageKey } from '@polkadot/types';
import { hexToU8a, u8aToHex } from '@polkadot/util';
import { blake2AsHex } from '@polkadot/util-crypto';
import { constant, decodeExact, hasItem, ss58, storageFn, valueTypeName } from './lib.mjs';

// polkadot.js primitive → exact JSON-ready value: decimal strings become BigInt (toPrimitive gives
// integers beyond 2^53 as strings), everything else kept.
export function exact(p) {
  if (typeof p === 'string' && /^[0-9]+$/.test(p)) return BigInt(p);
  if (typeof p === 'number') return Number.isSafeInteger(p) ? p : BigInt(p);
  if (Array.isArray(p)) return p.map(exact);
  if (p && typeof p === 'object') return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, exact(v)]));
  return p;
}

const big = (codec) => BigInt(codec.toString());

export class NodeView {
  // node: { name, rpc, storage: {hash: {key: value}}, runtimeAt: {hash: rt}, numberOf: {hash: n}, hashOf: {n: hash} }
  constructor(node) { this.node = node; }

  rt(hash) { return this.node.runtimeAt[hash]; }

  has(hash, pallet, item) { return hasItem(this.rt(hash), pallet, item); }

  // true when the metadata has the item and the storage holds at least one key of it
  holds(hash, pallet, item) {
    if (!this.has(hash, pallet, item)) return false;
    const rt = this.rt(hash);
    const prefix = u8aToHex(storageFn(rt, pallet, item).keyPrefix());
    return Object.keys(this.node.storage[hash] || {}).some((k) => k.startsWith(prefix));
  }

  // decoded value; for a key not in storage (a node answers null): the metadata's default for a
  // ValueQuery item (modifier Default), null for an OptionQuery one (modifier Optional)
  get(hash, pallet, item, args = []) {
    const rt = this.rt(hash);
    const fn = storageFn(rt, pallet, item);
    const key = new StorageKey(rt.registry, [fn, args]).toHex();
    const hex = (this.node.storage[hash] || {})[key];
    if (hex === undefined) {
      if (fn.meta.modifier.isOptional) return null;
      return decodeExact(rt, valueTypeName(rt, fn), u8aToHex(fn.meta.fallback.toU8a(true)));
    }
    return decodeExact(rt, valueTypeName(rt, fn), hex);
  }

  // [args, value] of every stored key of the item whose first arguments are `args`
  entries(hash, pallet, item, args = []) {
    const rt = this.rt(hash);
    const fn = storageFn(rt, pallet, item);
    const itemPrefix = u8aToHex(fn.keyPrefix());
    const out = [];
    for (const [k, v] of Object.entries(this.node.storage[hash] || {}).sort()) {
      if (!k.startsWith(itemPrefix)) continue;
      const sk = new StorageKey(rt.registry, k);
      sk.setMeta(fn.meta, fn.section, fn.method);
      const a = sk.args;
      if (args.every((x, i) => `${a[i].toString()}` === `${x}` || a[i].toHex() === x)) {
        out.push([a, decodeExact(rt, valueTypeName(rt, fn), v)]);
      }
    }
    return out;
  }
}

// first data source (in order) that is synced, has the item in its metadata and holds it in storage
function pick(sources, pallet, item) {
  for (const s of sources) {
    if (s.node.rpc.system_health.isSyncing) continue;
    const h = s.node.head.best;
    if (s.holds(h, pallet, item)) return [s, h];
  }
  return [null, null];
}

// the first synced source whose metadata has the item (storage may be empty: the value is the default)
function pickMeta(sources, pallet, item) {
  for (const s of sources) {
    if (s.node.rpc.system_health.isSyncing) continue;
    const h = s.node.head.best;
    if (s.has(h, pallet, item)) return [s, h];
  }
  return [null, null];
}

function wrapList(x) { return Array.isArray(x) ? x : [x]; }

export function systemProperties(props) {
  return { ss58Format: props.ss58Format, tokenDecimals: wrapList(props.tokenDecimals), tokenSymbol: wrapList(props.tokenSymbol) };
}

function exposureAt(sources, era, stash) {
  const [ov, ovh] = pick(sources, 'Staking', 'ErasStakersOverview');
  if (ov) {
    const o = ov.get(ovh, 'Staking', 'ErasStakersOverview', [era, stash]);
    if (o) {
      const others = [];
      for (let p = 0; p < o.pageCount.toNumber(); p++) {
        const page = ov.get(ovh, 'Staking', 'ErasStakersPaged', [era, stash, p]);
        if (page) for (const x of page.others) others.push({ who: x.who.toString(), value: big(x.value) });
      }
      return { total: big(o.total), own: big(o.own), others, pageCount: o.pageCount.toNumber() };
    }
  }
  const [lg, lgh] = pick(sources, 'Staking', 'ErasStakers');
  if (lg) {
    const e = lg.get(lgh, 'Staking', 'ErasStakers', [era, stash]);
    if (e) return { total: big(e.total), own: big(e.own), others: e.others.map((x) => ({ who: x.who.toString(), value: big(x.value) })), pageCount: 1 };
  }
  return null;
}

// The node monitor's data keys for one round (see README.md for each rule).
const noSource = () => Object.assign(new Error('no synced data source'), { code: 5019 });

export function nodeData({ monitored, sources, stash, isValidator, round }) {
  const m = monitored.node;
  if (sources.every((s) => s.node.rpc.system_health.isSyncing)) throw noSource();
  const best = round.best;
  const finalizedHeight = m.numberOf[round.finalized];
  const direct = {
    best_height: round.system_syncState.currentBlock,
    target_height: round.system_syncState.highestBlock,
    finalized_height: finalizedHeight,
  };
  void best;
  const [propsSrc] = pickMeta(sources, 'System', 'Number');
  const system_properties = propsSrc ? systemProperties(propsSrc.node.rpc.system_properties) : null;
  const [sessSrc, sessH] = pick(sources, 'Session', 'CurrentIndex');
  const current_session = sessSrc ? sessSrc.get(sessH, 'Session', 'CurrentIndex').toNumber() : null;
  const [eraSrc, eraH] = pick(sources, 'Staking', 'ActiveEra');
  const current_era = eraSrc ? eraSrc.get(eraH, 'Staking', 'ActiveEra').index.toNumber() : null;
  let history_depth_eras = null;
  // the constant from the source of ActiveEra, else from the first synced source that has it
  for (const s of [eraSrc, ...sources].filter((x) => x && !x.node.rpc.system_health.isSyncing)) {
    const c = constant(s.rt(s.node.head.best), 'Staking', 'HistoryDepth');
    if (c !== null) { history_depth_eras = c.toNumber(); break; }
  }
  if (!isValidator) {
    return { ...direct, current_session, current_era, history_depth_eras, system_properties,
      active: false, elected: false, disabled: false, authored_blocks: 0, sent_heartbeat: false,
      eras_stakers: { total: null, own: null, others: [] }, controller_address: null,
      claimed_rewards: [], unclaimed_rewards: [], previous_era_rewards: 0, historical: [] };
  }
  const hasSession = pickMeta(sources, 'Session', 'Validators')[0] !== null;
  const hasStaking = pickMeta(sources, 'Staking', 'ActiveEra')[0] !== null;
  const [valSrc, valH] = pick(sources, 'Session', 'Validators');
  const validators = valSrc ? valSrc.get(valH, 'Session', 'Validators').map((a) => a.toString()) : [];
  const index = validators.indexOf(stash);
  const active = hasSession ? index >= 0 : null;
  // disabled: DisabledValidators of the same source as Session.Validators (indices into that list)
  let disabled = hasSession ? false : null;
  if (valSrc && active) {
    const d = valSrc.get(valH, 'Session', 'DisabledValidators');
    if (d) disabled = d.some((x) => (Array.isArray(x) || x.length === 2 ? x[0].toNumber() : x.toNumber()) === index);
  }
  // elected: the stash is a key of ErasStakersOverview(CurrentEra) (ErasStakers(CurrentEra) where the
  // runtime has no Overview), as polkadot.js derive.staking.nextElected
  const [ceSrc, ceH] = pick(sources, 'Staking', 'CurrentEra');
  let elected = hasStaking ? false : null;
  if (ceSrc) {
    const ce = ceSrc.get(ceH, 'Staking', 'CurrentEra').toNumber();
    const item = ceSrc.has(ceH, 'Staking', 'ErasStakersOverview') ? 'ErasStakersOverview' : 'ErasStakers';
    elected = ceSrc.entries(ceH, 'Staking', item, [ce]).some(([a]) => a[1].toString() === stash);
  }
  // ImOnline: null where no source's runtime has the pallet
  let authored_blocks = null;
  let sent_heartbeat = null;
  const [imSrc, imH] = pickMeta(sources, 'ImOnline', 'AuthoredBlocks');
  if (imSrc) {
    const ab = imSrc.get(imH, 'ImOnline', 'AuthoredBlocks', [current_session, stash]);
    authored_blocks = ab ? ab.toNumber() : 0;
    sent_heartbeat = active ? imSrc.get(imH, 'ImOnline', 'ReceivedHeartbeats', [current_session, index]) !== null : false;
  }
  let eras_stakers = { total: null, own: null, others: [] };
  if (current_era !== null) {
    const e = exposureAt(sources, current_era, stash);
    if (e) eras_stakers = { total: e.total, own: e.own, others: e.others };
    else eras_stakers = { total: 0n, own: 0n, others: [] };
  }
  const [bSrc, bH] = pick(sources, 'Staking', 'Bonded');
  const ctrl = bSrc ? bSrc.get(bH, 'Staking', 'Bonded', [stash]) : null;
  const controller_address = ctrl ? ctrl.toString() : null;
  // claimed: the ledger's legacy list ∪ eras whose ClaimedRewards pages cover the Overview's pageCount
  const claimed = new Set();
  if (controller_address && bSrc) {
    const ledger = bSrc.get(bH, 'Staking', 'Ledger', [controller_address]);
    if (ledger) {
      const l = ledger.legacyClaimedRewards || ledger.claimedRewards;
      if (l) for (const e of l) claimed.add(e.toNumber());
    }
  }
  const unclaimed = [];
  if (current_era !== null && history_depth_eras !== null) {
    for (let era = Math.max(0, current_era - history_depth_eras + 1); era < current_era; era++) {
      const e = exposureAt(sources, era, stash);
      const [crSrc, crH] = pick(sources, 'Staking', 'ClaimedRewards');
      if (crSrc && e) {
        const pages = crSrc.get(crH, 'Staking', 'ClaimedRewards', [era, stash]);
        if (pages && pages.length >= e.pageCount && e.pageCount > 0) claimed.add(era);
      }
      if (!claimed.has(era) && e && e.total > 0n) unclaimed.push(era);
    }
  }
  let previous_era_rewards = 0;
  if (current_era !== null && current_era > 0) {
    const [rpSrc, rpH] = pick(sources, 'Staking', 'ErasRewardPoints');
    const rp = rpSrc ? rpSrc.get(rpH, 'Staking', 'ErasRewardPoints', [current_era - 1]) : null;
    if (rp) for (const [who, pts] of rp.individual.entries()) if (who.toString() === stash) previous_era_rewards = pts.toNumber();
  }
  return { ...direct, current_session, current_era, history_depth_eras, system_properties,
    active, elected, disabled, authored_blocks, sent_heartbeat,
    eras_stakers: hasStaking ? eras_stakers : null, controller_address,
    claimed_rewards: hasStaking ? [...claimed].sort((a, b) => a - b) : null,
    unclaimed_rewards: hasStaking ? unclaimed : null, previous_era_rewards: hasStaking ? previous_era_rewards : null,
    historical: historical(monitored, sources, stash, round) };
}

// One entry per new finalized block (newest first); the first round reads only the finalized block.
// Events are read from the archive node (the first data source whose node is an archive, here
// given as round.archive), else the first synced source that has System.Events.
export function historical(monitored, sources, stash, round) {
  const src = round.archive ? sources.find((s) => s.node.name === round.archive) : sources.find((s) => !s.node.rpc.system_health.isSyncing);
  const fin = src.node.numberOf[src.node.head.finalized];
  const from = round.previous_finalized_height === null ? fin : Math.max(round.previous_finalized_height + 1, fin - 299);
  const out = [];
  for (let h = fin; h >= from; h--) {
    const hash = src.node.hashOf[h];
    const events = src.get(hash, 'System', 'Events') || [];
    let amount = 0n;
    let offline = src.has(hash, 'ImOnline', 'AuthoredBlocks') ? false : null;
    for (const rec of events) {
      const ev = rec.event;
      if (ev.section === 'staking' && ev.method === 'Slashed' && ev.data[0].toString() === stash) amount += big(ev.data[1]);
      if (ev.section === 'imOnline' && ev.method === 'SomeOffline') {
        for (const entry of ev.data[0]) if (entry[0].toString() === stash) offline = true;
      }
    }
    out.push({ height: h, slashed: amount > 0n, slashed_amount: amount, is_offline: offline });
  }
  return out;
}

// Bounded call → its hash (Legacy/Lookup carry it, Inline is hashed)
function proposalHash(bounded) {
  if (bounded.isInline) return blake2AsHex(bounded.asInline.toU8a(true), 256);
  if (bounded.isLegacy) return bounded.asLegacy.hash_.toHex();
  return bounded.asLookup.hash_.toHex();
}

// A governance address's votes on referendum i, PANIC's shape: Democracy.VotingOf (Direct /
// Delegating) or ConvictionVoting.VotingFor (Casting / Delegating). A delegating account votes as
// its target voted on i (standard votes), with its own conviction and balance (polkadot.js's
// derive.democracy.referendumVotes); nothing when the target did not vote on i. Split votes keep
// their decoded form with balance null.
function directVotes(voting, i) {
  if (!voting || voting.isDelegating) return [];
  const casting = voting.isDirect ? voting.asDirect : voting.asCasting;
  return [...casting.votes].filter(([ri]) => ri.toNumber() === i).map(([, av]) => av);
}

function votesOf(voting, i, who, votingOf) {
  if (!voting) return [];
  if (voting.isDelegating) {
    const d = voting.asDelegating;
    return directVotes(votingOf(d.target.toString()), i).filter((av) => av.isStandard).map((av) => (
      { accountId: who, isDelegating: true, vote: { aye: av.asStandard.vote.isAye, conviction: d.conviction.type }, balance: big(d.balance) }));
  }
  return directVotes(voting, i).map((av) => {
    if (av.isStandard) {
      const s = av.asStandard;
      return { accountId: who, isDelegating: false, vote: { aye: s.vote.isAye, conviction: s.vote.conviction.type }, balance: big(s.balance) };
    }
    return { accountId: who, isDelegating: false, vote: exact(av.toPrimitive()), balance: null };
  });
}

// The network monitor's data keys (Democracy where the runtime has it, else Referenda).
export function networkData({ sources, governance }) {
  if (sources.every((s) => s.node.rpc.system_health.isSyncing)) throw noSource();
  const [gSrc, gH] = pickMeta(sources, 'Grandpa', 'Stalled');
  const stalled = gSrc ? gSrc.get(gH, 'Grandpa', 'Stalled') : null;
  const grandpa_stalled = stalled ? exact(stalled.toPrimitive()) : null;
  // a source holding Democracy, else one holding Referenda, else one whose metadata has Democracy
  // (storage empty: count 0), else Referenda likewise; no governance pallet at all: null
  let [dSrc, dH] = pick(sources, 'Democracy', 'ReferendumCount');
  let [rSrc, rH] = dSrc ? [null, null] : pick(sources, 'Referenda', 'ReferendumCount');
  if (!dSrc && !rSrc) [dSrc, dH] = pickMeta(sources, 'Democracy', 'ReferendumCount');
  if (!dSrc && !rSrc) [rSrc, rH] = pickMeta(sources, 'Referenda', 'ReferendumCount');
  if (dSrc) {
    const count = dSrc.get(dH, 'Democracy', 'ReferendumCount').toNumber();
    const props = dSrc.get(dH, 'Democracy', 'PublicProps') || [];
    const ppc = dSrc.get(dH, 'Democracy', 'PublicPropCount');
    const all = {};
    const activeRefs = [];
    for (let i = 0; i < count; i++) {
      const info = dSrc.get(dH, 'Democracy', 'ReferendumInfoOf', [i]);
      if (!info) continue;
      if (info.isOngoing) {
        const o = info.asOngoing;
        const v = { ...exact(o.toPrimitive()), proposalHash: proposalHash(o.proposal) };
        all[i] = { ongoing: v };
        const votes = [];
        const votingOf = (x) => dSrc.get(dH, 'Democracy', 'VotingOf', [x]);
        for (const who of governance) votes.push(...votesOf(votingOf(who), i, who, votingOf));
        activeRefs.push({ index: i, imageHash: v.proposalHash, status: v, votes });
      } else {
        const f = info.asFinished;
        all[i] = { finished: { approved: f.approved.isTrue, end: f.end.toNumber() } };
      }
    }
    return { grandpa_stalled, public_prop_count: ppc ? ppc.toNumber() : 0,
      active_proposals: props.map(([index, bounded, proposer]) => ({ index: index.toNumber(), imageHash: proposalHash(bounded), proposer: proposer.toString(), proposal: exact(bounded.toPrimitive()) })),
      referendum_count: count, active_referendums: activeRefs, all_referendums: all };
  }
  if (rSrc) {
    const count = rSrc.get(rH, 'Referenda', 'ReferendumCount').toNumber();
    const all = {};
    const activeRefs = [];
    for (let i = 0; i < count; i++) {
      const info = rSrc.get(rH, 'Referenda', 'ReferendumInfoFor', [i]);
      if (!info) continue;
      const kind = info.type;
      if (kind === 'Ongoing') {
        const o = info.asOngoing;
        const v = { ...exact(o.toPrimitive()), proposalHash: proposalHash(o.proposal) };
        all[i] = { ongoing: v };
        const votes = [];
        for (const who of governance) {
          const votingOf = (x) => rSrc.get(rH, 'ConvictionVoting', 'VotingFor', [x, o.track.toNumber()]);
          votes.push(...votesOf(votingOf(who), i, who, votingOf));
        }
        activeRefs.push({ index: i, imageHash: v.proposalHash, status: v, votes });
      } else if (kind === 'Killed') {
        all[i] = { finished: { approved: false, end: info.asKilled.toNumber(), outcome: 'Killed' } };
      } else {
        const t = info[`as${kind}`];
        all[i] = { finished: { approved: kind === 'Approved', end: t[0].toNumber(), outcome: kind } };
      }
    }
    return { grandpa_stalled, public_prop_count: 0, active_proposals: [], referendum_count: count,
      active_referendums: activeRefs, all_referendums: all };
  }
  return { grandpa_stalled, public_prop_count: null, active_proposals: null, referendum_count: null,
    active_referendums: null, all_referendums: null };
}

export { ss58, hexToU8a };
