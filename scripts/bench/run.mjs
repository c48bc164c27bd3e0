#!/usr/bin/env node
// `npm run bench`: bare uWebSockets.js echo vs one gateway replica, same run, same client.
// See docs/BENCHMARKS.md. Loopback only; every process it starts is stopped by PID at the end.
//
//   node scripts/bench/run.mjs [--quick] [--json FILE] [--out DIR] [--workers N] [--duration S]
//                              [--warmup S] [--idle N] [--idle-rounds K] [--idle-steady S] [--only bare,redis,embedded,otel,otel-full,limited]
//                              [--conns N --inflight M]   (throughput scenario shape)
//                              [--client ws]   (the ws package instead of the raw client)
//                              [--cpu-prof [embedded|otel|bare]]   (profile one server under the throughput load)
//                              [--alloc-prof [embedded|bare]]   (what it allocates per message, by function)
//                              [--gateway-node-options=...]   (NODE_OPTIONS of the gateways; default: the
//                              ones it ships with, packages/gateway/src/runtime.ts; empty for Node's defaults)
//                              [--baseline DIR]   (also run DIR's built Redis-mode gateway, interleaved: an A/B)
//                              [--baseline-node-args="..."]   (node's own flags for the baseline gateway, V8's
//                              included: with --baseline . an A/B of runtime flags on one build)
//                              [--baseline-env="NAME=VALUE NAME2="]   (over the baseline gateway's environment;
//                              NAME= unsets it: with --baseline . an A/B of, say, MALLOC_ARENA_MAX)
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import {
  commandCalls,
  cpuSeconds,
  diffCalls,
  freePort,
  killAllOwned,
  loadAverage,
  machineCpu,
  monitorSample,
  redisUsedMemory,
  rssBytes,
  socketCount,
  spawnOwned,
  startRedis,
  stopProcess,
  track,
  waitForHttp,
} from './lib/procs.mjs';
import { Histogram } from './lib/hist.mjs';
import { startOtlpSink } from './lib/otlp-sink.mjs';
import { printReport, evaluateTargets } from './lib/report.mjs';
import { topFunctions } from './cpuprofile-top.mjs';
import { allocationSites, formatAllocation } from './lib/alloc.mjs';
import { GATEWAY_NODE_OPTIONS } from '@wsgw/gateway/runtime';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = parseArgs(process.argv.slice(2));
const quick = args.quick === true;
const ORIGIN = 'http://bench.example';
const runId = randomBytes(3).toString('hex');

const plan = {
  quick,
  workers: Number(args.workers ?? 2),
  client: args.client === 'ws' ? 'ws' : 'raw',
  // The gateway as it ships (the Dockerfile sets the same NODE_OPTIONS).
  gatewayNodeOptions: args['gateway-node-options'] === undefined ? GATEWAY_NODE_OPTIONS : String(args['gateway-node-options'] === true ? '' : args['gateway-node-options']),
  warmupS: Number(args.warmup ?? (quick ? 0.3 : 1)),
  durationS: Number(args.duration ?? (quick ? 1 : 5)),
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  idleRounds: Math.max(1, Number(args['idle-rounds'] ?? (quick ? 1 : 5))),
  monitorMs: quick ? 300 : 1000,
  throughput: { conns: Number(args.conns ?? (quick ? 20 : 100)), inflight: Number(args.inflight ?? 8) },
  latency: { conns: quick ? 4 : 10, inflight: 1 },
  storm: { concurrency: quick ? 8 : 32 },
  // Idle readings wait for RSS to hold still for `steadyS` (at most `settleMaxS`). V8's memory
  // reducer collects a burst's garbage about 8 s after allocation stops, when it starts at all,
  // so a reading may hold that garbage or not: longer waits do not make two readings alike
  // (docs/BENCHMARKS.md, "Memory per idle socket", 2026-12-06). The warm figure's two readings
  // therefore follow a forced full collection (gc-probe.mjs).
  idle: {
    conns: Number(args.idle ?? (quick ? 100 : 5000)),
    settleS: quick ? 0.3 : 1.5,
    steadyS: Number(args['idle-steady'] ?? (quick ? 0.5 : 3)),
    settleMaxS: Math.max(quick ? 3 : 20, 4 * Number(args['idle-steady'] ?? 0)),
  },
  // One user far over 10/s; the per-minute limit is huge only so that the socket is not closed
  // with 1008 for its many denials (CONTRACT §5) while we count what the denials cost.
  limited: { conns: 1, inflight: 8, perSecond: 10, perMinute: 1_000_000_000 },
  only: args.only ? String(args.only).split(',') : ['bare', 'redis', 'embedded', 'otel', 'otel-full', 'limited'],
  // Another checkout (built) whose Redis-mode gateway runs in the same interleaved rounds as (b):
  // an A/B of two commits that the machine's drift between separate runs cannot blur.
  baseline: typeof args.baseline === 'string' ? path.resolve(args.baseline) : undefined,
  baselineNodeArgs: typeof args['baseline-node-args'] === 'string' ? args['baseline-node-args'].split(/\s+/).filter(Boolean) : [],
  // NAME=VALUE pairs (space-separated) over the baseline gateway's environment; NAME= unsets one.
  baselineEnv: typeof args['baseline-env'] === 'string' ? args['baseline-env'].split(/\s+/).filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2)) : [],
};
if (plan.baseline && !plan.only.includes('baseline')) plan.only.push('baseline');

