import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Cluster, type Redis } from 'ioredis';
import {
  connect,
  open,
  readyStatus,
  spawnGateway,
  startRedisCluster,
  uniquePrefix,
  type GatewayProcess,
  type RedisClusterProcess,
  type RedisServerProcess,
} from '@wsgw/testkit';
import { redisKeys } from '@wsgw/redis';
import { BOUND_MS, fetchPing, lastHealth, outageScenario, RECOVERY_MS, timed, type Outage, type Target } from './redis-outage.js';
import { eventually } from './redis-support.js';
import { devUserId, liveSlots } from './redis-topologies.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * The same on a local 3-master Redis Cluster (issue 3: the suite passes against a real cluster).
 * No proxy here: a cluster announces its nodes' real ports, so the outages act on the nodes.
 */
describe('limits while a Redis Cluster is unavailable', () => {
  let cluster: RedisClusterProcess;
  let admin: Cluster;
  const started: GatewayProcess[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    admin = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] as number }]);
    admin.on('error', () => {});
  });
  afterAll(async () => {
    await Promise.all(started.map((r) => r.stop()));
    admin?.disconnect();
    await cluster?.stop();
  });

  const nodes = () => cluster.ports.map((port) => cluster.node(port));
  /** The master serving the hash slot of every connection slot set (`{slots}`, whatever the prefix). */
  let slotsMaster: RedisServerProcess | undefined;
  const outages: Record<string, Outage> = {
    'every master paused': {
      begin: async () => {
        await Promise.all(nodes().map((n) => n.admin().client('PAUSE', 10_000, 'ALL')));
      },
      end: async () => {
        const over = async () => (await Promise.all(nodes().map(fetchPing))).every((p) => p === 'PONG');
        await eventually(over, 8000, 'pause over');
      },
    },
    'stopped and restarted empty': {
      begin: async () => {
        await Promise.all(nodes().map((n) => n.kill()));
      },
      // Each node keeps its nodes.conf: the cluster forms again with the same hash slots, empty.
      end: async () => {
        await Promise.all(nodes().map((n) => n.restart()));
        await cluster.waitUntilOk(15_000);
      },
    },
    'master of the {slots} hash slot killed (cluster down), then back empty': {
      begin: async () => {
        const dead = cluster.node(await cluster.masterOf('{slots}'));
        slotsMaster = dead;
        await dead.kill();
        // The survivors mark it failed after cluster-node-timeout (2 s); then, with the default
        // cluster-require-full-coverage, they answer every keyed command with CLUSTERDOWN but still
        // answer PING. Decisions are taken in that state, not in the moment before it.
        const survivor = nodes().find((n) => n !== dead) as RedisServerProcess;
        await eventually(async () => (await survivor.admin().cluster('INFO')).includes('cluster_state:fail'), 10_000, 'cluster down');
      },
      end: async () => {
        await slotsMaster?.restart();
        await cluster.waitUntilOk(15_000);
      },
    },
  };

  const target: Target = {
    url: () => cluster.url,
    slotCount: (key) => liveSlots(admin, key).catch(() => -1),
    started,
  };
  for (const [name, outage] of Object.entries(outages)) {
    it(`Cluster ${name}: local keeps serving with per-replica limits, closed refuses, both recover`, () =>
      outageScenario(name, target, outage));
  }

  it('Cluster master of {slots} restarted empty between two health checks: held slots registered again within 5 s, sockets stay open', async () => {
    const prefix = uniquePrefix('fail-quick-restart');
    // Heartbeats every 3 s: the socket below lives through two of them after the restart.
    const env = { REDIS_URL: cluster.url, REDIS_KEY_PREFIX: prefix, WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1', WEBSOCKET_LEASE_SECONDS: '9' };
    const [a, b] = await Promise.all([spawnGateway(env), spawnGateway(env)]);
    started.push(a, b);
    const held = await open(a.wsUrl('u'));
    const slotsKey = redisKeys(prefix).slotsAll();
    expect(await target.slotCount(slotsKey)).toBe(1);

    // The master comes back (a supervisor restarting it: nodes.conf kept, no data, still master)
    // within about 100 ms, right after one of the health checks' PINGs reached it, so that no PING
    // of the next round fails. A try whose outage a failed call or PING showed anyway (the
    // replica's log says `redis unreachable` with no master link seen ending first) is not the
    // case at hand: try again.
    const master = cluster.node(await cluster.masterOf('{slots}'));
    const logged = (msg: string) => a.logs().filter((l) => String(l['msg']).startsWith(msg)).length;
    const pings = async (probe: Redis) => Number(/cmdstat_ping:calls=(\d+)/.exec(await probe.info('commandstats'))?.[1] ?? 0);
    let back = 0;
    for (let tries = 0; ; tries++) {
      expect(tries, 'a restart no health check saw').toBeLessThan(6);
      const [unreachable, linkEnded] = [logged('redis unreachable'), logged('link to a redis cluster master ended')];
      const probe = master.admin();
      const before = await pings(probe);
      await eventually(async () => (await pings(probe)) > before, 5000, 'a health check PING');
      probe.disconnect();
      await master.kill();
      await master.restart();
      await cluster.waitUntilOk(15_000);
      back = Date.now();
      await new Promise((r) => setTimeout(r, 1500));
      if (logged('redis unreachable') === unreachable || logged('link to a redis cluster master ended') > linkEnded) break;
      await eventually(() => lastHealth(a) === 'up', RECOVERY_MS, 'replica back on redis');
    }

    // CONTRACT §2: within 5 s of Redis answering again the held slot is registered again...
    await eventually(async () => (await target.slotCount(slotsKey)) === 1, Math.max(0, back + 5000 - Date.now()), 'held slot registered again');
    // ...so the shared per-user limit (1) counts it on the other replica,
    const second = await connect(b.wsUrl('u'));
    expect(second.opened ? 101 : second.rejected.status).toBe(429);
    // and the socket stays open through the next heartbeats: the slot was never taken, only forgotten.
    await new Promise((r) => setTimeout(r, 6500));
    expect(held.ws.readyState).toBe(held.ws.OPEN);
    expect(a.logs().some((l) => l['msg'] === 'connection slots were taken over while this replica was away')).toBe(false);
    await held.close();
    await Promise.all([a, b].map((g) => g.stop()));
  });

  it('Cluster master serving only rate shards killed: decisions stay bounded before and after the cluster goes down, then back', async () => {
    const survivor = cluster.node(await cluster.masterOf('{slots}'));
    const victim = nodes().find((n) => n !== survivor) as RedisServerProcess;
    const localPrefix = uniquePrefix('fail-local-rate-master');
    // Users whose message windows live on the victim, and users whose windows live elsewhere.
    const keys = redisKeys(localPrefix, { rateShards: 16 });
    const tokens: string[] = [];
    let onVictim = 0;
    for (let i = 0; tokens.length < 4; i++) {
      const token = `r${i}`;
      const hit = cluster.node(await cluster.masterOf(`{rate:${keys.rateShardOf(devUserId(token))}}`)) === victim;
      if ((hit && onVictim < 2) || (!hit && tokens.length - onVictim < 2)) {
        tokens.push(token);
        if (hit) onVictim++;
      }
    }
    const env = (prefix: string, mode: string) => ({
      REDIS_URL: cluster.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_LIMITS_FAILURE_MODE: mode,
      // Not what this test is about: one message per user per round stays well under it.
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '20',
      WEBSOCKET_LEASE_SECONDS: '3',
    });
    const [local, closed] = await Promise.all([
      spawnGateway(env(localPrefix, 'local')),
      spawnGateway(env(uniquePrefix('fail-closed-rate-master'), 'closed')),
    ]);
    started.push(local, closed);
    const sockets = await Promise.all(tokens.map((t) => open(local.wsUrl(t))));
    const onClosed = await open(closed.wsUrl('c'));

    const logsBefore = [local, closed].map((gw) => gw.logs().length);
    await victim.kill();
    // Until the survivors call the cluster down (cluster-node-timeout, 2 s) some hash slots answer
    // and some do not; after it, none do. Every decision stays bounded either way.
    let down = false;
    for (let round = 0, after = 0; after < 2; round++) {
      expect(round).toBeLessThan(40);
      const answers = await timed(() =>
        Promise.all(
          [...sockets, onClosed].map(async (c, i) => {
            c.send({ id: `m${round}-${i}` });
            return String((await c.next(BOUND_MS))['code']);
          }),
        ),
      );
      expect(answers.ms).toBeLessThan(BOUND_MS);
      // local: decided in Redis or in memory, allowed either way; closed: allowed or `unavailable`.
      expect(answers.value.slice(0, -1)).toEqual(tokens.map(() => 'invalid_message'));
      expect(['invalid_message', 'unavailable']).toContain(answers.value[answers.value.length - 1]);
      const upgrade = await timed(() => connect(closed.wsUrl('c')));
      expect(upgrade.ms).toBeLessThan(BOUND_MS);
      if (upgrade.value.opened) await upgrade.value.client.close();
      else expect(upgrade.value.rejected).toMatchObject({ status: 503, body: { error: 'unavailable' } });
      if (down) {
        expect(upgrade.value.opened).toBe(false);
        after++;
      }
      down ||= (await survivor.admin().cluster('INFO')).includes('cluster_state:fail');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await readyStatus(local)).toBe(200);
    await eventually(async () => (await readyStatus(closed)) === 503, 8000, 'closed mode not ready');
    // One verdict per outage: once a replica saw Redis down it stays down until the master is back
    // (a PING to one live master is no proof the lost hash slots answer).
    [local, closed].forEach((gw, i) => {
      const verdicts = gw
        .logs()
        .slice(logsBefore[i])
        .map((l) => String(l['msg']))
        .filter((m) => m.startsWith('redis unreachable') || m === 'redis answers again: shared limits apply');
      expect(verdicts.length, `${i === 0 ? 'local' : 'closed'} replica: ${verdicts.join(' | ')}`).toBe(1);
      expect(verdicts[0]).toMatch(/^redis unreachable/);
    });

    await victim.restart();
    await cluster.waitUntilOk(15_000);
    await eventually(
      async () => [local, closed].every((gw) => lastHealth(gw) !== 'down') && (await readyStatus(closed)) === 200,
      RECOVERY_MS,
      'every replica back on redis',
    );
    // The master of the slot sets kept its data; with the restore, they hold exactly the open sockets.
    await eventually(async () => (await target.slotCount(keys.slotsAll())) === sockets.length, 5000, 'slots == sockets');
    const again = await connect(closed.wsUrl('c'));
    expect(again.opened).toBe(true);
    for (const gw of [local, closed]) {
      expect(gw.logs().some((l) => l['msg'] === 'unhandled rejection')).toBe(false);
      expect(gw.stderr()).toBe('');
    }
    for (const c of [...sockets, onClosed, ...(again.opened ? [again.client] : [])]) await c.close();
    await Promise.all([local, closed].map((g) => g.stop()));
  });
});
