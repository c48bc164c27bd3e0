import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerProcess, type RedisServerTls } from './redis.js';

/** A local Redis Cluster started from redis-server: masters, and optionally one replica each. */
export interface RedisClusterProcess {
  /**
   * REDIS_URL naming the cluster (docs/REDIS.md: `?cluster=1&nodes=...`), every node a seed; with
   * `tls`, `rediss://localhost:...` (the name the nodes' certificate is for).
   */
  url: string;
  /** Every node: the masters as created, then their replicas (roles change with a failover). */
  ports: number[];
  /** A client to one node (for INFO etc.). */
  nodeAdmin(port: number): Redis;
  /**
   * The redis-server of one node, to kill or restart. Its nodes.conf survives a kill, so a
   * restarted node rejoins the cluster (with its hash slots, or as a replica if it was failed
   * over meanwhile), but empty (nothing is saved).
   */
  node(port: number): RedisServerProcess;
  /**
   * Until every running node says `cluster_state:ok` and every running replica is in sync with
   * its master (after a restart or a failover, say).
   */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** The master serving `key`'s hash slot now, as the running nodes see it (CLUSTER KEYSLOT, CLUSTER SLOTS). */
  masterOf(key: string): Promise<number>;
  /** The running replicas attached to a master. */
  replicasOf(masterPort: number): Promise<number[]>;
  /**
   * Moves a master's hash slots to its replica and resolves once every running node names the
   * replica as their master and says `cluster_state:ok` (a graceful failover also waits for the
   * old master to be in sync as the new replica).
   */
  failover(masterPort: number, options: FailoverOptions): Promise<FailoverResult>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  /** Replicas per master (`redis-cli --cluster create --cluster-replicas`): 0 (default) or more. */
  replicasPerMaster?: number;
  /**
   * `cluster-node-timeout` (ms, default 2000): how long a master may be silent before the others
   * fail it, hence about how long a killed master's hash slots wait for its replica.
   */
  nodeTimeoutMs?: number;
  /**
   * Every node TLS only, on its client port and its cluster bus (`--tls-cluster yes`), with this
   * certificate; the nodes announce their IP address (127.0.0.1), as Redis does by default.
   */
  tls?: RedisServerTls;
}

export interface FailoverOptions {
  /**
   * `graceful`: `CLUSTER FAILOVER` sent to the replica, which catches up with its master before
   * taking over (nothing acknowledged is lost). `kill`: the master gets SIGKILL and the cluster
   * promotes its replica by itself once the master is failed (cluster-node-timeout and an
   * election later).
   */
  kind: 'graceful' | 'kill';
  /**
   * `kill` only. Runs while the master still answers but its replica no longer receives its
   * writes (the replica stopped with SIGSTOP and its replication link closed by the master); the
   * master dies right after. Whatever is written in here is acknowledged and then lost, as with
   * asynchronous replication when a master dies before its last writes reach the replica.
   */
  unreplicated?: () => Promise<void>;
  /** Until the replica is master everywhere (default 30 s). */
  timeoutMs?: number;
}

export interface FailoverResult {
  /** The replica that now serves the failed-over master's hash slots. */
  promoted: number;
}

/**
 * Starts `masters` cluster nodes (and `replicasPerMaster` replicas each), joins them with
 * `redis-cli --cluster create`, and waits until every node says `cluster_state:ok` and every
 * replica is in sync. `startRedisCluster(3)` is three masters, no replicas.
 */
