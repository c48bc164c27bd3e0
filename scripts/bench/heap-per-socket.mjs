#!/usr/bin/env node
// What one idle socket costs in the gateway's JavaScript heap, by kind of object: a gateway in
// this process (built packages), N idle sockets opened by a load-generator process, and a heap
// snapshot diff (after GC) before/after. Complements the bench's RSS figure, which also counts
// uWS's native per-socket memory. Both snapshots go to files and are read afterwards: a census
// held in the heap between them (a Map of thousands of kinds) would count itself as per-socket cost.
//
//   node --expose-gc scripts/bench/heap-per-socket.mjs [N=2000] [--redis] [--retainers]
//   node scripts/bench/heap-per-socket.mjs [N] [--redis] --rss [--warm]
//   node scripts/bench/heap-per-socket.mjs [N] [--redis] --alloc [--survivors] [--top=25]
//   node --max-semi-space-size=8 scripts/bench/heap-per-socket.mjs [N] [--redis] --churn=K
//
// --retainers also groups the objects that are new since the baseline by the chain of edges that
// holds them, up to the first object that existed before (a retainer walk): what keeps each kind alive.
// --rss takes no snapshot and forces no GC: it splits the RSS growth the way run.mjs measures it
// (fresh gateway, N sockets, 1.5 s to settle) into the V8 heap's young and old generation pages
// and the rest (native: uWS, malloc); with --warm, of N sockets opened past the high-water mark of
// a first N, closed and reopened (run.mjs' warm figure). --alloc samples what the N upgrades allocate (V8's sampling
// heap profiler, garbage included), per upgrade and by allocating function: the churn that makes
// the heap grow. --churn=K opens N idle sockets and closes them, K times, and prints RSS and the V8
// heap after each opening and each closing, with no forced GC: whether repeated bursts of upgrades
// make a replica grow without bound or plateau. Sockets send the bench's Origin, which the config allows.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { readFileSync } from 'node:fs';
import inspector from 'node:inspector/promises';
import path from 'node:path';
import v8 from 'node:v8';
import { loadConfig } from '@wsgw/config';
import { startGateway } from '@wsgw/gateway';
import { createLogger } from '@wsgw/telemetry';
import { killAllOwned, startRedis, stopProcess, track, workDir, removeDir } from './lib/procs.mjs';
import { allocationSites, formatAllocation, samplingParams } from './lib/alloc.mjs';