const outDir = args.out ? path.resolve(String(args.out)) : path.join(root, '.bench', new Date().toISOString().replace(/[:.]/g, '-'));
mkdirSync(outDir, { recursive: true });

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping every process the bench started\n`);
    killAllOwned('SIGKILL');
    process.exit(130);
  });
}

const workers = [];

try {
  await main();
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
} finally {
  for (const w of workers) w.proc.kill('SIGKILL');
  killAllOwned('SIGKILL');
}

async function main() {
  const gatewayMain = path.join(root, 'packages/gateway/dist/main.js');
  if (!existsSync(gatewayMain)) throw new Error('packages/gateway/dist/main.js is missing: run `npm run build` first');

  for (let i = 0; i < plan.workers; i++) workers.push(startWorker(i));

  const report = {
    meta: {
      date: new Date().toISOString(),
      quick,
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
      commit: gitCommit(root),
      baseline: plan.baseline
        ? `${plan.baseline} (commit ${gitCommit(plan.baseline)})${plan.baselineNodeArgs.length > 0 ? `, node ${plan.baselineNodeArgs.join(' ')}` : ''}${
            plan.baselineEnv.length > 0 ? `, env ${plan.baselineEnv.map(([k, v]) => `${k}=${v ?? ''}`).join(' ')}` : ''
          }`
        : undefined,
      workers: plan.workers,
      client: plan.client === 'ws' ? 'the ws package (scripts/bench/lib/wsclient.mjs)' : 'raw WebSocket over node:net (scripts/bench/lib/rawws.mjs)',
      gatewayNodeOptions: plan.gatewayNodeOptions,
      warmupS: plan.warmupS,
      durationS: plan.durationS,
      rounds: plan.rounds,
      idleRounds: plan.idleRounds,
      scenarios: {
        throughput: plan.throughput,
        latency: plan.latency,
        storm: plan.storm,
        idle: plan.idle,
      },
      loadAverageStart: loadAverage(),
      outDir,
    },
    targets: {},
  };

  try {
    report.meta.redisVersion = execFileSync('redis-server', ['--version']).toString().trim();
  } catch {
    report.meta.redisVersion = 'redis-server not found on PATH: the Redis-mode targets will fail to start';
  }

  if (args['cpu-prof'] || args['alloc-prof']) {
    const alloc = Boolean(args['alloc-prof']);
    const kind = args[alloc ? 'alloc-prof' : 'cpu-prof'];
    const redis = kind === 'embedded' || kind === 'bare' ? null : await startRedis(workDirFor('redis-profile'));
    const sink = kind === 'otel' ? await startOtlpSink() : null;
    report.profile = await profileServer({ alloc, bare: kind === 'bare', redis, sink, gatewayMain });
    if (redis) await stopProcess(redis.child);
    if (sink) await sink.close();
  } else {
    await runAll(report, gatewayMain);
  }

  report.meta.loadAverageEnd = loadAverage();
  report.checks = evaluateTargets(report);
  for (const w of workers) w.proc.send({ cmd: 'exit' });

  const json = JSON.stringify(report, null, 2);
  writeFileSync(path.join(outDir, 'report.json'), json);
  if (args.json) writeFileSync(String(args.json), json);
  printReport(report, process.stdout);
}

// --- targets ---------------------------------------------------------------------------------

/**
 * Every server is started first, each Redis-mode gateway with a redis-server of its own (so Redis
 * CPU and command counts belong to one gateway). Idle memory is measured first, on fresh
 * processes. Then the load scenarios run in rounds, targets interleaved, so a burst of load from
 * elsewhere on a shared machine hits every target alike; each figure is the median round.
 */
async function runAll(report, gatewayMain) {
  const full = ['idle', 'throughput', 'latency', 'storm'];
  const withRedis = async (key) => startRedis(workDirFor(`redis-${key}`));
  const defs = [
    // The targets measured idle carry gc-probe.mjs (runIdle collects garbage before reading RSS).
    { key: 'bare', label: '(a) bare uWS echo', scenarios: full, start: () => withGcProbe(startBare) },
    { key: 'redis', label: '(b) gateway, Redis, telemetry off', scenarios: full, redis: true, start: (t) => probedGateway(gatewayMain, 'redis', gatewayEnv({ redis: t.redis })) },
    { key: 'embedded', label: 'gateway, embedded, telemetry off', scenarios: full, start: () => probedGateway(gatewayMain, 'embedded', gatewayEnv({})) },
    {
      key: 'baseline',
      label: 'baseline gateway, Redis (--baseline)',
      scenarios: full,
      redis: true,
      start: (t) => probedGateway(baselineMain(), 'baseline', baselineEnv(gatewayEnv({ redis: t.redis })), plan.baselineNodeArgs),
    },
    {
      key: 'otel',
      label: 'gateway, Redis, telemetry on (OTLP)',
      scenarios: ['throughput'],
      redis: true,
      sink: true,
      start: (t) => startGateway(gatewayMain, 'otel', gatewayEnv({ redis: t.redis, otlp: t.sink.url })),
    },
    {
      key: 'otel-full',
      label: 'gateway, Redis, telemetry, all traces',
      scenarios: ['throughput'],
      redis: true,
      sink: true,
      start: (t) => startGateway(gatewayMain, 'otel-full', gatewayEnv({ redis: t.redis, otlp: t.sink.url, sampler: 'parentbased_always_on' })),
    },
    {
      key: 'limited',
      label: 'gateway, Redis, one user over its limit',
      scenarios: ['limited'],
      redis: true,
      start: (t) => startGateway(gatewayMain, 'limited', gatewayEnv({ redis: t.redis, perSecond: plan.limited.perSecond, perMinute: plan.limited.perMinute })),
    },
  ].filter((t) => plan.only.includes(t.key));

  try {
    // Started side by side (start-up is mostly waiting), measured one at a time.
    for (const t of defs) {
      t.result = { label: t.label, scenarios: {}, rounds: {} };
      report.targets[t.key] = t.result;
    }
    await Promise.all(defs.map(async (t) => {
      try {
        if (t.redis) t.redis = await withRedis(t.key);
        if (t.sink) t.sink = await startOtlpSink(); // one per target: its counts are that target's
        t.server = await t.start(t);
        t.result.pid = t.server.child.pid;
        if (t.redis) t.result.redisPid = t.redis.child.pid;
      } catch (err) {
        targetFailed(t, 'start', err);
      }
    }));
    const live = () => defs.filter((t) => t.server && !t.result.error);

    // Idle memory on a fresh process each time, `idleRounds` times with the targets taking turns:
    // one reading moves by a V8 page or malloc arena step (~1 MiB, ~200 B per socket at N = 5,000)
    // with when a collection happens to run, so the figure is the median reading (docs/BENCHMARKS.md).
    // Every round starts its processes together, as the first: the later targets of a round
    // wait idle (their start-up garbage collected) while the first is measured, the same each time.
    for (let round = 0; round < plan.idleRounds && !interrupted; round++) {
      const idle = live().filter((d) => d.scenarios.includes('idle'));
      if (round > 0) await Promise.all(idle.map((t) => restart(t)));
      for (const t of idle) if (t.server && !t.result.error) await runOne(t, 'idle', round, plan.idleRounds);
    }
    for (let round = 0; round < plan.rounds && !interrupted; round++) {
      for (const name of ['throughput', 'latency', 'storm', 'limited']) {
        const order = live().filter((t) => t.scenarios.includes(name));
        // Rotate who goes first, so no target always runs right after the same neighbour.
        for (let i = 0; i < order.length && !interrupted; i++) await runOne(order[(i + round) % order.length], name, round);
      }
    }
    for (const t of defs) {
      for (const [name, runs] of Object.entries(t.result.rounds)) t.result.scenarios[name] = medianRun(name, runs);
      if (t.sink) t.result.otlpReceived = t.sink.snapshot();
    }
  } finally {
    for (const t of defs) {
      if (t.server) t.result.exitCode = await stopProcess(t.server.child, 15_000);
      if (t.redis?.child) await stopProcess(t.redis.child);
      if (t.sink?.close) await t.sink.close();
    }
  }
}

/** A fresh process for target `t` (its Redis, if any, stays). */
async function restart(t) {
  await stopProcess(t.server.child, 15_000);
  t.server = undefined;
  try {
    t.server = await t.start(t);
    t.result.pid = t.server.child.pid;
  } catch (err) {
    targetFailed(t, 'restart', err);
  }
}

/** Target `t` could not `what` (start, restart): it is reported failed and runs nothing more. */
function targetFailed(t, what, err) {
  t.result.error = String(err instanceof Error ? err.message : err).slice(0, 2000);
  process.stderr.write(`-- ${t.label}: failed to ${what}: ${t.result.error}\n`);
}

async function runOne(t, name, round, rounds = plan.rounds) {
  if (t.result.error) return;
  process.stderr.write(`   ${t.label}: ${name}${round === undefined ? '' : ` (round ${round + 1}/${rounds})`}...`);
  let r;
  try {
    r = await runScenario(name, t.server, t, round);
    process.stderr.write(` ${summary(name, r)}\n`);
  } catch (err) {
    r = { error: String(err instanceof Error ? err.message : err) };
    process.stderr.write(` error: ${r.error}\n`);
  }
  (t.result.rounds[name] ??= []).push(r);
  if (t.server.child.exitCode !== null || t.server.child.signalCode !== null) {
    t.result.error = `server exited during ${name}: ${t.server.tail()}`;
  }
}

/** The round with the median primary figure (the lower middle for an even count), whole. */
function medianRun(name, runs) {
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) return runs[0];
  const key = name === 'storm' ? 'upgradesPerSec' : name === 'latency' ? 'p99Ms' : name === 'idle' ? 'warmBytesPerConn' : 'msgsPerSec';
  const sorted = [...ok].sort((x, y) => (x[key] ?? 0) - (y[key] ?? 0));
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return ok.length > 1 ? { ...median, medianOf: ok.length, allRounds: ok.map((r) => r[key]) } : median;
}

function workDirFor(name) {
  const dir = path.join(outDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function summary(name, r) {
  if (name === 'idle') return `${r.conns} sockets, ${fmt(r.bytesPerConn)} B/socket first burst, ${fmt(r.warmBytesPerConn)} B/socket warm after GC (V8 heap ${fmt(r.warmHeapTotalBytesPerConn)}, ${fmt(r.warmHeapUsedBytesPerConn)} in use; native ${fmt(r.warmNativeBytesPerConn)}; ${fmt(r.warmUncollectedBytesPerConn)} before the GC; reopen ${fmt(r.reopenBytesPerConn)})`;
  if (name === 'storm') return `${fmt(r.upgradesPerSec)} upgrades/s`;
  return `${fmt(r.msgsPerSec)} msgs/s, p50 ${fmt(r.p50Ms, 3)} ms, p99 ${fmt(r.p99Ms, 3)} ms${
    Object.keys(r.errors).length ? ` errors ${JSON.stringify(r.errors)}` : ''
  }`;
}

/** `env` with --baseline-env applied. */
function baselineEnv(env) {
  const out = { ...env };
  for (const [name, value] of plan.baselineEnv) {
    if (value === '' || value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

/** The --baseline checkout's gateway entry point; that checkout must be built. */
function baselineMain() {
  const main = path.join(plan.baseline ?? '', 'packages/gateway/dist/main.js');
  if (!plan.baseline || !existsSync(main)) throw new Error(`--baseline: ${main} is missing (clone, npm ci, npm run build there)`);
  return main;
}

/**
 * Starts a server (`start` gets node's flags and env to add) with gc-probe.mjs preloaded on a port
 * of its own: `collectGarbage` asks it for a full collection.
 */
async function withGcProbe(start) {
  const gcPort = await freePort();
  const server = await start(['--import', path.join(root, 'scripts/bench/lib/gc-probe.mjs')], { WSGW_BENCH_GC_PORT: String(gcPort) });
  return { ...server, gcPort };
}

/** startGateway with gc-probe.mjs preloaded (withGcProbe). */
function probedGateway(mainJs, name, env, nodeArgs = []) {
  return withGcProbe((probeArgs, probeEnv) => startGateway(mainJs, name, { ...env, ...probeEnv }, [...nodeArgs, ...probeArgs]));
}

/**
 * A full garbage collection in `server` (gc-probe.mjs) and its process.memoryUsage() taken right
 * after it, in the same turn: RSS and V8's heap at one instant, before the server runs anything
 * else. No wait for RSS to settle: in instrumented runs it fell no further after the answer (the
 * emptied pages are back by then). Reading RSS from outside a few seconds later instead let the
 * server's timers run first: a lease heartbeat of 10,000 slots regrew V8's young generation from
 * 1 to up to 16 MiB after the collection had shrunk it, and that read as ~1.5 KB per socket in
 * about half the Redis-mode rounds (docs/BENCHMARKS.md, "Memory per idle socket").
 */
async function collectGarbage(server) {
  if (server.gcPort === undefined) throw new Error('this server was started without gc-probe.mjs');
  const res = await fetch(`http://127.0.0.1:${server.gcPort}/`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`gc-probe answered ${res.status}`);
  return res.json();
}

