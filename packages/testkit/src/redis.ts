import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './ports.js';

/** A Redis for tests, however it was found. */
export interface TestRedis {
  url: string;
  /** `env`: REDIS_URL given; `local`: a redis-server we started; `container`: testcontainers. */
  kind: 'env' | 'local' | 'container';
  /** A plain client for assertions and set-up (not the gateway's). */
  admin(): Redis;
  stop(): Promise<void>;
}

const HOW_TO_GET_REDIS =
  'No Redis for the tests: set REDIS_URL, put redis-server (7.x) on PATH (apt-get install redis-server), or run a Docker engine for testcontainers';

/** A key prefix no other test uses: every test's keys are its own. */
export function uniquePrefix(name = 't'): string {
  return `test:${name}:${randomBytes(4).toString('hex')}:`;
}

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * The Redis the integration tests use, in this order: REDIS_URL; else a `redis-server` from PATH
 * on a free port (stopped by `stop`); else a testcontainers Redis when a Docker engine answers;
 * else an error that says how to get one.
 */
export async function findRedis(): Promise<TestRedis> {
  const fromEnv = process.env['REDIS_URL'];
  if (fromEnv) {
    const clients: Redis[] = [];
    return {
      url: fromEnv,
      kind: 'env',
      admin: () => track(clients, new Redis(fromEnv)),
      stop: async () => closeAll(clients),
    };
  }
  if (hasRedisServer()) {
    const server = await startRedisServer();
    return { url: server.url, kind: 'local', admin: () => server.admin(), stop: () => server.stop() };
  }
  const container = await startRedisContainer();
  if (container) return container;
  throw new Error(HOW_TO_GET_REDIS);
}

/** A redis-server process of our own, which tests may stop, pause or restart. */
export interface RedisServerProcess {
  /** `redis://127.0.0.1:{port}`, or with `tls`, `rediss://localhost:{port}` (the name its certificate is for). */
  url: string;
  port: number;
  /** How a plain ioredis client reaches it (host, port, and with `tls` the CA to trust). */
  connection: Pick<RedisOptions, 'host' | 'port' | 'tls'>;
  readonly pid: number;
  /** Whether the process is running (not killed, or restarted since). */
  readonly running: boolean;
  admin(): Redis;
  /** Stops the server (SIGKILL: nothing saved) and keeps the port for `restart`. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** A fixed port; otherwise a free one (and another one if redis-server cannot bind it). */
  port?: number;
  /**
   * A Redis Cluster node: its cluster bus gets a free port of its own (`cluster-port`), rather than
   * redis' default of port + 10000, which can be a port a client connection is using.
   */
  clusterNode?: boolean;
  /** A cluster node's `cluster-node-timeout` (ms); 2000 by default. */
  clusterNodeTimeoutMs?: number;
  /**
   * TLS only (`--port 0 --tls-port {port}`, no client certificates asked for), with this
   * certificate (`createTestCertificates`); a cluster node also speaks TLS on its cluster bus.
   */
  tls?: RedisServerTls;
}

/** A server certificate, its key, and the CA that signed it (PEM files; `ca` is the CA's text). */
export interface RedisServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  ca: string;
}

/** redis-server on 127.0.0.1, nothing saved; a port taken between picking and binding is retried. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const args = options.clusterNode ? await clusterNodeArgs(options.clusterNodeTimeoutMs ?? 2000, options.tls !== undefined) : [];
    try {
      return await startRedisServerOn(port, args, options.tls);
    } catch (err) {
      if (options.port !== undefined || attempt >= 3 || !(err instanceof RedisExitedAtStart)) throw err;
    }
  }
}

async function clusterNodeArgs(nodeTimeoutMs: number, tls: boolean): Promise<string[]> {
  return [
    ...(tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
    '--cluster-enabled',
    'yes',
    '--cluster-port',
    String(await freePort()),
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // A replica's first full sync starts at once, not after redis' default 5 s wait for others.
    '--repl-diskless-sync-delay',
    '0',
  ];
}

class RedisExitedAtStart extends Error {}

async function startRedisServerOn(port: number, args: string[], tls: RedisServerTls | undefined): Promise<RedisServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-redis-'));
  const clients: Redis[] = [];
  let child: ChildProcess | undefined;
  const listen = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile,
       '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  // The certificate names `localhost`: checked against that name whatever address is dialled.
  const connection = { host: '127.0.0.1', port, ...(tls ? { tls: { ca: [tls.ca], servername: 'localhost' } } : {}) };

  const launch = async () => {
    child = spawn(
      ...dieWithParent('redis-server', [
        ...listen,
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...args,
      ]),
      { stdio: 'ignore' },
    );
    registerChild(child);
    await waitForPing(connection, child);
  };
  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    url: tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`,
    port,
    connection,
    get pid() {
      return child?.pid ?? -1;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    admin: () => track(clients, new Redis({ ...connection, maxRetriesPerRequest: 1 })),
    kill,
    restart: launch,
    stop: async () => {
      await closeAll(clients);
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startRedisContainer(): Promise<TestRedis | undefined> {
  try {
    const { GenericContainer, getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
    const url = `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
    const clients: Redis[] = [];
    return {
      url,
      kind: 'container',
      admin: () => track(clients, new Redis(url)),
      stop: async () => {
        await closeAll(clients);
        await container.stop();
      },
    };
  } catch {
    return undefined;
  }
}

/**
 * Until this server answers; fails at once if it exited (say, its port was taken meanwhile), and
 * does not take another process' Redis on that port for it (`process_id` must be the child's).
 */
async function waitForPing(connection: RedisServerProcess['connection'], child: ChildProcess): Promise<void> {
  const { port } = connection;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new RedisExitedAtStart(`redis-server on port ${port} exited at start (${child.exitCode ?? child.signalCode})`);
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
    const probe = new Redis({
      ...connection,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1000,
      commandTimeout: 1000,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      // Someone else's Redis on this port does not count: ours cannot bind it and will exit.
      if ((await probe.info('server')).includes(`process_id:${child.pid}\r\n`)) return;
    } catch {
      // Not up yet.
    } finally {
      probe.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function track(clients: Redis[], client: Redis): Redis {
  client.on('error', () => {});
  clients.push(client);
  return client;
}

async function closeAll(clients: Redis[]): Promise<void> {
  for (const c of clients.splice(0)) c.disconnect();
}

/** Children still running when the test process exits are killed, by PID. */
const children = new Set<ChildProcess>();
let exitHook = false;

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

/**
 * The command line to spawn a test child with, so that it dies with the test process even when
 * that one is killed outright (no exit hook runs then): Linux's parent-death signal, via
 * util-linux `setpriv`, where present. The child keeps its PID (setpriv execs the command).
 */
export function dieWithParent(command: string, args: readonly string[]): [string, string[]] {
  return setpriv ? [setpriv, ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, [...args]];
}

export function registerChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of children) {
        if (c.pid !== undefined) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
}
