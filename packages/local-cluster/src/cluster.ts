import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayNodeOptions } from '@wsgw/gateway/runtime';
import {
  addServer,
  deleteServer,
  haproxyCommand,
  renderHaproxyConfig,
  serverStats,
  type ServerStat,
} from './haproxy.js';
import { freePort, httpStatus, pollUntil, spawnManaged, stopManaged, type Exit, type ManagedProcess } from './processes.js';
import { startRedisServer, type LocalRedis } from './redis-server.js';

export interface LocalClusterOptions {
  /** Gateway replicas started with the cluster (more can be added later). Default 3. */
  replicas?: number;
  /** Environment for every replica, on top of the cluster's own (HOST, PORT, REDIS_URL, ...). */
  env?: Record<string, string>;
  /** Use this Redis instead of starting a redis-server. */
  redisUrl?: string;
  /** REDIS_KEY_PREFIX; default a fresh random one, so runs sharing a Redis never meet. */
  keyPrefix?: string;
  /** Port HAProxy listens on (127.0.0.1); default a free one. */
  lbPort?: number;
  /** Where each process writes its log; default a new temporary folder. */
  logDir?: string;
  /**
   * Keep the temporary log folder after `stop` (the default removes a folder it created itself,
   * unless WSGW_KEEP_CLUSTER_LOGS is set, so test runs leave nothing behind).
   */
  keepLogs?: boolean;
  /** The repository root (to find packages/gateway/dist/main.js and infra/haproxy/haproxy.cfg). */
  repoRoot?: string;
  /** How long a replica may take to become ready. Default 60 s (two cores shared by many). */
  readyTimeoutMs?: number;
}

export interface ReplicaInfo {
  name: string;
  port: number;
  pid: number;
  /** REPLICA_ID of the current process: a restart is a new replica id on the same port. */
  replicaId: string;
  httpUrl: string;
}

