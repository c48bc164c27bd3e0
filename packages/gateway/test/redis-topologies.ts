import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { findRedis, startRedisCluster } from '@wsgw/testkit';

/** A Redis the integration suite runs against: one server, or a local 3-master cluster. */
export interface Topology {
  url: string;
  /** A client for assertions (a Cluster client on the cluster). */
  admin: Redis | Cluster;
  /** INFO commandstats calls per command, summed over every master. */
  commandStats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export const topologies: Array<{ name: string; start: () => Promise<Topology> }> = [
  {
    name: 'single Redis',
    start: async () => {
      const redis = await findRedis();
      const admin = redis.admin();
      return { url: redis.url, admin, commandStats: () => stats([admin]), stop: () => redis.stop() };
    },
  },
  {
    name: 'Redis Cluster (3 masters)',
    start: async () => {
      const cluster = await startRedisCluster(3);
      const admin = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] as number }]);
      admin.on('error', () => {});
      const nodes = cluster.ports.map((p) => cluster.nodeAdmin(p));
      return {
        url: cluster.url,
        admin,
        commandStats: () => stats(nodes),
        stop: async () => {
          admin.disconnect();
          await cluster.stop();
        },
      };
    },
  },
];

async function stats(nodes: Redis[]): Promise<Record<string, number>> {
  const calls: Record<string, number> = {};
  for (const node of nodes) {
    const info = await node.info('commandstats');
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      calls[m[1] as string] = (calls[m[1] as string] ?? 0) + Number(m[2]);
    }
  }
  return calls;
}

/** The user id the `dev` session validator gives a token (packages/sessions/src/dev.ts). */
export function devUserId(token: string): string {
  return `dev-${createHash('sha256').update(token).digest('hex').slice(0, 16)}`;
}

/** Redis TIME in ms: the one clock every replica's limits use. */
export async function redisNow(admin: Redis | Cluster): Promise<number> {
  const [sec, usec] = await admin.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

/**
 * Unexpired slot leases in a sorted set (members scored by their expiry, ms of Redis TIME), by the
 * clock of the Redis asked. An expired member stays in the set until a script reaps it: ZCARD
 * counts a lease that ran out during an outage as held.
 */
export async function liveSlots(admin: Redis | Cluster, key: string): Promise<number> {
  return admin.zcount(key, `(${await redisNow(admin)}`, '+inf');
}
