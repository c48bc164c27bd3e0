import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A single Redis or a Redis Cluster: both run the same scripts (every script's keys share a slot). */
export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /** A command with no answer by then fails, so every decision comes back in bounded time. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** CLIENT SETNAME, to tell replicas apart in CLIENT LIST. */
  connectionName?: string;
  /**
   * More TLS options for a `rediss://` URL (ignored for `redis://`), for programs that build their
   * own client: `ca` (replaces Node's trusted CAs), `cert`/`key` for a client certificate. The
   * gateway and agent workers take none: they trust a private CA through NODE_EXTRA_CA_CERTS.
   */
  tls?: ConnectionOptions;
}

export interface RedisTarget {
  cluster: boolean;
  /** Seed nodes for a cluster; the one server otherwise. */
  nodes: Array<{ host: string; port: number }>;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number;
}

/**
 * Commands that batch themselves (one call per event-loop turn) and so gain nothing from ioredis'
 * auto-pipeline: it would only wrap each call in a pipeline of one, an object of ~1 KB kept for
 * the round trip, and write it a tick later. (Auto-pipelining is off on Cluster anyway.)
 */
export function skipAutoPipeline(client: RedisClient, ...commands: string[]): void {
  const { options } = client;
  // A new array: the default one is shared by every client ioredis builds.
  options.autoPipeliningIgnoredCommands = [...(options.autoPipeliningIgnoredCommands ?? []), ...commands];
}

/**
 * Reads REDIS_URL. A single Redis: `redis://[user:pass@]host:port[/db]` (or `rediss://` for TLS).
 * A Redis Cluster: the same URL naming any one node, with `?cluster=1`; more seed nodes (used when
 * the first is down at start) go in `&nodes=host2:port2,host3:port3`. The rest of the cluster is
 * discovered from the seeds.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('REDIS_URL must start with redis:// or rediss://');
  const flag = u.searchParams.get('cluster');
  const cluster = flag !== null && flag !== '0' && flag !== 'false';
  // An IPv6 address keeps its brackets in URL.hostname (`[::1]`); ioredis wants it bare.
  const nodes = [{ host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(u.port || 6379) }];
  for (const extra of (u.searchParams.get('nodes') ?? '').split(',').filter((s) => s !== '')) {
    const [host, port] = extra.split(':');
    nodes.push({ host: host || '127.0.0.1', port: Number(port || 6379) });
  }
  const dbPath = u.pathname.replace(/^\//, '');
  return {
    cluster,
    nodes,
    tls: u.protocol === 'rediss:',
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: dbPath === '' ? 0 : Number(dbPath),
  };
}

/**
 * The one way the gateway (and agent workers) build a Redis client. No offline queue and a command
 * timeout: while Redis is down or paused a command fails fast instead of waiting, so callers can
 * fall back or refuse in bounded time. Connects lazily: call `connectRedis` to make the first attempt.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  const commandTimeout = options.commandTimeoutMs ?? 1000;
  const common: RedisOptions = {
    commandTimeout,
    // A command timeout only fails the command; the link stays. One that went silent for good
    // (half-open TCP: the peer vanished without a reset, a NAT entry dropped) would be kept until
    // the kernel gives up, ~15 min, with every command on it timing out. No byte back for this
    // long while commands wait: the link is dropped and a new one made.
    socketTimeout: commandTimeout + 2000,
    // After a failover that demoted this node (the address now leads elsewhere, this link still to
    // the old master), every write is refused with READONLY: reconnect instead of failing for ever.
    // `true`, not 2: the failed command is not resent behind its caller's back.
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    connectTimeout: options.connectTimeoutMs ?? 1000,
    // Commands in flight when the link drops fail at once instead of being retried later.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    lazyConnect: true,
    username: target.username,
    password: target.password,
    connectionName: options.connectionName,
    ...(target.tls ? { tls: target.cluster ? clusterTls(target, options.tls) : { ...options.tls } } : {}),
  };
  // Reconnect quickly and forever: shared limits apply again within seconds of Redis answering.
  const retry = (times: number) => Math.min(100 * times, 1000);
  const client = target.cluster ? buildCluster(target, common, retry, options) : buildSingle(target, common, retry);
  // Connection errors surface as failed commands (and `close` events) to whoever uses the client;
  // without a listener ioredis would also print each one to stderr while Redis is down.
  client.on('error', () => {});
  const first = target.nodes[0] as { host: string; port: number };
  probes.set(client, { ...common, host: first.host, port: first.port, ...(target.cluster ? {} : { db: target.db }) });
  return client;
}

/** How to reach the first node REDIS_URL names, with every setting of the client built for it. */
const probes = new WeakMap<RedisClient, RedisOptions>();