async function startBare(nodeArgs = [], env = {}) {
  const port = await freePort();
  const { child, tail } = spawnOwned(process.execPath, [...nodeArgs, path.join(root, 'scripts/bench/bare-uws-echo.mjs'), String(port)], {
    env: { ...process.env, ...env },
    dir: outDir,
    name: 'bare',
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 10_000, child);
  return { child, tail, port, path: '/echo', kind: 'bare' };
}

function gatewayEnv({ redis, otlp, perSecond, perMinute, sampler }) {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ENVIRONMENT: 'development',
    HOST: '127.0.0.1',
    CORS_ORIGINS: ORIGIN,
    SESSION_VALIDATOR: 'dev',
    WEBSOCKET_BUILTIN_AGENTS: 'echo',
    // Limits high enough that the load measures the cost of checking them, not their effect, yet
    // finite: both windows are exact logs sized by the limit (memory: a ring of max(perSecond,
    // perMinute) doubles per user, allocated up front; Redis: LINDEX at limit-1). With 1e9 every
    // new user cost the embedded gateway an 8 GB typed array and ~3 ms of CPU. 100,000 is far
    // above what one user sends in one round (users are fresh each round), so nothing is limited.
    WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1000',
    WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '1000000',
    WEBSOCKET_MAX_MESSAGES_PER_SECOND: String(perSecond ?? 100_000),
    WEBSOCKET_MAX_MESSAGES_PER_MINUTE: String(perMinute ?? 100_000),
    AGENT_MAX_QUEUE: '1000000',
    SHUTDOWN_DRAIN_SECONDS: '2',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    NODE_OPTIONS: plan.gatewayNodeOptions,
    OTEL_SDK_DISABLED: otlp ? 'false' : 'true',
    OTEL_SERVICE_NAME: 'wsgw-bench',
  };
  if (redis) {
    env.REDIS_URL = redis.url;
    env.REDIS_KEY_PREFIX = `bench:${runId}:${randomBytes(2).toString('hex')}:`;
  }
  if (otlp) {
    env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp;
    env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
    env.OTEL_METRIC_EXPORT_INTERVAL = '1000';
    env.OTEL_BSP_SCHEDULE_DELAY = '1000';
  }
  // Unset, the gateway samples 1% of new traces (packages/telemetry/src/sampler.ts): the
  // telemetry-on target measures that default; the all-traces one shows what tracing each costs.
  if (otlp && sampler) env.OTEL_TRACES_SAMPLER = sampler;
  return env;
}