export async function startRedisCluster(options: number | RedisClusterOptions = 3): Promise<RedisClusterProcess> {
  const { masters = 3, replicasPerMaster = 0, nodeTimeoutMs, tls } = typeof options === 'number' ? { masters: options } : options;
  const servers: RedisServerProcess[] = [];
  for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
    // nodes.conf lands in the server's own temporary --dir.
    servers.push(
      await startRedisServer({
        clusterNode: true,
        ...(nodeTimeoutMs === undefined ? {} : { clusterNodeTimeoutMs: nodeTimeoutMs }),
        ...(tls ? { tls } : {}),
      }),
    );
  }
  const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
  const created = spawnSync(
    'redis-cli',
    [
      ...(tls ? ['--tls', '--cacert', tls.caFile, '--sni', 'localhost'] : []),
      '--cluster',
      'create',
      ...addresses,
      '--cluster-replicas',
      String(replicasPerMaster),
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  );
  if (created.status !== 0) {
    await Promise.all(servers.map((s) => s.stop()));
    throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  }

  const node = (port: number) => {
    const server = servers.find((s) => s.port === port);
    if (!server) throw new Error(`no cluster node on port ${port}`);
    return server;
  };
  // One bounded client per node for the cluster's own checks: a dead or stopped node fails a
  // check within a second instead of holding it.
  const probes = new Map<number, Redis>();
  const probe = (port: number): Redis => {
    let client = probes.get(port);
    if (!client) {
      client = new Redis({ ...node(port).connection, commandTimeout: 1000, maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      probes.set(port, client);
    }
    return client;
  };
  const running = () => servers.filter((s) => s.running);
  const replication = async (port: number) => parseInfo(await probe(port).info('replication'));

  /** Every running node's view, or why it is not settled yet. */
  const unsettled = async (expectReplicas: number | undefined): Promise<string | undefined> => {
    let replicas = 0;
    const views = new Map<number, ClusterNodeView[]>();
    for (const server of running()) {
      const info = await probe(server.port).cluster('INFO').catch(() => '');
      if (!info.includes('cluster_state:ok')) return `node ${server.port} is not cluster_state:ok`;
      views.set(server.port, parseClusterNodes(String(await probe(server.port).cluster('NODES').catch(() => ''))));
      const repl = await replication(server.port).catch(() => undefined);
      if (repl?.['role'] === 'slave') {
        if (repl['master_link_status'] !== 'up' || repl['master_sync_in_progress'] !== '0') {
          return `replica ${server.port} is not in sync with its master`;
        }
        replicas++;
      }
    }
    if (expectReplicas !== undefined && replicas < expectReplicas) return `${replicas} of ${expectReplicas} replicas attached`;
    // Gossip has spread: every running node sees each running node as it sees itself (role and
    // master), not failed. Until then the masters refuse a replica's election (CLUSTER FAILOVER
    // times out doing nothing).
    const selves = new Map([...views].map(([port, view]) => [port, view.find((n) => n.myself)]));
    for (const [port, view] of views) {
      for (const [other, self] of selves) {
        const seen = view.find((n) => n.port === other);
        if (!self || !seen || seen.role !== self.role || seen.master !== self.master || seen.failing) {
          return `node ${port} does not see node ${other} as it is yet`;
        }
      }
    }
    return undefined;
  };
  const settle = async (timeoutMs: number, expectReplicas?: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const why = await unsettled(expectReplicas);
      if (why === undefined) return;
      if (Date.now() > deadline) throw new Error(`local redis cluster not ready within ${timeoutMs} ms: ${why}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    for (const client of probes.values()) client.disconnect();
    probes.clear();
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    // Every node must agree the cluster is up before a client sees a consistent slot map.
    await settle(15_000, masters * replicasPerMaster);
  } catch (err) {
    await stop();
    throw err;
  }

  /** The master port serving `slot` as one running node sees it. */
  const masterSeenBy = async (port: number, slot: number): Promise<number | undefined> => {
    const ranges = await probe(port).cluster('SLOTS');
    return ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1];
  };
  const keySlot = async (key: string) => Number(await probe((running()[0] as RedisServerProcess).port).cluster('KEYSLOT', key));
  const masterOf = async (key: string) => {
    const slot = await keySlot(key);
    const master = await masterSeenBy((running()[0] as RedisServerProcess).port, slot);
    if (master === undefined) throw new Error(`no master serves hash slot ${slot}`);
    return master;
  };
  const replicasOf = async (masterPort: number) => {
    const found: number[] = [];
    for (const server of running()) {
      const repl = await replication(server.port).catch(() => undefined);
      if (repl?.['role'] === 'slave' && Number(repl['master_port']) === masterPort) found.push(server.port);
    }
    return found;
  };

  const failover = async (masterPort: number, options: FailoverOptions): Promise<FailoverResult> => {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const [replicaPort] = await replicasOf(masterPort);
    if (replicaPort === undefined) throw new Error(`master ${masterPort} has no replica to fail over to`);
    const master = node(masterPort);
    const replica = node(replicaPort);
    // One hash slot of the master's stands for all of them: they move together.
    const [range] = (await probe(masterPort).cluster('SLOTS')).filter(([, , owner]) => owner?.[1] === masterPort);
    if (!range) throw new Error(`node ${masterPort} serves no hash slot`);
    const slot = range[0];

    if (options.kind === 'graceful') {
      await probe(replicaPort).cluster('FAILOVER');
    } else if (options.unreplicated) {
      // Stopped first, so it cannot reconnect: the master's writes from now on go nowhere.
      process.kill(replica.pid, 'SIGSTOP');
      try {
        const cut = Number(await probe(masterPort).client('KILL', 'TYPE', 'replica'));
        if (cut < 1) throw new Error(`master ${masterPort} had no replication link to cut`);
        await options.unreplicated();
      } finally {
        await master.kill();
        process.kill(replica.pid, 'SIGCONT');
      }
    } else {
      await master.kill();
    }

    for (;;) {
      const views = await Promise.all(running().map((s) => masterSeenBy(s.port, slot).catch(() => undefined)));
      if (views.every((v) => v === replicaPort) && (await unsettled(undefined)) === undefined) break;
      if (Date.now() > deadline) throw new Error(`replica ${replicaPort} not master of ${masterPort}'s hash slots everywhere within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // After a graceful failover the old master is the new replica; `unsettled` waited for its sync.
    return { promoted: replicaPort };
  };

  const seeds = tls ? servers.map((s) => `localhost:${s.port}`) : addresses;
  return {
    url: `${tls ? 'rediss' : 'redis'}://${seeds[0]}?cluster=1&nodes=${seeds.slice(1).join(',')}`,
    ports: servers.map((s) => s.port),
    nodeAdmin: (port) => node(port).admin(),
    node,
    waitUntilOk: (timeoutMs = 15_000) => settle(timeoutMs),
    masterOf,
    replicasOf,
    failover,
    stop,
  };
}

/** `INFO` text as fields (`role` -> `slave`, ...). */
function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

interface ClusterNodeView {
  port: number;
  myself: boolean;
  role: 'master' | 'slave';
  /** Node id of its master (`-` for a master). */
  master: string;
  /** Flagged `fail` or `fail?` by the viewer. */
  failing: boolean;
}

/** `CLUSTER NODES` lines: `<id> <ip:port@cport> <flags> <master> ...`. */
function parseClusterNodes(text: string): ClusterNodeView[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [, address = '', flags = '', master = '-'] = line.split(' ');
      const flagList = flags.split(',');
      return {
        port: Number(address.split('@')[0]?.split(':').pop()),
        myself: flagList.includes('myself'),
        role: flagList.includes('slave') ? 'slave' : 'master',
        master,
        failing: flagList.includes('fail') || flagList.includes('fail?'),
      };
    });
}