/**
 * Why a client from `createRedisClient` cannot connect: the error of one fresh connection to the
 * first node REDIS_URL names, made with the client's own settings (TLS, user, password); undefined
 * if that one connects. A Redis Cluster client cannot say it itself: ioredis reports only "Failed
 * to refresh slots cache" ("Connection is closed."), the TLS handshake's error (a certificate it
 * refused) being dropped with the connection that met it. Never rejects; at most `timeoutMs`.
 */
export async function connectionProblem(client: RedisClient, timeoutMs = 2000): Promise<string | undefined> {
  const options = probes.get(client);
  if (!options) return undefined;
  const probe = new Redis({ ...options, lazyConnect: true, retryStrategy: () => null, connectTimeout: timeoutMs, connectionName: undefined });
  let problem: string | undefined;
  probe.on('error', (err: Error) => (problem ??= err.message));
  try {
    const connected = await connectRedis(probe, timeoutMs);
    return connected ? undefined : (problem ?? `no answer within ${timeoutMs} ms`);
  } finally {
    probe.disconnect();
  }
}

function buildCluster(
  target: RedisTarget,
  common: RedisOptions,
  retry: (times: number) => number,
  options: RedisClientOptions,
): Cluster {
  const clusterOptions: ClusterOptions = {
    enableOfflineQueue: false,
    lazyConnect: true,
    // Off on Cluster: ioredis' auto-pipeline cannot place scripts whose key count is an argument
    // (the batched ones) and refuses the pipeline; each call goes to its slot's node instead.
    enableAutoPipelining: false,
    clusterRetryStrategy: retry,
    slotsRefreshTimeout: options.connectTimeoutMs ?? 1000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    maxRedirections: 4,
    redisOptions: common,
    // With TLS a seed is dialled by the name REDIS_URL gives, the name its certificate is for;
    // by default ioredis resolved it to an address first and checked the certificate against that.
    ...(target.tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  };
  return new Cluster(target.nodes, clusterOptions);
}

/**
 * TLS for the nodes of a Redis Cluster. A node is dialled at the address the cluster announces
 * (CLUSTER SLOTS: its IP address unless it is set to announce a hostname), not at a name from
 * REDIS_URL, and its certificate is usually issued for the cluster's name, not for each node's
 * address. So a node's certificate is accepted (after the usual chain check against the trusted
 * CAs) if it is valid for the address dialled or for a hostname REDIS_URL names: that is the name
 * the operator vouched for, and the addresses come from nodes that already proved they are it.
 */
function clusterTls(target: RedisTarget, extra: ConnectionOptions | undefined): ConnectionOptions {
  const names = [...new Set(target.nodes.map((node) => node.host).filter((host) => isIP(host) === 0))];
  return {
    checkServerIdentity: (host, cert) => {
      const error = checkServerIdentity(host, cert);
      if (error === undefined) return undefined;
      return names.some((name) => checkServerIdentity(name, cert) === undefined) ? undefined : error;
    },
    ...extra,
  };
}

function buildSingle(target: RedisTarget, common: RedisOptions, retry: (times: number) => number): Redis {
  const first = target.nodes[0] as { host: string; port: number };
  return new Redis({
    ...common,
    host: first.host,
    port: first.port,
    db: target.db,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy: retry,
  });
}

/** Whether the URL names a Redis Cluster (`?cluster=1`). */
export function isClusterUrl(url: string): boolean {
  return parseRedisUrl(url).cluster;
}

/**
 * Makes the first connection attempt; resolves true once connected, false if it failed or took
 * longer than `timeoutMs` (the client keeps trying in the background). Never rejects.
 */
export async function connectRedis(client: RedisClient, timeoutMs = 5000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = client.connect().then(
    () => true,
    () => false,
  );
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([attempt, late]);
  } finally {
    clearTimeout(timer);
  }
}