interface Replica {
  name: string;
  port: number;
  generation: number;
  replicaId: string;
  process: ManagedProcess | undefined;
  /** False for replicas removed from the load balancer. */
  inLoadBalancer: boolean;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The address HAProxy connects to the replicas from (they listen on loopback). */
export const LOAD_BALANCER_SOURCE = '127.0.0.1';

/** Finds the repository root from this file (src/ under vitest, dist/ when built). */
export function findRepoRoot(): string {
  let dir = here;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'infra', 'haproxy', 'haproxy.cfg')) && existsSync(join(dir, 'packages'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('local-cluster: cannot find the repository root (infra/haproxy/haproxy.cfg)');
}

/**
 * The production topology on loopback, from installed binaries: one redis-server, N gateway
 * processes (`node packages/gateway/dist/main.js`, each its own PORT, one REDIS_URL) and HAProxy
 * in front running infra/haproxy/haproxy.cfg. Every process is a child of this one and is
 * stopped by its PID.
 */
export class LocalCluster {
  private readonly replicasByName = new Map<string, Replica>();
  private haproxy: ManagedProcess | undefined;
  /** A cluster that failed to start keeps its logs: the error names them. */
  private keepLogsAfterFailure = false;
  private nextIndex = 1;
  private stopped = false;

  private constructor(
    private readonly options: Required<Pick<LocalClusterOptions, 'readyTimeoutMs'>> & LocalClusterOptions,
    readonly repoRoot: string,
    readonly logDir: string,
    readonly keyPrefix: string,
    readonly redisUrl: string,
    private readonly redis: LocalRedis | undefined,
    readonly lbPort: number,
    readonly adminSocket: string,
  ) {}

  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const repoRoot = options.repoRoot ?? findRepoRoot();
    const mainJs = join(repoRoot, 'packages', 'gateway', 'dist', 'main.js');
    if (!existsSync(mainJs)) throw new Error(`local-cluster: ${mainJs} is missing: run \`npm run build\` first`);
    const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), 'wsgw-local-cluster-'));
    const keyPrefix = options.keyPrefix ?? `wsgw-lc-${randomBytes(4).toString('hex')}:`;
    const redis = options.redisUrl ? undefined : await startRedisServer({ logDir, cwd: repoRoot });
    const redisUrl = options.redisUrl ?? (redis as LocalRedis).url;
    const lbPort = options.lbPort ?? (await freePort());
    const cluster = new LocalCluster(
      { readyTimeoutMs: 60_000, ...options },
      repoRoot,
      logDir,
      keyPrefix,
      redisUrl,
      redis,
      lbPort,
      join(logDir, 'haproxy-admin.sock'),
    );
    try {
      const count = options.replicas ?? 3;
      const names = Array.from({ length: count }, () => cluster.newReplicaName());
      for (const name of names) cluster.replicasByName.set(name, { name, port: await freePort(), generation: 0, replicaId: '', process: undefined, inLoadBalancer: true });
      // Replicas start in parallel: each takes a second or so of CPU on a busy machine.
      await Promise.all(names.map((name) => cluster.launch(cluster.replica(name))));
      await cluster.startHaproxy();
      for (const name of names) await cluster.waitForServer(name, 'UP');
    } catch (err) {
      cluster.keepLogsAfterFailure = true;
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** `ws://127.0.0.1:{lb}{path}/agent?session_token=...` through HAProxy. */
  wsUrl(token: string, path = '/api/ws'): string {
    return `ws://127.0.0.1:${this.lbPort}${path}/agent?session_token=${encodeURIComponent(token)}`;
  }

  httpUrl(path: string): string {
    return `http://127.0.0.1:${this.lbPort}${path}`;
  }

  /** Replicas whose process runs now. */
  replicas(): ReplicaInfo[] {
    return [...this.replicasByName.values()].filter((r) => r.process?.running()).map((r) => this.info(r));
  }

  /** Every replica name known to the load balancer, running or not. */
  replicaNames(): string[] {
    return [...this.replicasByName.values()].filter((r) => r.inLoadBalancer).map((r) => r.name);
  }

  /** Scale out: a new replica process, added to HAProxy at run time; resolves once it is in rotation. */
  async addReplica(): Promise<ReplicaInfo> {
    const name = this.newReplicaName();
    const replica: Replica = { name, port: await freePort(), generation: 0, replicaId: '', process: undefined, inLoadBalancer: true };
    this.replicasByName.set(name, replica);
    await this.launch(replica);
    await addServer(this.adminSocket, { name, address: `127.0.0.1:${replica.port}` });
    await this.waitForServer(name, 'UP');
    return this.info(replica);
  }

  /**
   * Sends `signal` to a replica and waits for it to exit. It stays in HAProxy's list (health
   * checks take it out), as a pod being restarted stays behind its Service.
   */
  async stopReplica(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    const replica = this.replica(name);
    if (!replica.process) throw new Error(`local-cluster: ${name} is not running`);
    return stopManaged(replica.process, signal, 30_000);
  }

  /** Starts a stopped replica again on its port (a new process, a new REPLICA_ID) and waits until HAProxy sends it traffic. */
  async startReplica(name: string): Promise<ReplicaInfo> {
    const replica = this.replica(name);
    if (replica.process?.running()) throw new Error(`local-cluster: ${name} is already running`);
    await this.launch(replica);
    await this.waitForServer(name, 'UP');
    return this.info(replica);
  }

  /** Scale in: SIGTERM (the replica drains its sockets with 1001), wait for the exit, then delete it from HAProxy. */
  async removeReplica(name: string): Promise<Exit> {
    const exit = await this.stopReplica(name, 'SIGTERM');
    const replica = this.replica(name);
    replica.inLoadBalancer = false;
    await pollUntil(`${name} has no sessions left in haproxy`, async () => (await this.serverStats()).get(name)?.current === 0, {
      timeoutMs: 10_000,
    });
    await deleteServer(this.adminSocket, name);
    this.replicasByName.delete(name);
    return exit;
  }

  async serverStats(): Promise<Map<string, ServerStat>> {
    return serverStats(this.adminSocket);
  }

  /** Waits until HAProxy's health checks report `status` (UP or DOWN) for a replica. */
  async waitForServer(name: string, status: 'UP' | 'DOWN', timeoutMs = 20_000): Promise<void> {
    await pollUntil(
      `haproxy to see ${name} ${status}`,
      async () => (await this.serverStats()).get(name)?.status === status,
      { timeoutMs, stepMs: 100 },
    );
  }

  /** Stops everything this cluster started: replicas (SIGTERM, drained), then HAProxy, then Redis. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.replicasByName.values()].map((r) => (r.process ? stopManaged(r.process, 'SIGTERM', 30_000) : undefined)));
    if (this.haproxy) await stopManaged(this.haproxy, 'SIGTERM', 5000);
    await this.redis?.stop();
    if (!this.options.logDir && !this.options.keepLogs && !this.keepLogsAfterFailure && !process.env.WSGW_KEEP_CLUSTER_LOGS) {
      rmSync(this.logDir, { recursive: true, force: true });
    }
  }

  /** Where a replica's stdout/stderr goes (pino JSON lines). */
  logFile(name: string, generation = this.replica(name).generation): string {
    return join(this.logDir, `${name}.${generation}.log`);
  }

  private async startHaproxy(): Promise<void> {
    const template = readFileSync(join(this.repoRoot, 'infra', 'haproxy', 'haproxy.cfg'), 'utf8');
    const config = renderHaproxyConfig(template, {
      bind: `127.0.0.1:${this.lbPort}`,
      adminSocket: this.adminSocket,
      servers: [...this.replicasByName.values()].map((r) => ({ name: r.name, address: `127.0.0.1:${r.port}` })),
    });
    const configFile = join(this.logDir, 'haproxy.cfg');
    writeFileSync(configFile, config);
    // -n: the committed maxconn needs more file descriptors than a shell's default limit allows.
    const child = spawnManaged('haproxy', 'haproxy', ['-db', '-n', '4096', '-f', configFile], {
      cwd: this.repoRoot,
      env: process.env,
      logFile: join(this.logDir, 'haproxy.log'),
    });
    this.haproxy = child;
    await pollUntil(
      'haproxy admin socket',
      async () => {
        try {
          return (await haproxyCommand(this.adminSocket, 'show info', 1000)).includes('Name: HAProxy');
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, alive: () => child.running() },
    ).catch((err: Error) => {
      throw new Error(`${err.message} (log: ${join(this.logDir, 'haproxy.log')})`);
    });
  }

  private async launch(replica: Replica): Promise<void> {
    replica.generation++;
    replica.replicaId = `${replica.name}-g${replica.generation}-${randomBytes(2).toString('hex')}`;
    const logFile = this.logFile(replica.name);
    const env: Record<string, string | undefined> = {
      ...process.env,
      // The V8 options the image ships with, unless this shell sets its own.
      NODE_OPTIONS: gatewayNodeOptions(process.env),
      OTEL_SDK_DISABLED: 'true',
      LOG_LEVEL: 'info',
      // HAProxy reaches the replicas from 127.0.0.1 and says who its client was in X-Forwarded-For
      // (`option forwardfor`); without this every client would share HAProxy's address, and one
      // client's bad tokens would get every client 429 `too_many_upgrades`. On loopback any local
      // process is that peer too: fine for a local cluster, never for a shared host.
      WEBSOCKET_TRUSTED_PROXIES: LOAD_BALANCER_SOURCE,
      ...this.options.env,
      HOST: '127.0.0.1',
      PORT: String(replica.port),
      REDIS_URL: this.redisUrl,
      REDIS_KEY_PREFIX: this.keyPrefix,
      REPLICA_ID: replica.replicaId,
    };
    const child = spawnManaged(replica.name, process.execPath, ['packages/gateway/dist/main.js'], {
      cwd: this.repoRoot,
      env,
      logFile,
    });
    replica.process = child;
    await pollUntil(
      `${replica.name} /readyz`,
      async () => (await httpStatus(`http://127.0.0.1:${replica.port}/readyz`)) === 200,
      { timeoutMs: this.options.readyTimeoutMs, alive: () => child.running() },
    ).catch((err: Error) => {
      throw new Error(`${err.message} (log: ${logFile})\n${tail(logFile)}`);
    });
  }

  private replica(name: string): Replica {
    const replica = this.replicasByName.get(name);
    if (!replica) throw new Error(`local-cluster: no replica named ${name}`);
    return replica;
  }

  private newReplicaName(): string {
    return `replica-${this.nextIndex++}`;
  }

  private info(r: Replica): ReplicaInfo {
    return { name: r.name, port: r.port, pid: r.process?.pid ?? 0, replicaId: r.replicaId, httpUrl: `http://127.0.0.1:${r.port}` };
  }
}

/** The last lines of a log file, for error messages (a failed start should say why). */
function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
