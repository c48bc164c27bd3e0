#!/usr/bin/env node
// The gateway's own work per message, without sockets, Redis or a second process: core's
// ConnectionHub with the in-process bus and the built-in echo, as in the benchmark's (b) target,
// fed 100 connections x 8 frames per round; the rate limiter allows every message in one batch per
// round (what a Redis answer does, minus the round trip). Prints nanoseconds per message (best and
// median of 7 timed runs after a warm-up). Single-threaded and CPU-bound: steadier than the
// benchmark on a shared machine, so it can tell hot-path changes of a few percent apart.
//
//   node scripts/bench/hub-path.mjs [ROOT]      (ROOT: another checkout's built packages, for A/B)
//   node --cpu-prof scripts/bench/hub-path.mjs  (then scripts/bench/cpuprofile-top.mjs)
//   node scripts/bench/hub-path.mjs [ROOT] --alloc   (bytes allocated per message, by function:
//                                                    V8's sampling heap profiler, garbage included)
import inspector from 'node:inspector/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { allocationSites, formatAllocation, samplingParams } from './lib/alloc.mjs';

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const alloc = process.argv.includes('--alloc');
const root = path.resolve(positional[0] ?? fileURLToPath(new URL('../../', import.meta.url)));
const load = (pkg) => import(pathToFileURL(path.join(root, 'packages', pkg, 'dist/index.js')).href);
const core = await load('core');
const { MemoryAgentBus } = await load('memory');

const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const ALLOWED = Object.freeze({ allowed: true });
const decisions = [];
const rates = { consume: (_userId, done) => void decisions.push(done), close: async () => {} };
const leases = { onLost() {}, acquire: async () => ({ granted: true }), release: async () => {}, close: async () => {} };
const bus = new MemoryAgentBus({ maxInFlightPerType: Number.MAX_SAFE_INTEGER }, quiet);
bus.register('echo', core.builtinAgents.echo);
const hub = new core.ConnectionHub(
  { replicaId: 'bench', maxMessagesPerMinute: Number.MAX_SAFE_INTEGER, agentReplyTimeoutMs: 60_000 },
  { leases, rates, bus, clock: core.systemClock, metrics: core.noopMetrics, log: quiet },
);

let replies = 0;
const ticket = (i) => ({ connectionId: `c${i}`, userId: `u${i}`, path: '/api/ws/agent', origin: 'http://bench.example', tokenHash: 'h' });
// A transport's connection counts what it is sent. Builds before bf7bfc2 (a baseline ROOT) took a
// separate socket object in ConnectionHub.open instead of a Connection subclass.
const ownConnections = typeof core.Connection.prototype.markOpened === 'function';
class CountingConnection extends core.Connection {
  write() {
    replies++;
    return 'buffered';
  }
  closeSocket() {}
}
const socket = { send: () => (replies++, 'buffered'), close() {} };
const connections = Array.from({ length: 100 }, (_, i) => {
  if (!ownConnections) return hub.open(ticket(i), socket);
  const connection = new CountingConnection(ticket(i));
  hub.open(connection);
  return connection;
});
// The benchmark's frame, with an 8-digit id per message in flight.
const frames = Array.from({ length: 8 }, (_, i) => `{"agent_type":"echo","message":"hello from the benchmark","id":"${String(i).padStart(8, '0')}"}`);
const perRound = connections.length * frames.length;

function round() {
  for (const connection of connections) for (const frame of frames) hub.message(connection, frame);
  for (const done of decisions.splice(0)) done(ALLOWED);
}

for (let i = 0; i < 2000; i++) round();
if (alloc) {
  await allocationsPerMessage(200);
  process.exit(0);
}
const runs = [];
for (let r = 0; r < 7; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 3000; i++) round();
  runs.push(Number(process.hrtime.bigint() - t0) / (3000 * perRound));
}
hub.stop();
if (replies !== 23_000 * perRound) throw new Error(`expected ${23_000 * perRound} replies, got ${replies}`);
runs.sort((a, b) => a - b);
console.log(`hub path (${root}): ${runs[0].toFixed(0)} ns per message best, ${runs[3].toFixed(0)} median of 7 runs`);

/** Samples what `rounds` rounds allocate and prints bytes per message by allocating function. */
async function allocationsPerMessage(rounds) {
  const session = new inspector.Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', samplingParams({ intervalBytes: 64 }));
  for (let i = 0; i < rounds; i++) round();
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  const [head, ...rest] = formatAllocation(allocationSites(profile), rounds * perRound, 'message');
  console.log([`hub path (${root}): ${head}`, ...rest].join('\n'));
}