async function startGateway(mainJs, name, env, nodeArgs = []) {
  const port = await freePort();
  const { child, tail } = spawnOwned(process.execPath, [...nodeArgs, mainJs], { env: { ...env, PORT: String(port) }, dir: outDir, name: `gateway-${name}` });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, 20_000, child);
  } catch (err) {
    await stopProcess(child, 2000);
    throw new Error(`${err.message}\n${tail()}`);
  }
  return { child, tail, port, path: '/api/ws/agent', kind: 'gateway' };
}

// --- scenarios -------------------------------------------------------------------------------

async function runScenario(name, server, target, round = 0) {
  const base = {
    host: '127.0.0.1',
    port: server.port,
    path: server.path,
    headers: { Origin: ORIGIN },
    body: 'hello from the benchmark',
    client: plan.client,
  };
  const tag = `${runId}-${target.key}-${name}-r${round}`; // fresh users every round
  switch (name) {
    case 'throughput':
      return runEcho(server, target, { ...base, kind: 'echo', ...plan.throughput, tag });
    case 'latency':
      return runEcho(server, target, { ...base, kind: 'echo', ...plan.latency, tag });
    case 'limited':
      return runEcho(server, target, { ...base, kind: 'echo', ...plan.limited, tag, oneUser: true });
    case 'storm':
      return runStorm(server, target, { ...base, kind: 'storm', ...plan.storm, tag });
    case 'idle':
      return runIdle(server, target, { ...base, kind: 'idle', ...plan.idle, tag });
    default:
      throw new Error(`unknown scenario ${name}`);
  }
}

