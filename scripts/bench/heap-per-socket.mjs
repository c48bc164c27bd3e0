#!/usr/bin/env node
// What one idle socket costs in the gateway's JavaScript heap, by kind of object: a gateway in
// this process (built packages), N idle sockets opened by a load-generator process, and a heap
// snapshot diff (after GC) before/after. Complements the bench's RSS figure, which also counts
// uWS's native per-socket memory. Both snapshots go to files and are read afterwards: a census
// held in the heap between them (a Map of thousands of kinds) would count itself as per-socket cost.
//
//   node --expose-gc scripts/bench/heap-per-socket.mjs [N=2000] [--redis] [--retainers]
//
// --retainers also groups the objects that are new since the baseline by the chain of edges that
// holds them, up to the first object that existed before (a retainer walk): what keeps each kind alive.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { loadConfig } from '@wsgw/config';
import { startGateway } from '@wsgw/gateway';
import { createLogger } from '@wsgw/telemetry';
import { killAllOwned, startRedis, stopProcess, track, workDir, removeDir } from './lib/procs.mjs';

if (typeof global.gc !== 'function') {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 2000);
const useRedis = process.argv.includes('--redis');
const walk = process.argv.includes('--retainers');
const dir = workDir('heap');
let redis;
let worker;
try {
  redis = useRedis ? await startRedis(dir) : undefined;
  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    OTEL_SDK_DISABLED: 'true',
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
  const spec = { kind: 'idle', host: '127.0.0.1', port: gateway.port, path: '/api/ws/agent', headers: {}, body: 'x' };
  // A few sockets first, so one-off structures (maps, code) exist before the baseline.
  await ask({ cmd: 'prepare', ...spec, conns: 10, tokenPrefix: 'warm' }, 'ready');
  const beforeFile = snapshot('before');
  const ready = await ask({ cmd: 'prepare', ...spec, conns: n, append: true, tokenPrefix: 'probe' }, 'ready');
  await new Promise((r) => setTimeout(r, 500));
  const afterFile = snapshot('after');
  const opened = ready.opened - 10;
  await ask({ cmd: 'stop' }, 'done');
  await gateway.shutdown();

  const before = census(readSnapshot(beforeFile));
  const beforeIds = walk ? before.ids : undefined;
  const afterSnap = readSnapshot(afterFile);
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
  process.stdout.write(`${opened} idle sockets (${useRedis ? 'Redis' : 'embedded'} mode): ${Math.round(total)} B of JS heap per socket\n`);
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
} finally {
  if (worker) worker.kill('SIGKILL');
  if (redis) await stopProcess(redis.child);
  killAllOwned();
  removeDir(dir);
}
process.exit(0);

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
  if (walk) out.ids = objectIds(snap);
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

/**
 * Objects of `after` that `before` did not have (heap object ids are stable within a process),
 * grouped by how they are held: each object's first strong retainer, then that one's, up to an
 * object older than the baseline (or 6 steps), written `kind <-edge- kind ...`.
 */
function objectIds(snap) {
  const fields = snap.snapshot.meta.node_fields;
  const ii = fields.indexOf('id');
  const ids = new Float64Array(snap.nodes.length / fields.length);
  for (let i = 0, k = 0; i < snap.nodes.length; i += fields.length, k++) ids[k] = snap.nodes[i + ii];
  return ids.sort();
}

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
