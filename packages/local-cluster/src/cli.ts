#!/usr/bin/env node
// scripts/local-cluster: start the topology in the foreground, or stop one started elsewhere.
//
//   scripts/local-cluster start [--replicas 3] [--port 8080] [--redis-url redis://...] [--env K=V]...
//   scripts/local-cluster stop
//
// `start` prints one JSON line (load balancer URL, Redis URL, replicas, log folder), writes it to
// the state file too, and runs until SIGINT/SIGTERM, when it drains and stops every process it
// started. `stop` signals the `start` process named in the state file, by its PID.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalCluster } from './cluster.js';

const stateFile = process.env.WSGW_LOCAL_CLUSTER_STATE ?? join(tmpdir(), 'wsgw-local-cluster.json');

/** The PID of the `start` process the state file names, if that process still runs this CLI. */
function runningCluster(): number | undefined {
  let pid: number;
  try {
    pid = (JSON.parse(readFileSync(stateFile, 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
  try {
    // A PID is reused once its process is gone: only one that still runs this CLI counts.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('local-cluster') ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function start(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      replicas: { type: 'string', default: '3' },
      port: { type: 'string' },
      'redis-url': { type: 'string' },
      'key-prefix': { type: 'string' },
      env: { type: 'string', multiple: true },
    },
  });
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--env takes NAME=VALUE, got ${pair}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error('--replicas must be a whole number >= 1');
  const other = runningCluster();
  if (other !== undefined) throw new Error(`a cluster is already running (pid ${other}, ${stateFile}); stop it first`);
  // A signal while starting stops what has started once it is up, instead of orphaning it.
  let stopRequested = false;
  let stop = (): void => {
    stopRequested = true;
  };
  process.on('SIGINT', () => stop());
  process.on('SIGTERM', () => stop());
  const cluster = await LocalCluster.start({
    replicas,
    env,
    keepLogs: true,
    ...(values.port ? { lbPort: Number(values.port) } : {}),
    ...(values['redis-url'] ? { redisUrl: values['redis-url'] } : {}),
    ...(values['key-prefix'] ? { keyPrefix: values['key-prefix'] } : {}),
  });
  const state = {
    pid: process.pid,
    lb: `ws://127.0.0.1:${cluster.lbPort}`,
    http: cluster.httpUrl(''),
    redisUrl: cluster.redisUrl,
    keyPrefix: cluster.keyPrefix,
    replicas: cluster.replicas(),
    haproxyAdminSocket: cluster.adminSocket,
    logDir: cluster.logDir,
  };
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(state)}\n`);
  let stopping = false;
  stop = () => {
    if (stopping) return;
    stopping = true;
    cluster
      .stop()
      .then(() => {
        if (runningCluster() === process.pid) rmSync(stateFile, { force: true });
        process.exit(0);
      })
      .catch((err: unknown) => {
        process.stderr.write(`local-cluster: stop failed: ${String(err)}\n`);
        process.exit(1);
      });
  };
  if (stopRequested) stop();
}

async function stop(): Promise<void> {
  if (!existsSync(stateFile)) {
    process.stderr.write(`local-cluster: no running cluster (${stateFile} not found)\n`);
    process.exit(1);
  }
  const pid = runningCluster();
  if (pid === undefined) {
    // Its process died (killed, machine restarted) without removing the file.
    rmSync(stateFile, { force: true });
    process.stderr.write(`local-cluster: no running cluster (stale ${stateFile} removed)\n`);
    return;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`local-cluster: process ${pid} still running after 60 s`);
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'start') await start(rest);
  else if (command === 'stop') await stop();
  else {
    process.stderr.write('usage: local-cluster start [--replicas N] [--port P] [--redis-url URL] [--key-prefix P] [--env K=V]... | stop\n');
    process.exit(2);
  }
} catch (err) {
  process.stderr.write(`local-cluster: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
