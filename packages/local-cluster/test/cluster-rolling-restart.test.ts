import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster, type Exit } from '../src/index.js';
import { ReconnectingClient } from './reconnecting-client.js';
import { devUserId, SlotInspector, sleep, slidingWindowViolations } from './support.js';

/**
 * Issue 6, proof 2: a rolling restart (SIGTERM, wait, start; one replica at a time) under
 * clients that reconnect with jittered backoff and keep sending. No answered message is lost
 * or answered twice, limits are never exceeded during the roll, and at the end every slot in
 * Redis belongs to an open socket.
 */
const PER_USER = 2;
const PER_SECOND = 6;
const USERS = ['roll-user-1', 'roll-user-2'];
const CLIENTS_PER_USER = PER_USER + 1; // one more than the limit keeps pressing on it

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

describe('rolling restart under reconnecting clients', () => {
  let cluster: LocalCluster;
  let slots: SlotInspector;
  const clients: ReconnectingClient[] = [];

  beforeAll(async () => {
    cluster = await LocalCluster.start({
      replicas: 3,
      env: {
        WEBSOCKET_MAX_CONNECTIONS_PER_USER: String(PER_USER),
        WEBSOCKET_MAX_MESSAGES_PER_SECOND: String(PER_SECOND),
        WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
        WEBSOCKET_BUILTIN_AGENTS: 'echo',
        SHUTDOWN_DRAIN_SECONDS: '1',
      },
    });
    slots = new SlotInspector(cluster.redisUrl, cluster.keyPrefix);
  }, 150_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await slots?.close();
    await cluster?.stop();
  }, 60_000);

  it('restarts every replica while clients keep sending: nothing lost twice-answered or over the limits', async () => {
    const userIds = await Promise.all(USERS.map(devUserId));
    for (const user of USERS) {
      for (let i = 0; i < CLIENTS_PER_USER; i++) clients.push(new ReconnectingClient(`${user}-c${i}`, () => cluster.wsUrl(user)));
    }
    for (const c of clients) c.start();

    // Redis is the authority on slots: sample it through the whole roll.
    const maxSeen = { perUser: 0, total: 0, samples: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const counts = await Promise.all(userIds.map((u) => slots.ofUser(u)));
        maxSeen.perUser = Math.max(maxSeen.perUser, ...counts);
        maxSeen.total = Math.max(maxSeen.total, await slots.total());
        maxSeen.samples++;
        await sleep(20);
      }
    })();

    const answeredOf = (user: string) =>
      clients
        .filter((c) => c.name.startsWith(`${user}-`))
        .flatMap((c) => [...c.messages.values()])
        .flatMap((m) => (m.outcomes[0]?.type === 'response' ? [{ sentAt: m.sentAt, repliedAt: m.outcomes[0].at }] : []));
    const openPerUser = (user: string) => clients.filter((c) => c.name.startsWith(`${user}-`) && c.isOpen()).length;
    await until('every user at its connection limit', () => USERS.every((u) => openPerUser(u) === PER_USER), 15_000);
    await sleep(500);

    const exits: Exit[] = [];
    const restarted: string[] = [];
    for (const name of cluster.replicaNames()) {
      const before = cluster.replicas().find((r) => r.name === name)?.replicaId;
      exits.push(await cluster.stopReplica(name, 'SIGTERM'));
      const after = await cluster.startReplica(name);
      expect(after.replicaId).not.toBe(before);
      restarted.push(name);
    }
    expect(restarted).toHaveLength(3);
    expect(exits).toEqual(Array(3).fill({ code: 0, signal: null }));

    // Everyone back at the limit, then stop sending and let in-flight messages finish (a worker
    // killed mid-message is answered by another within 30 s, CONTRACT §6).
    await until('every user back at its connection limit', () => USERS.every((u) => openPerUser(u) === PER_USER), 15_000);
    // Enough answers per user for the window check below to mean something, however fast the
    // roll went (on a quick machine the three restarts take under 3 s).
    await until('every user answered for more than 3 s of its rate', () => USERS.every((u) => answeredOf(u).length > 3 * PER_SECOND), 20_000);
    await sleep(500);
    for (const c of clients) c.stopSending();
    await until('every message on an open socket answered', () => clients.every((c) => c.pendingOnOpenSocket().length === 0), 40_000);
    sampling = false;
    await sampler;

    // Every slot in Redis belongs to an open socket, per user and in total.
    for (const [i, user] of USERS.entries()) {
      expect(await slots.ofUser(userIds[i] as string)).toBe(openPerUser(user));
    }
    expect(await slots.total()).toBe(USERS.length * PER_USER);

    // Limits never exceeded during the roll.
    expect(maxSeen.samples).toBeGreaterThan(50);
    expect(maxSeen.perUser).toBeLessThanOrEqual(PER_USER);
    expect(maxSeen.total).toBeLessThanOrEqual(USERS.length * PER_USER);

    const messages = clients.flatMap((c) => [...c.messages.values()]);
    // No message answered twice, no reply on a socket that did not send it.
    expect(messages.filter((m) => m.outcomes.length > 1).map((m) => m.id)).toEqual([]);
    expect(clients.flatMap((c) => c.foreignReplies)).toEqual([]);
    // Outcomes are replies or rate-limit refusals; nothing else went wrong.
    const kinds = new Set(messages.flatMap((m) => m.outcomes.map((o) => o.code ?? o.type)));
    expect([...kinds].sort()).toEqual(['rate_limited', 'response']);
    // The only unanswered messages were in flight on a socket closed by a shutdown (1001).
    const closes = clients.flatMap((c) => c.closeCodes);
    expect(closes.length).toBeGreaterThanOrEqual(USERS.length * PER_USER); // each socket saw at least one restart
    expect(new Set(closes)).toEqual(new Set([1001]));
    for (const c of clients) {
      const unanswered = [...c.messages.values()].filter((m) => m.outcomes.length === 0);
      for (const m of unanswered) expect(m.socket).toBeLessThan(c.sockets + (c.isOpen() ? 0 : 1));
    }
    // The message rate held per user across replicas and restarts.
    for (const user of USERS) {
      const answered = answeredOf(user);
      expect(answered.length).toBeGreaterThan(3 * PER_SECOND);
      expect(slidingWindowViolations(answered, PER_SECOND, 1000)).toEqual([]);
    }

    const refusals: Record<number, number> = {};
    for (const c of clients) for (const [status, n] of c.refusals) refusals[status] = (refusals[status] ?? 0) + n;
    console.info(
      `rolling restart: ${messages.length} sent, ${messages.filter((m) => m.outcomes[0]?.type === 'response').length} answered, ` +
        `${messages.filter((m) => m.outcomes[0]?.code === 'rate_limited').length} rate-limited, ` +
        `${messages.filter((m) => m.outcomes.length === 0).length} in flight at a 1001 close; ${closes.length} closes; ` +
        `refusals ${JSON.stringify(refusals)}; ${clients.flatMap((c) => c.networkErrors).length} network errors; ` +
        `max slots seen per user ${maxSeen.perUser}, total ${maxSeen.total} (${maxSeen.samples} samples)`,
    );

    // Closing every socket frees every slot.
    await Promise.all(clients.map((c) => c.stop()));
    await until('all slots released', async () => (await slots.total()) === 0, 5000);
  }, 120_000);
});