/** Splits n over the workers (the first ones take the remainder); workers given 0 sit out. */
function split(n) {
  return workers.map((_, i) => Math.floor(n / workers.length) + (i < n % workers.length ? 1 : 0));
}

async function prepare(specs) {
  const active = [];
  await Promise.all(
    specs.map(async (spec, i) => {
      if (spec === null) return;
      const w = workers[i];
      active.push(w);
      const ready = await w.request({ cmd: 'prepare', ...spec }, 'ready', 120_000);
      w.lastReady = ready;
    }),
  );
  return active;
}

/** Measures a window: resources before/after, worker stats merged. */
async function measure(active, server, target, options = {}) {
  const redisPid = target.redis?.child.pid;
  const before = {
    server: cpuSeconds(server.child.pid),
    redis: redisPid ? cpuSeconds(redisPid) : 0,
    calls: target.redis ? await commandCalls(target.redis.port) : {},
    machine: machineCpu(),
    load: loadAverage(),
    t: performance.now(),
  };
  for (const w of active) w.proc.send({ cmd: 'mark' });
  target.onWindow?.(true);
  await sleep(plan.durationS * 1000);
  target.onWindow?.(false);
  const wall = (performance.now() - before.t) / 1000;
  const after = {
    server: cpuSeconds(server.child.pid),
    redis: redisPid ? cpuSeconds(redisPid) : 0,
    machine: machineCpu(),
  };
  // Commandstats first: the MONITOR sample below runs while the load goes on, outside the window.
  after.calls = target.redis ? await commandCalls(target.redis.port) : {};
  const monitor = target.redis && options.monitor ? await monitorSample(target.redis.port, plan.monitorMs) : null;
  const stats = await Promise.all(active.map((w) => w.request({ cmd: 'stop' }, 'stats', 30_000)));
  await Promise.all(active.map((w) => w.waitFor('done', 30_000)));
  const merged = mergeStats(stats);
  const calls = diffCalls(before.calls, after.calls);
  const usec = target.redis ? diffCalls(before.calls.usec, after.calls.usec) : {};
  return {
    wallS: round(wall, 3),
    serverCpuS: round(after.server - before.server, 2),
    serverCpuUtil: round((after.server - before.server) / wall, 2),
    redisCpuS: round(after.redis - before.redis, 2),
    clientCpuS: round(merged.cpuUs / 1e6, 2),
    machineBusy: round((after.machine.busy - before.machine.busy) / Math.max(1, after.machine.total - before.machine.total), 2),
    loadAverage: before.load,
    redisCalls: calls,
    redisUsec: usec,
    monitor,
    merged,
  };
}

async function runEcho(server, target, spec) {
  const specs = split(spec.conns).map((conns, i) =>
    conns === 0 ? null : { ...spec, conns, tokenPrefix: spec.oneUser ? `${spec.tag}-user` : `${spec.tag}-w${i}` },
  );
  const active = await prepare(specs);
  const opened = active.reduce((n, w) => n + w.lastReady.opened, 0);
  if (opened < spec.conns) throw new Error(`only ${opened}/${spec.conns} sockets opened: ${JSON.stringify(active.map((w) => w.lastReady.failures))}`);
  for (const w of active) w.proc.send({ cmd: 'go' });
  await sleep(plan.warmupS * 1000);
  const m = await measure(active, server, target, { monitor: !spec.oneUser });
  const { merged } = m;
  const hist = Histogram.merge(merged.hists);
  const accepted = merged.ok;
  const { perUnit: topLevelPerMsg, byCommand: topLevelBreakdown } = roundTrips(m, accepted);
  const limitCalls = sumCalls(m.redisCalls, /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/);
  const allCalls = sumCalls(m.redisCalls, /.*/);
  const errorCount = Object.values(merged.errors).reduce((a, b) => a + b, 0);
  return {
    conns: spec.conns,
    inflight: spec.inflight,
    msgsPerSec: round(accepted / m.wallS, 0),
    accepted,
    errors: merged.errors,
    unexpectedCloses: merged.closes,
    p50Ms: msOrNull(hist.quantile(0.5)),
    p99Ms: msOrNull(hist.quantile(0.99)),
    p999Ms: msOrNull(hist.quantile(0.999)),
    wallS: m.wallS,
    serverCpuS: m.serverCpuS,
    serverCpuUtil: m.serverCpuUtil,
    redisCpuS: m.redisCpuS,
    msgsPerCpuSecond: round(accepted / Math.max(0.01, m.serverCpuS + m.redisCpuS), 0),
    serverCpuUsPerMsg: accepted ? round((m.serverCpuS * 1e6) / accepted, 1) : null,
    redisCpuUsPerMsg: target.redis && accepted ? round((m.redisCpuS * 1e6) / accepted, 2) : null,
    clientCpuS: m.clientCpuS,
    clientCpuUsPerMsg: accepted ? round((m.clientCpuS * 1e6) / accepted, 1) : null,
    machineBusy: m.machineBusy,
    loadAverage: m.loadAverage,
    redisCalls: m.redisCalls,
    redisCallsPerMsg: target.redis && accepted ? round(allCalls / accepted, 4) : null,
    redisLimitCallsPerMsg: target.redis && accepted ? round(limitCalls / accepted, 4) : null,
    redisRoundTripsPerMsg: topLevelPerMsg,
    // Redis' own time per message by command (INFO commandstats usec; a script's time includes the
    // commands it runs, which are also listed on their own).
    redisUsecPerMsgByCommand:
      target.redis && accepted
        ? Object.fromEntries(
            Object.entries(m.redisUsec)
              .sort((x, y) => y[1] - x[1])
              .slice(0, 8)
              .map(([cmd, us]) => [cmd, round(us / accepted, 2)]),
          )
        : null,
    redisRoundTripsByCommand: topLevelBreakdown,
    redisMonitorSample: m.monitor,
    rateLimited: merged.errors.rate_limited ?? 0,
    redisCallsPerLimitedMsg:
      target.redis && (merged.errors.rate_limited ?? 0) > 0 ? round(allCalls / (merged.errors.rate_limited + accepted), 4) : null,
    ...(errorCount > 0 && !spec.oneUser ? { warning: 'some replies were errors: the figures include rejected load' } : {}),
  };
}

