import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import { closeAll, devUserId, mustOpen, SlotInspector, sleep, type LbSocket } from './support.js';

/**
 * Issue 6, proof 3: scale out and in. A fourth replica added under load takes new connections;
 * removing it drains its sockets with 1001 and frees their slots, while the other replicas'
 * sockets carry on.
 */
const DRAIN_SECONDS = 1;

describe('scale out and in under load', () => {
  let cluster: LocalCluster;
  let slots: SlotInspector;
  const sockets: LbSocket[] = [];
  let load: { stop: () => Promise<{ sent: number; answered: number; wrong: string[] }> } | undefined;

  beforeAll(async () => {
    cluster = await LocalCluster.start({
      replicas: 3,
      env: {
        WEBSOCKET_MAX_CONNECTIONS_PER_USER: '10',
        WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000',
        WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
        WEBSOCKET_BUILTIN_AGENTS: 'echo',
        SHUTDOWN_DRAIN_SECONDS: String(DRAIN_SECONDS),
      },
    });
    slots = new SlotInspector(cluster.redisUrl, cluster.keyPrefix);
  }, 150_000);

  afterAll(async () => {
    await load?.stop();
    await closeAll(sockets);
    await slots?.close();
    await cluster?.stop();
  }, 60_000);

  /** Every socket that is still open sends a message every 100 ms and checks its echo. */
  function startLoad(): NonNullable<typeof load> {
    let sent = 0;
    let answered = 0;
    const wrong: string[] = [];
    const timer = setInterval(() => {
      for (const s of sockets) {
        if (!s.isOpen()) continue;
        const id = `load-${sent++}`;
        s.ws.send(JSON.stringify({ agent_type: 'echo', message: id, id }));
        s.reply(id, 10_000).then(
          (frame) => {
            if (frame.type === 'response' && frame.message === id) answered++;
            else wrong.push(JSON.stringify(frame));
          },
          () => {
            // No reply: acceptable only if the socket was closed by a drain (checked below).
            if (s.isOpen()) wrong.push(`${id}: no reply on an open socket`);
          },
        );
      }
    }, 100);
    return {
      stop: async () => {
        clearInterval(timer);
        await sleep(300);
        return { sent, answered, wrong };
      },
    };
  }

  it('a fourth replica takes new connections; removing it drains its sockets with 1001 and frees their slots', async () => {
    for (let i = 0; i < 9; i++) sockets.push(await mustOpen(cluster.wsUrl(`scale-user-${i % 3}`)));
    load = startLoad();
    await sleep(500);

    const fourth = await cluster.addReplica();
    expect(fourth.name).toBe('replica-4');
    const newcomers: LbSocket[] = [];
    for (let i = 0; i < 8; i++) newcomers.push(await mustOpen(cluster.wsUrl(`scale-user-${i % 3}`)));
    sockets.push(...newcomers);
    // Round robin over four replicas: the new one takes its share of the eight new sockets.
    const onFourth = sockets.filter((s) => s.servedBy === 'replica-4');
    expect(onFourth.length).toBeGreaterThanOrEqual(1);
    for (const s of onFourth) {
      s.ws.send(JSON.stringify({ agent_type: 'echo', message: 'hello from replica-4', id: 'r4-probe' }));
      expect(await s.reply('r4-probe')).toMatchObject({ type: 'response', message: 'hello from replica-4' });
    }
    expect((await cluster.serverStats()).get('replica-4')?.current).toBe(onFourth.length);
    expect(await slots.total()).toBe(sockets.length);

    // Scale in: SIGTERM, drain, exit 0, then out of HAProxy.
    const t0 = Date.now();
    const exit = await cluster.removeReplica('replica-4');
    expect(exit).toEqual({ code: 0, signal: null });
    for (const s of onFourth) {
      const { code, at } = await s.closed;
      expect(code).toBe(1001);
      expect(at - t0).toBeLessThan((DRAIN_SECONDS + 5) * 1000);
    }
    const survivors = sockets.filter((s) => s.servedBy !== 'replica-4');
    expect(survivors.every((s) => s.isOpen())).toBe(true);
    expect([...(await cluster.serverStats()).keys()].sort()).toEqual(['replica-1', 'replica-2', 'replica-3']);

    // Its slots are gone: Redis holds exactly the survivors, per user and in total.
    expect(await slots.total()).toBe(survivors.length);
    for (let u = 0; u < 3; u++) {
      const token = `scale-user-${u}`;
      const expected = survivors.filter((s) => s.ws.url.includes(`session_token=${token}`)).length;
      expect(await slots.ofUser(await devUserId(token))).toBe(expected);
    }

    // New connections keep working on the remaining three.
    const after: LbSocket[] = [];
    for (let i = 0; i < 3; i++) after.push(await mustOpen(cluster.wsUrl('scale-user-late')));
    sockets.push(...after);
    expect(new Set(after.map((s) => s.servedBy))).toEqual(new Set(['replica-1', 'replica-2', 'replica-3']));

    const result = await (load as NonNullable<typeof load>).stop();
    load = undefined;
    expect(result.wrong).toEqual([]);
    expect(result.answered).toBeGreaterThan(50);
    console.info(`scale out/in: ${result.sent} sent under load, ${result.answered} echoed, ${onFourth.length} sockets drained from replica-4`);
  }, 120_000);
});
