import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, startRedisServer, startTestGateway, uniquePrefix, waitFor, type RedisServerProcess } from '@wsgw/testkit';

/**
 * A message the gateway has read when SIGTERM comes, whose rate decision is still on its way from
 * Redis, is answered before its socket closes with 1001. Before, the drain counted only pending
 * agent requests: shutdown closed the socket at once and the message was dropped (no outcome).
 */
describe('shutdown while a message waits for its rate decision (Redis mode)', () => {
  let redis: RedisServerProcess;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('the message read before the signal is still answered before the 1001', async () => {
    const gw = await startTestGateway({
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: uniquePrefix('drain-deciding'),
      WEBSOCKET_BUILTIN_AGENTS: 'echo',
      SHUTDOWN_DRAIN_SECONDS: '5',
      LOG_LEVEL: 'info',
    });
    const client = await open(gw.wsUrl('drain-user'));
    // Warm: one message answered as usual.
    client.send({ agent_type: 'echo', message: 'first', id: 'm1' });
    expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: 'm1' });

    // Redis answers writes (the rate script) 400 ms late: a slow round trip, nothing fails.
    const admin = redis.admin();
    let read = 0;
    const hub = gw.handle.hub;
    const message = hub.message.bind(hub);
    hub.message = (connection, text) => {
      read++;
      message(connection, text);
    };
    await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
    client.send({ agent_type: 'echo', message: 'second', id: 'm2' });
    await waitFor(() => read === 1, 2000, 2);
    // The operator's SIGTERM (what run.ts calls on it) right after the frame was read.
    const stopping = gw.stop();

    const frames: Array<Record<string, unknown>> = [];
    const closed = await client.closed;
    frames.push(...client.drainReceived());
    await stopping;
    admin.disconnect();
    expect(closed.code).toBe(1001);
    expect(frames).toEqual([expect.objectContaining({ type: 'response', in_reply_to: 'm2', message: 'second' })]);
  });
});

/**
 * The shutdown drain waits for "in-flight messages" by hub.pendingCount,
 * counted requests of sockets already closed (they leave the pending map only on a reply or their
 * agent_timeout): nothing can be delivered for them, yet a replica with such a leftover waited the
 * whole SHUTDOWN_DRAIN_SECONDS before closing its idle sockets. It counts open sockets' only now.
 */
describe('shutdown drain and requests of sockets already gone', () => {
  it('does not wait SHUTDOWN_DRAIN_SECONDS for a request whose socket has closed', async () => {
    const gw = await startTestGateway({ SHUTDOWN_DRAIN_SECONDS: '4' }, { hang: () => new Promise(() => {}) });
    const leaver = await open(gw.wsUrl('leaver'));
    leaver.send({ agent_type: 'hang', message: 'x', id: 'h1' });
    await waitFor(() => gw.handle.hub.pendingCount === 1);
    await leaver.close();
    await waitFor(() => gw.handle.hub.openCount === 0);
    const idle = await open(gw.wsUrl('idle')); // an open socket with nothing in flight
    const started = Date.now();
    await gw.stop();
    const took = Date.now() - started;
    expect((await idle.closed).code).toBe(1001);
    expect(took).toBeLessThan(2000);
  });
});
