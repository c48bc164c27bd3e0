#!/usr/bin/env node
// What one idle socket costs in the gateway's JavaScript heap, by kind of object: a gateway in
// this process (built packages), N idle sockets opened by a load-generator process, and a heap
// snapshot diff (after GC) before/after. Complements the bench's RSS figure, which also counts
// uWS's native per-socket memory.
//
//   node --expose-gc scripts/bench/heap-per-socket.mjs [N=2000] [--redis]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
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
  const before = await census();
  const ready = await ask({ cmd: 'prepare', ...spec, conns: n, append: true, tokenPrefix: 'probe' }, 'ready');
  await new Promise((r) => setTimeout(r, 500));
  const after = await census();
  const opened = ready.opened - 10;

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
  await ask({ cmd: 'stop' }, 'done');
  await gateway.shutdown();
} finally {
  if (worker) worker.kill('SIGKILL');
  if (redis) await stopProcess(redis.child);
  killAllOwned();
  removeDir(dir);
}
process.exit(0);

/** Heap objects after a full GC, summed by V8 node type and constructor name. */
async function census() {
  global.gc();
  global.gc();
  const chunks = [];
  for await (const chunk of v8.getHeapSnapshot()) chunks.push(chunk);
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8'));
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
