import { connect as netConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Cluster, Redis } from 'ioredis';
import {
  connect,
  findRedis,
  open,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type OpenClient,
  type TestRedis,
} from '@wsgw/testkit';
import { redisKeys } from '@wsgw/redis';
import { closeAll, eventually, openConcurrently } from './redis-support.js';
import { liveSlots, redisNow, topologies, type Topology } from './redis-topologies.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/** The sorted set of every slot under a replica's REDIS_KEY_PREFIX (the gateway's own key layout). */
const allSlots = (prefix: string) => redisKeys(prefix).slotsAll();

/** Issue 3 §3: slots are leases; crashes, pauses, graceful exits and aborted upgrades. */
describe.each(topologies)('connection slots as leases ($name, real replicas)', ({ start }) => {
  let redis: Topology;
  let admin: Redis | Cluster;
  const started: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await start();
    admin = redis.admin;
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function replicas(n: number, env: Record<string, string>): Promise<GatewayProcess[]> {
    const list = await Promise.all(Array.from({ length: n }, () => spawnGateway({ REDIS_URL: redis.url, ...env })));
    started.push(...list);
    return list;
  }

  it('frees the slots of a replica killed with SIGKILL within WEBSOCKET_LEASE_SECONDS', async () => {
    const prefix = uniquePrefix('sigkill');
    const [a, b] = await replicas(2, { REDIS_KEY_PREFIX: prefix, WEBSOCKET_LEASE_SECONDS: '2', WEBSOCKET_MAX_CONNECTIONS_PER_USER: '3' });
    const held = await Promise.all([0, 1, 2].map(() => open(a!.wsUrl('crashy'))));
    expect((await openConcurrently([b!], () => 'crashy', 1)).rejected[0]?.status).toBe(429);
    a!.signal('SIGKILL');
    const killedAt = await redisNow(admin);
    await a!.exited;
    await Promise.all(held.map((c) => c.closed));
    // Nothing released them, but every lease ends within WEBSOCKET_LEASE_SECONDS of the crash
    // (by Redis' clock, the one the scripts use: exact however busy this machine is).
    const expiries = (await admin.zrange(allSlots(prefix), 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number);
    expect(expiries).toHaveLength(3);
    expect(Math.max(...expiries) - killedAt).toBeLessThanOrEqual(2000);
    // And once they have ended, the other replica gives the user's slots to new sockets.
    await eventually(
      async () => {
        const { open: opened } = await openConcurrently([b!], () => 'crashy', 1);
        await closeAll(opened);
        return opened.length === 1;
      },
      10_000,
      'slot freed after lease',
    );
  });

  it('frees every slot at once on a graceful exit (SIGTERM)', async () => {
    const prefix = uniquePrefix('sigterm');
    const [a] = await replicas(1, { REDIS_KEY_PREFIX: prefix, WEBSOCKET_LEASE_SECONDS: '60' });
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => open(a!.wsUrl(`graceful-${i}`))));
    expect(await liveSlots(admin, allSlots(prefix))).toBe(8);
    const exit = await a!.stop();
    expect(exit.code).toBe(0);
    const codes = await Promise.all(clients.map((c) => c.closed));
    expect(codes.every((c) => c.code === 1001)).toBe(true);
    // A 60 s lease: only the release can explain an empty set.
    expect(await admin.zcard(allSlots(prefix))).toBe(0);
  });

  it('holds nothing for clients that give up in the middle of their upgrade', async () => {
    const prefix = uniquePrefix('aborted');
    const [a] = await replicas(1, { REDIS_KEY_PREFIX: prefix, WEBSOCKET_LEASE_SECONDS: '60', WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1000' });
    const keeper = await open(a!.wsUrl('keeper'));
    const attempts = 200;
    await Promise.all(
      Array.from({ length: attempts }, (_, i) => abortedUpgrade(a!.port, `quitter-${i % 7}`, i % 4)),
    );
    // Every aborted admission released what it took; the one real socket still counts.
    await eventually(async () => (await liveSlots(admin, allSlots(prefix))) === 1, 5000, 'aborted upgrades released');
    expect(await admin.zrange(allSlots(prefix), 0, -1)).toHaveLength(1);
    await keeper.close();
    await eventually(async () => (await liveSlots(admin, allSlots(prefix))) === 0, 5000, 'closed socket released');
  });

  it('closes its own sockets when it wakes from a SIGSTOP longer than the lease and its slots were taken', async () => {
    const prefix = uniquePrefix('sigstop');
    const env = { REDIS_KEY_PREFIX: prefix, WEBSOCKET_LEASE_SECONDS: '2', WEBSOCKET_MAX_CONNECTIONS_PER_USER: '2' };
    const [a, b] = await replicas(2, env);
    const onA = await Promise.all([open(a!.wsUrl('sleeper')), open(a!.wsUrl('sleeper'))]);
    a!.signal('SIGSTOP');
    // Past the lease, B may give the user's two slots to new sockets.
    let onB: OpenClient[] = [];
    await eventually(
      async () => {
        const { open: opened } = await openConcurrently([b!], () => 'sleeper', 2);
        if (opened.length === 2) onB = opened;
        else await closeAll(opened);
        return opened.length === 2;
      },
      8000,
      'slots taken over after the lease',
    );
    a!.signal('SIGCONT');
    // A notices at its next heartbeat (a third of a lease) and closes what it no longer holds.
    const closed = await Promise.all(onA.map((c) => c.closed));
    expect(closed.map((c) => c.code)).toEqual([1011, 1011]);
    await a!.waitForLog((l) => l['msg'] === 'connection slots were taken over while this replica was away');
    // B's sockets are untouched and are the ones Redis counts.
    for (const c of onB) c.send({ agent_type: 'echo', message: 'still here' });
    for (const c of onB) expect(await c.next()).toMatchObject({ type: 'response', message: 'still here' });
    expect(await liveSlots(admin, allSlots(prefix))).toBe(2);
    await closeAll(onB);
  });

});

/** Churn and mixed leases, once, on a single Redis: the point is the bookkeeping, not the topology. */
describe('slot bookkeeping under churn and mixed leases (single Redis, real replicas)', () => {
  let redis: TestRedis;
  let admin: Redis;
  const started: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await findRedis();
    admin = redis.admin();
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function replicas(n: number, env: Record<string, string>): Promise<GatewayProcess[]> {
    const list = await Promise.all(Array.from({ length: n }, () => spawnGateway({ REDIS_URL: redis.url, ...env })));
    started.push(...list);
    return list;
  }

  it('ends a churn of connects, closes, aborted upgrades and replica kills with Redis counting exactly the open sockets', async () => {
    const prefix = uniquePrefix('churn');
    const env = {
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_LEASE_SECONDS: '2',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '4',
      WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '150',
    };
    const fleet = await replicas(3, env);
    let live: Array<{ client: OpenClient; replica: GatewayProcess }> = [];
    let opened = 0;
    let aborted = 0;
    for (let wave = 0; wave < 24; wave++) {
      const up = fleet.filter((r) => r !== undefined);
      // 60 attempts per wave: connects (some refused by the limits) and aborted upgrades.
      const attempts = Array.from({ length: 60 }, async (_, i) => {
        const replica = up[(wave + i) % up.length] as GatewayProcess;
        const user = `churner-${(wave * 7 + i) % 45}`;
        if (i % 5 === 0) {
          aborted++;
          await abortedUpgrade(replica.port, user, i % 3);
          return;
        }
        const { open: sockets } = await openConcurrently([replica], () => user, 1);
        for (const client of sockets) {
          opened++;
          live.push({ client, replica });
        }
      });
      await Promise.all(attempts);
      // Close about half of what is open.
      const closing = live.filter((_, i) => (i + wave) % 2 === 0);
      live = live.filter((_, i) => (i + wave) % 2 !== 0);
      await closeAll(closing.map((l) => l.client));
      if (wave === 8 || wave === 16) {
        // Kill one replica outright and start a fresh one in its place.
        const victim = fleet.shift() as GatewayProcess;
        victim.signal('SIGKILL');
        await victim.exited;
        live = live.filter((l) => l.replica !== victim);
        const fresh = await spawnGateway({ REDIS_URL: redis.url, ...env });
        started.push(fresh);
        fleet.push(fresh);
      }
    }
    // Sockets on killed replicas are gone for the client too.
    live = live.filter((l) => l.client.ws.readyState === l.client.ws.OPEN);
    expect(opened).toBeGreaterThan(300);
    expect(aborted).toBeGreaterThan(200);
    // Killed replicas' slots run out within a lease; releases of closes are asynchronous.
    await eventually(async () => (await liveSlots(admin, allSlots(prefix))) === live.length, 6000, `redis counts == ${live.length} open sockets`);
    await closeAll(live.map((l) => l.client));
    await eventually(async () => (await liveSlots(admin, allSlots(prefix))) === 0, 5000, 'all released');
  });

  /**
   * A rolling change of WEBSOCKET_LEASE_SECONDS: for a while replicas with different leases share one
   * prefix, hence one slot set. Every script used to set the TTL of the shared keys to its caller's
   * lease: a short-lease replica that took a slot and then held nothing left the whole set to expire
   * within its own lease, and the long-lease replica's open sockets stopped counting.
   */
  it("a short-lease replica that comes and goes leaves the long-lease replica's slots counted", async () => {
    const prefix = uniquePrefix('lease-mix');
    const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, WEBSOCKET_MAX_CONNECTIONS_PER_USER: '2', WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '3' };
    // A 60 s lease heartbeats every 20 s: none comes between its first sockets and the checks
    // below, so nothing but the key's own TTL keeps its slots in Redis meanwhile.
    const [long, short] = await Promise.all([
      spawnGateway({ ...env, WEBSOCKET_LEASE_SECONDS: '60' }),
      spawnGateway({ ...env, WEBSOCKET_LEASE_SECONDS: '2' }),
    ]);
    started.push(long, short);
    const held = [await open(long.wsUrl('u')), await open(long.wsUrl('u'))];
    // Another user takes a slot on the short-lease replica and gives it back: that replica now
    // holds nothing, so it renews nothing.
    const brief = await open(short.wsUrl('v'));
    await brief.close();
    // Past the short lease (an expiry: no event to await).
    await new Promise((r) => setTimeout(r, 2500));
    expect(await admin.zrange(allSlots(prefix), 0, -1)).toHaveLength(2);
    // Global limit 3 with u's 2 counted: one more socket fits, the next is refused.
    const third = await open(short.wsUrl('w1'));
    const fourth = await connect(short.wsUrl('w2'));
    expect(fourth.opened ? 101 : fourth.rejected).toMatchObject({ status: 503, body: { error: 'global_connection_limit' } });
    expect(held.every((c) => c.ws.readyState === c.ws.OPEN)).toBe(true);
    await closeAll([...held, third]);
  });
});

/** Sends an upgrade request and hangs up before (or while) the gateway answers. */
function abortedUpgrade(port: number, token: string, delayMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.write(
        `GET /api/ws/agent?session_token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      setTimeout(() => socket.destroy(), delayMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}