async function runStorm(server, target, spec) {
  const specs = split(spec.concurrency).map((concurrency, i) => (concurrency === 0 ? null : { ...spec, concurrency, tokenPrefix: `${spec.tag}-w${i}` }));
  const active = await prepare(specs);
  for (const w of active) w.proc.send({ cmd: 'go' });
  await sleep(plan.warmupS * 1000);
  const m = await measure(active, server, target, { monitor: true });
  const { merged } = m;
  const hist = Histogram.merge(merged.hists);
  const trips = roundTrips(m, merged.upgrades);
  return {
    concurrency: spec.concurrency,
    upgradesPerSec: round(merged.upgrades / m.wallS, 0),
    upgrades: merged.upgrades,
    rejected: merged.rejected,
    failureSample: merged.failureSample,
    p50Ms: msOrNull(hist.quantile(0.5)),
    p99Ms: msOrNull(hist.quantile(0.99)),
    wallS: m.wallS,
    serverCpuS: m.serverCpuS,
    serverCpuUtil: m.serverCpuUtil,
    redisCpuS: m.redisCpuS,
    upgradesPerCpuSecond: round(merged.upgrades / Math.max(0.01, m.serverCpuS + m.redisCpuS), 0),
    clientCpuS: m.clientCpuS,
    machineBusy: m.machineBusy,
    loadAverage: m.loadAverage,
    redisCallsPerUpgrade: target.redis && merged.upgrades ? round(sumCalls(m.redisCalls, /.*/) / merged.upgrades, 3) : null,
    redisRoundTripsPerUpgrade: trips.perUnit,
    redisRoundTripsByCommand: trips.byCommand,
    redisCalls: m.redisCalls,
  };
}

/**
 * Idle memory as RSS delta / N. First burst: N idle sockets opened on a fresh server (and the
 * marginal cost between N/2 and N); on a fresh process this includes one-off growth that the
 * first burst pays for, chiefly V8's young generation touching its second semi-space
 * (docs/BENCHMARKS.md, "Memory per idle socket"). Then those sockets are closed and the server
 * left to settle (its socket count back to where it started and its RSS steady, bounded wait).
 * Reopen: N new sockets; they land in memory the first burst freed (malloc's free lists, V8
 * pages), so RSS barely moves, for bare uWS not at all: no figure to divide by. Warm: N more on
 * top of those, past the first burst's high-water mark, on a process whose heap has grown once:
 * what each further connection costs a running replica, read after a full collection before and
 * after the batch (gc-probe.mjs); the target uses this figure. The batch's RSS growth before its
 * collection (upgrade garbage included) is reported beside it.
 */