const rssOnly = process.argv.includes('--rss');
const alloc = process.argv.includes('--alloc');
const churn = Number(process.argv.find((a) => a.startsWith('--churn='))?.slice(8) ?? 0);
if (((!rssOnly && !alloc && !churn) || process.argv.includes('--survivors')) && typeof global.gc !== 'function') {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 2000);
const useRedis = process.argv.includes('--redis');
const walk = process.argv.includes('--retainers');
const warm = process.argv.includes('--warm');
const survivors = process.argv.includes('--survivors');
const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
const mode = useRedis ? 'Redis' : 'embedded';
const ORIGIN = 'http://bench.example';
const dir = workDir('heap');
let redis;
let worker;
try {
  redis = useRedis ? await startRedis(dir) : undefined;
  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    OTEL_SDK_DISABLED: 'true',
    CORS_ORIGINS: ORIGIN,
    WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1000',
    WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '1000000',
    ...(redis ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'heap:' } : {}),
  };
  const loaded = loadConfig(env);
  if (!loaded.ok) throw new Error(loaded.errors.join('; '));
  const log = createLogger({ level: 'info', replicaId: 'heap-probe', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const gateway = await startGateway(loaded.config, { log });
  while (!gateway.lifecycle.isReady()) await new Promise((r) => setTimeout(r, 20));

  worker = track(fork(fileURLToPath(new URL('./loadgen.mjs', import.meta.url)), [], { execArgv: [] }));
  const ask = (msg, ev) =>
    new Promise((resolve, reject) => {
      const on = (m) => {
        if (m.ev === ev || m.ev === 'error') {
          worker.off('message', on);
          if (m.ev === 'error') reject(new Error(m.message));
          else resolve(m);
        }
      };
      worker.on('message', on);
      worker.send(msg);
    });
  const spec = { kind: 'idle', host: '127.0.0.1', port: gateway.port, path: '/api/ws/agent', headers: { Origin: ORIGIN }, body: 'x' };
  /** Opens `n` more idle sockets; resolves with how many of them opened. */
  const openProbes = async (already = 10) => (await ask({ cmd: 'prepare', ...spec, conns: n, append: true, tokenPrefix: 'probe' }, 'ready')).opened - already;
  // A few sockets first, so one-off structures (maps, code) exist before the baseline.
  await ask({ cmd: 'prepare', ...spec, conns: 10, tokenPrefix: 'warm' }, 'ready');

  if (churn > 0) {
    const heap = () => {
      const h = v8.getHeapStatistics();
      const mib = (b) => (b / 2 ** 20).toFixed(1);
      return `RSS ${mib(process.memoryUsage().rss)} MiB, V8 heap ${mib(h.used_heap_size)} used of ${mib(h.total_heap_size)} MiB`;
    };
    process.stdout.write(`${mode} mode, ${n} idle sockets opened and closed ${churn} times; at the start: ${heap()}\n`);
    for (let cycle = 1; cycle <= churn; cycle++) {
      const { opened } = await ask({ cmd: 'prepare', ...spec, conns: n, tokenPrefix: `churn${cycle}` }, 'ready');
      await new Promise((r) => setTimeout(r, 1500));
      const open = heap();
      await ask({ cmd: 'stop' }, 'done');
      await new Promise((r) => setTimeout(r, 3000));
      process.stdout.write(`  burst ${cycle}: ${opened} open: ${open}; closed: ${heap()}\n`);
    }
    await gateway.shutdown();
  } else if (alloc) {
    const session = new inspector.Session();
    session.connect();
    // --survivors: what outlived a scavenge (kept, or promoted and collected by a full GC later).
    await session.post('HeapProfiler.startSampling', samplingParams({ survivorsOnly: survivors }));
    const opened = await openProbes();
    // Garbage still in the young generation is not "collected" yet: scavenge it away first.
    if (survivors) for (let i = 0; i < 2; i++) global.gc({ type: 'minor' });
    const { profile } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    reportAlloc(opened, profile);
    await ask({ cmd: 'stop' }, 'done');
    await gateway.shutdown();
  } else if (rssOnly) {
    await new Promise((r) => setTimeout(r, 300));
    if (warm) {
      // As run.mjs' warm figure: N opened and closed, N reopened, then the N measured on top.
      await openProbes();
      await new Promise((r) => setTimeout(r, 1500));
      await ask({ cmd: 'stop' }, 'done');
      await new Promise((r) => setTimeout(r, 1500));
      const closed = memory();
      const reopened = (await ask({ cmd: 'prepare', ...spec, conns: n + 10, tokenPrefix: 'reopen' }, 'ready')).opened;
      await new Promise((r) => setTimeout(r, 1500));
      // Bare uWS reopens in what the first burst freed (+0 B); more means that memory was not reused.
      reportRss(reopened, closed, memory(), 'reopened after the first burst closed');
    }
    const start = memory();
    const opened = await openProbes(warm ? n + 10 : 10);
    await new Promise((r) => setTimeout(r, 1500));
    reportRss(opened, start, memory());
    await ask({ cmd: 'stop' }, 'done');
    await gateway.shutdown();
  } else {
    const beforeFile = snapshot('before');
    const opened = await openProbes();
    await new Promise((r) => setTimeout(r, 500));
    const afterFile = snapshot('after');
    await ask({ cmd: 'stop' }, 'done');
    await gateway.shutdown();
    reportHeap(opened, readSnapshot(beforeFile), readSnapshot(afterFile));
  }
} finally {
  if (worker) worker.kill('SIGKILL');
  if (redis) await stopProcess(redis.child);
  killAllOwned();
  removeDir(dir);
}
process.exit(0);

function reportRss(opened, start, end, what = warm ? 'warm' : 'fresh process') {
  const per = (k) => `${Math.round((end[k] - start[k]) / opened).toLocaleString('en-US').padStart(7)} B`;
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  process.stdout.write(`${opened} idle sockets (${mode} mode, ${what}), RSS growth per socket, no forced GC:\n`);
  process.stdout.write(`${per('rss')}  RSS\n`);
  process.stdout.write(`${per('young')}  V8 young generation pages (resident ${mib(start.young)} -> ${mib(end.young)} MiB)\n`);
  process.stdout.write(`${per('old')}  V8 old generation, code and large-object pages\n`);
  process.stdout.write(`${per('native')}  the rest (native: uWS, malloc, stacks)\n`);
  process.stdout.write(`(V8 heap in use grew ${per('used').trim()} per socket: live objects and garbage not yet collected)\n`);
}

/** Sampled allocation by function (self), with its two callers, per upgrade. */
function reportAlloc(opened, profile) {
  const what = survivors ? 'outlived a scavenge per UNIT (sampled, promoted garbage included)' : undefined;
  const [head, ...rest] = formatAllocation(allocationSites(profile), opened, 'upgrade', { top, what });
  process.stdout.write(`${opened} upgrades (${mode} mode): ${head}\n${rest.join('\n')}\n`);
}

function reportHeap(opened, beforeSnap, afterSnap) {
  const before = census(beforeSnap);
  const beforeIds = walk ? objectIds(beforeSnap) : undefined;
  const after = census(afterSnap);
  const rows = [];
  let total = 0;
  for (const [key, a] of after) {
    const b = before.get(key) ?? { count: 0, bytes: 0 };
    const bytes = (a.bytes - b.bytes) / opened;
    if (bytes <= 0) continue;
    total += bytes;
    rows.push({ key, objects: (a.count - b.count) / opened, bytes });
  }
  rows.sort((x, y) => y.bytes - x.bytes);
  process.stdout.write(`${opened} idle sockets (${mode} mode): ${Math.round(total)} B of JS heap per socket\n`);
  process.stdout.write('   B/socket  objects/socket  kind:name\n');
  for (const r of rows.slice(0, 25)) {
    process.stdout.write(`${r.bytes.toFixed(0).padStart(10)}  ${r.objects.toFixed(2).padStart(14)}  ${r.key}\n`);
  }
  if (walk) {
    process.stdout.write('\nheld by (new objects, by retainer chain up to the first object older than the baseline)\n');
    process.stdout.write('   B/socket  objects/socket  chain\n');
    for (const r of retainerChains(beforeIds, afterSnap).slice(0, 40)) {
      process.stdout.write(`${(r.bytes / opened).toFixed(0).padStart(10)}  ${(r.count / opened).toFixed(2).padStart(14)}  ${r.chain}\n`);
    }
  }
}

/** Resident bytes: the whole process, the V8 heap's generations, and the rest. */
function memory() {
  const { rss } = process.memoryUsage();
  let young = 0;
  let old = 0;
  let used = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    used += space.space_used_size;
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') young += space.physical_space_size;
    else old += space.physical_space_size;
  }
  return { rss, young, old, used, native: rss - young - old };
}