async function runIdle(server, target, spec) {
  const { pid } = server.child;
  await sleep(300);
  const socketsBefore = socketCount(pid);
  const rssBefore = rssBytes(pid);
  const redisBefore = target.redis ? await redisUsedMemory(target.redis.port) : 0;
  const half = Math.floor(spec.conns / 2);
  const t0 = performance.now();
  let active = await prepare(split(half).map((conns, i) => (conns === 0 ? null : { ...spec, conns, tokenPrefix: `${spec.tag}-w${i}a` })));
  await sleep(spec.settleS * 1000);
  const rssHalf = rssBytes(pid);
  const openedHalf = active.reduce((n, w) => n + w.lastReady.opened, 0);
  const t1 = performance.now();
  active = await openMoreIdle(spec, active, spec.conns - half, 'b');
  const connectS = (performance.now() - t1 + (t1 - t0)) / 1000 - spec.settleS;
  const opened = active.reduce((n, w) => n + w.lastReady.opened, 0);
  await sleep(spec.settleS * 1000);
  const rssAfter = rssBytes(pid);
  const redisAfter = target.redis ? await redisUsedMemory(target.redis.port) : 0;
  const first = await closeIdle(active);
  if (opened < spec.conns) throw new Error(`only ${opened}/${spec.conns} idle sockets opened: ${JSON.stringify(first.failures)}`);

  // The probe's first request in a process costs ~1.1 MiB of native memory that shows up in RSS
  // over the next few hundred ms, bare uWS included: paid here, before the settle and the readings
  // that follow it, rather than inside the warm figure's first reading.
  await collectGarbage(server);
  const settled = await settle(pid, (n) => n <= socketsBefore, spec.settleMaxS, spec.steadyS);
  const rssClosed = rssBytes(pid);
  active = await prepare(split(spec.conns).map((conns, i) => (conns === 0 ? null : { ...spec, conns, tokenPrefix: `${spec.tag}-w${i}c` })));
  const reopened = active.reduce((n, w) => n + w.lastReady.opened, 0);
  await settle(pid, (n) => n >= socketsBefore + reopened, spec.settleMaxS, spec.steadyS);
  const rssReopenUncollected = rssBytes(pid);
  // Both readings of the warm figure are the server's own, right after a full collection: what
  // the sockets hold, whether or not V8's memory reducer (which runs some seconds after allocation
  // stops, or not at all) has collected the garbage their upgrades left yet, and before a timer of
  // the server's allocates anew (collectGarbage). Without it the figure swung by half.
  const usageReopen = await collectGarbage(server);
  const rssReopen = usageReopen.rss;
  const t2 = performance.now();
  active = await openMoreIdle(spec, active, spec.conns, 'd');
  const warmConnectS = (performance.now() - t2) / 1000;
  const warmOpened = active.reduce((n, w) => n + w.lastReady.opened, 0) - reopened;
  await settle(pid, (n) => n >= socketsBefore + reopened + warmOpened, spec.settleMaxS, spec.steadyS);
  const rssWarmUncollected = rssBytes(pid);
  const usageWarm = await collectGarbage(server);
  const rssWarm = usageWarm.rss;
  const again = await closeIdle(active);
  if (reopened < spec.conns || warmOpened < spec.conns) {
    throw new Error(`only ${reopened} + ${warmOpened} of ${spec.conns} + ${spec.conns} idle sockets opened after the first burst: ${JSON.stringify(again.failures)}`);
  }
  return {
    conns: opened,
    rssBeforeMiB: round(rssBefore / 2 ** 20, 1),
    rssAfterMiB: round(rssAfter / 2 ** 20, 1),
    bytesPerConn: round((rssAfter - rssBefore) / opened, 0),
    marginalBytesPerConn: opened > openedHalf ? round((rssAfter - rssHalf) / (opened - openedHalf), 0) : null,
    redisBytesPerConn: target.redis ? round((redisAfter - redisBefore) / opened, 0) : null,
    connectS: round(connectS, 2),
    // After the first burst closed: how long the server took to settle (false: the wait ran out).
    settleS: round(settled.seconds, 2),
    settled: settled.steady,
    rssClosedMiB: round(rssClosed / 2 ** 20, 1),
    rssReopenMiB: round(rssReopen / 2 ** 20, 1),
    reopenBytesPerConn: round((rssReopenUncollected - rssClosed) / reopened, 0),
    rssWarmMiB: round(rssWarm / 2 ** 20, 1),
    warmBytesPerConn: round((rssWarm - rssReopen) / warmOpened, 0),
    // The same batch read before its collection: the garbage of its upgrades included.
    rssWarmUncollectedMiB: round(rssWarmUncollected / 2 ** 20, 1),
    warmUncollectedBytesPerConn: round((rssWarmUncollected - rssReopen) / warmOpened, 0),
    // Where the warm figure's bytes are, after the collection: V8's heap (pages it holds, and
    // what is live in them) and the rest of RSS (native: uWS, malloc'd buffers, allocator slack).
    warmHeapTotalBytesPerConn: round((usageWarm.heapTotal - usageReopen.heapTotal) / warmOpened, 0),
    warmHeapUsedBytesPerConn: round((usageWarm.heapUsed - usageReopen.heapUsed) / warmOpened, 0),
    warmNativeBytesPerConn: round((rssWarm - usageWarm.heapTotal - (rssReopen - usageReopen.heapTotal)) / warmOpened, 0),
    warmConnectS: round(warmConnectS, 2),
    closedWhileIdle: mergeStats([...first.stats, ...again.stats]).closes,
  };
}

/** Opens `n` more idle sockets on top of those the workers in `active` hold. */
function openMoreIdle(spec, active, n, tag) {
  return prepare(
    split(n).map((conns, i) =>
      conns === 0 && !active.includes(workers[i]) ? null : { ...spec, conns, append: true, tokenPrefix: `${spec.tag}-w${i}${tag}` },
    ),
  );
}

/** Ends an idle burst: the workers' stats, then their sockets closed. */
async function closeIdle(active) {
  const failures = active.map((w) => w.lastReady.failures).filter((f) => Object.keys(f).length > 0);
  const stats = await Promise.all(active.map((w) => w.request({ cmd: 'stop' }, 'stats', 30_000)));
  await Promise.all(active.map((w) => w.waitFor('done', 60_000)));
  return { stats, failures };
}

/**
 * Waits until the server's socket count satisfies `socketsOk` and its RSS moved less than
 * STEADY_BYTES between 250 ms samples for `steadyS`, or `maxS` ran out. A gateway's RSS may still
 * drop seconds after a burst (a full GC that V8 starts once allocation stops, returning pages).
 */
async function settle(pid, socketsOk, maxS, steadyS) {
  const STEADY_BYTES = 64 * 1024;
  const t0 = performance.now();
  let last = rssBytes(pid);
  let steadySamples = 0;
  while (performance.now() - t0 < maxS * 1000) {
    await sleep(250);
    const rss = rssBytes(pid);
    const quiet = socketsOk(socketCount(pid)) && Math.abs(rss - last) < STEADY_BYTES;
    steadySamples = quiet ? steadySamples + 1 : 0;
    last = rss;
    if (steadySamples * 0.25 >= steadyS) return { seconds: (performance.now() - t0) / 1000, steady: true };
  }
  return { seconds: (performance.now() - t0) / 1000, steady: false };
}

// --- profiling -------------------------------------------------------------------------------

/**
 * One server (a gateway, or the bare echo for comparison) under the throughput load, with
 * --cpu-prof (whole process life), or with alloc-probe.mjs sampling what it allocates during the
 * measured window.
 */
async function profileServer({ alloc, bare, redis, sink, gatewayMain }) {
  const profDir = path.join(outDir, alloc ? 'allocprofile' : 'cpuprofile');
  mkdirSync(profDir, { recursive: true });
  const allocFile = path.join(profDir, 'window.heapprofile');
  const nodeArgs = alloc ? ['--import', path.join(root, 'scripts/bench/lib/alloc-probe.mjs')] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
  const env = alloc ? { WSGW_BENCH_ALLOC_PROFILE: allocFile } : {};
  const kind = bare ? 'bare uWS echo' : `gateway, ${redis ? 'Redis' : 'embedded'}${sink ? ', telemetry on (OTLP)' : ''}`;
  const target = { key: 'profile', label: `${kind}, under ${alloc ? 'the sampling heap profiler' : '--cpu-prof'}`, redis: redis ?? undefined };
  process.stderr.write(`-- ${target.label}\n`);
  const server = bare
    ? await startBare(nodeArgs, env)
    : await startGateway(gatewayMain, 'profile', { ...gatewayEnv({ redis: redis ?? undefined, otlp: sink?.url }), ...env }, nodeArgs);
  // The probe starts sampling at the first SIGUSR2 and writes the profile at the second.
  if (alloc) target.onWindow = () => server.child.kill('SIGUSR2');
  let throughput;
  try {
    throughput = await runScenario('throughput', server, target);
    process.stderr.write(`   throughput ${summary('throughput', throughput)}\n`);
    if (alloc) {
      for (let i = 0; i < 100 && !existsSync(allocFile); i++) await sleep(100);
    }
  } finally {
    await stopProcess(server.child, 15_000);
  }
  const base = { label: target.label, throughput };
  if (alloc) {
    if (!existsSync(allocFile)) return { ...base, error: 'the allocation probe wrote no profile' };
    const sites = allocationSites(JSON.parse(readFileSync(allocFile, 'utf8')));
    return { ...base, file: allocFile, allocation: formatAllocation(sites, throughput.accepted, 'message', { top: 30 }) };
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return { ...base, error: 'no .cpuprofile written (did the server exit cleanly on SIGTERM?)' };
  const profile = JSON.parse(readFileSync(path.join(profDir, file), 'utf8'));
  return { ...base, file: path.join(profDir, file), top: topFunctions(profile, 25) };
}

// --- workers ---------------------------------------------------------------------------------

function startWorker(index) {
  const proc = track(fork(path.join(root, 'scripts/bench/loadgen.mjs'), [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const waiters = [];
  const early = []; // events that arrived before anyone waited for them
  const dispatch = (msg) => {
    const i = waiters.findIndex((w) => w.ev === msg.ev || msg.ev === 'error');
    if (i < 0) return false;
    const [w] = waiters.splice(i, 1);
    if (msg.ev === 'error') w.reject(new Error(`worker ${index}: ${msg.message}`));
    else w.resolve(msg);
    return true;
  };
  proc.on('message', (msg) => {
    if (msg.ev === 'error') process.stderr.write(`worker ${index}: ${msg.message}\n`);
    if (!dispatch(msg)) early.push(msg);
  });
  proc.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`worker ${index} exited (${code})`));
  });
  const waitFor = (ev, timeoutMs) =>
    new Promise((resolve, reject) => {
      const waiter = { ev, resolve, reject };
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        reject(new Error(`worker ${index}: no ${ev} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiter.resolve = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      waiter.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      waiters.push(waiter);
      const i = early.findIndex((m) => m.ev === ev || m.ev === 'error');
      if (i >= 0) dispatch(early.splice(i, 1)[0]);
    });
  return {
    proc,
    waitFor,
    request(msg, ev, timeoutMs) {
      const p = waitFor(ev, timeoutMs);
      proc.send(msg);
      return p;
    },
  };
}

function mergeStats(stats) {
  const merged = { ok: 0, sent: 0, upgrades: 0, errors: {}, closes: {}, rejected: {}, cpuUs: 0, hists: [], failureSample: undefined };
  for (const s of stats) {
    merged.ok += s.ok;
    merged.sent += s.sent;
    merged.upgrades += s.upgrades;
    merged.cpuUs += s.cpuUs;
    merged.hists.push(s.hist);
    for (const key of ['errors', 'closes', 'rejected']) {
      for (const [k, v] of Object.entries(s[key])) merged[key][k] = (merged[key][k] ?? 0) + v;
    }
    merged.failureSample ??= s.failures?.sample;
  }
  return merged;
}

// --- helpers ---------------------------------------------------------------------------------

/**
 * Round trips per unit (message, upgrade): the share of commands that clients sent (not run
 * inside scripts), from the MONITOR sample, applied to the window's commandstats total.
 */
function roundTrips(m, units) {
  if (!m.monitor || !units) return { perUnit: null, byCommand: null };
  const top = sumCalls(m.monitor.topLevel, /.*/);
  const all = top + sumCalls(m.monitor.inScripts, /.*/);
  if (all === 0) return { perUnit: null, byCommand: null };
  const perUnit = sumCalls(m.redisCalls, /.*/) / units;
  const byCommand = Object.fromEntries(
    Object.entries(m.monitor.topLevel)
      .sort((x, y) => y[1] - x[1])
      .map(([cmd, n]) => [cmd, round((perUnit * n) / all, 4)]),
  );
  return { perUnit: round((perUnit * top) / all, 4), byCommand };
}

function sumCalls(calls, re) {
  let n = 0;
  for (const [cmd, c] of Object.entries(calls)) if (re.test(cmd)) n += c;
  return n;
}

function msOrNull(us) {
  return us === null ? null : round(us / 1000, 3);
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function fmt(x, digits = 0) {
  return x === null || x === undefined ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: digits });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function gitCommit(dir) {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir }).toString().trim();
  } catch {
    return 'unknown';
  }
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const k = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const v = eq < 0 ? undefined : a.slice(eq + 1);
    if (v !== undefined) out[k] = v;
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) out[k] = argv[++i];
    else out[k] = true;
  }
  return out;
}