/** A heap snapshot after a full GC, written to a file in `dir`. */
function snapshot(name) {
  global.gc();
  global.gc();
  return v8.writeHeapSnapshot(path.join(dir, `${name}.heapsnapshot`));
}

function readSnapshot(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Heap objects summed by V8 node type and constructor name (and, for the walk, their ids). */
function census(snap) {
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + ti]];
    const name = /string/.test(type) ? '' : String(snap.strings[snap.nodes[i + ni]]).slice(0, 60);
    const key = `${type}:${name}`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += snap.nodes[i + si];
    out.set(key, e);
  }
  return out;
}

/** The snapshot's object ids, sorted (stable within a process: they tell new objects from old). */
function objectIds(snap) {
  const fields = snap.snapshot.meta.node_fields;
  const ii = fields.indexOf('id');
  const ids = new Float64Array(snap.nodes.length / fields.length);
  for (let i = 0, k = 0; i < snap.nodes.length; i += fields.length, k++) ids[k] = snap.nodes[i + ii];
  return ids.sort();
}

/**
 * Objects of `after` whose ids are not in `oldIds`, grouped by how they are held: each object's
 * first strong retainer, then that one's, up to an object older than the baseline (or 6 steps),
 * written `kind <-edge- kind ...`.
 */
function retainerChains(oldIds, after) {
  const nf = after.snapshot.meta.node_fields;
  const ef = after.snapshot.meta.edge_fields;
  const nodeTypes = after.snapshot.meta.node_types[0];
  const edgeTypes = after.snapshot.meta.edge_types[0];
  const [ti, ni, ii, si, ci] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((f) => nf.indexOf(f));
  const [eti, eni, eto] = ['type', 'name_or_index', 'to_node'].map((f) => ef.indexOf(f));
  const old = { has: (id) => binarySearch(oldIds, id) };

  const { nodes, edges, strings } = after;
  // First strong retainer of every node: node index -> [retainer node index, edge label].
  const retainer = new Map();
  for (let n = 0, e = 0; n < nodes.length; n += nf.length) {
    const count = nodes[n + ci];
    for (let k = 0; k < count; k++, e += ef.length) {
      const type = edgeTypes[edges[e + eti]];
      if (type === 'weak' || type === 'shortcut') continue;
      const to = edges[e + eto];
      if (retainer.has(to)) continue;
      const raw = edges[e + eni];
      // Indices (map tables, arrays) would make every chain unique: one label for all.
      const name = type === 'element' || type === 'hidden' ? '' : String(strings[raw]);
      const label = name === '' || /^\d+$/.test(name) ? '[]' : name.slice(0, 30);
      retainer.set(to, [n, label]);
    }
  }
  const describe = (n) => {
    const type = nodeTypes[nodes[n + ti]];
    return /string/.test(type) ? type : `${type}:${String(strings[nodes[n + ni]]).slice(0, 40)}`;
  };
  const groups = new Map();
  for (let n = 0; n < nodes.length; n += nf.length) {
    if (old.has(nodes[n + ii])) continue;
    let chain = describe(n);
    let at = n;
    for (let depth = 0; depth < 6; depth++) {
      const r = retainer.get(at);
      if (!r) break;
      chain += ` <-${r[1]}- ${describe(r[0])}`;
      at = r[0];
      if (old.has(nodes[at + ii])) break;
    }
    const g = groups.get(chain) ?? { chain, count: 0, bytes: 0 };
    g.count++;
    g.bytes += nodes[n + si];
    groups.set(chain, g);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes);
}

function binarySearch(sorted, value) {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] === value) return true;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
