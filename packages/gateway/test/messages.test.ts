import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, startTestGateway, waitFor, type TestGateway } from '@wsgw/testkit';

describe('messages: every outcome of CONTRACT §5', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(
      { AGENT_REPLY_TIMEOUT_SECONDS: '1', WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '10000' },
      {
        hang: () => new Promise(() => {}),
        stream: async function* (request) {
          for (const word of request.message.split(' ')) yield word;
        },
      },
    );
  });
  afterAll(() => gw.stop());

  it('echo: a response addressed to the client id and conversation', async () => {
    const c = await open(gw.wsUrl('m-echo'));
    c.send({ agent_type: 'echo', message: 'Hello', conversation_id: 'c1', id: 'm1', pillar: 'sales' });
    expect(await c.next()).toEqual({
      type: 'response',
      agent_type: 'echo',
      conversation_id: 'c1',
      in_reply_to: 'm1',
      message: 'Hello',
    });
    await c.close();
  });

  it('chunks arrive in order, the last with done: true', async () => {
    const c = await open(gw.wsUrl('m-stream'));
    c.send({ agent_type: 'stream', message: 'one two three four', id: 's1' });
    const frames = [await c.next(), await c.next(), await c.next(), await c.next()];
    expect(frames.map((f) => [f['type'], f['message'], f['done'], f['in_reply_to']])).toEqual([
      ['chunk', 'one', false, 's1'],
      ['chunk', 'two', false, 's1'],
      ['chunk', 'three', false, 's1'],
      ['chunk', 'four', true, 's1'],
    ]);
    await c.close();
  });

  it('invalid_message for bad JSON, wrong fields and binary frames; the socket stays open', async () => {
    const c = await open(gw.wsUrl('m-invalid'));
    c.send('this is not json');
    expect(await c.next()).toMatchObject({ type: 'error', code: 'invalid_message', in_reply_to: null });
    c.send({ agent_type: 'echo', message: 42, id: 'bad-1' });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'invalid_message', in_reply_to: 'bad-1' });
    c.send({ message: 'no agent type', id: 'bad-2' });
    expect(await c.next()).toMatchObject({ code: 'invalid_message', in_reply_to: 'bad-2' });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.next()).toMatchObject({ code: 'invalid_message', message: expect.stringContaining('binary') });
    c.send({ agent_type: 'echo', message: 'still here', id: 'ok' });
    expect(await c.next()).toMatchObject({ type: 'response', in_reply_to: 'ok' });
    await c.close();
  });

  it('agent_unavailable for an agent type nobody serves, at once', async () => {
    const c = await open(gw.wsUrl('m-unavail'));
    const started = Date.now();
    c.send({ agent_type: 'nobody-serves-this', message: 'x', id: 'u1' });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'agent_unavailable', in_reply_to: 'u1' });
    expect(Date.now() - started).toBeLessThan(1000);
    await c.close();
  });

  it('agent_timeout when no first reply comes within AGENT_REPLY_TIMEOUT_SECONDS', async () => {
    const c = await open(gw.wsUrl('m-timeout'));
    c.send({ agent_type: 'hang', message: 'x', id: 't1' });
    expect(await c.next(4000)).toMatchObject({ type: 'error', code: 'agent_timeout', in_reply_to: 't1' });
    await c.close();
  });
});

describe('messages: rate limits (CONTRACT §5)', () => {
  it('a flooding user is limited exactly: N answered, the rest rate_limited, one outcome each', async () => {
    const gw = await startTestGateway({ WEBSOCKET_MAX_MESSAGES_PER_SECOND: '10', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100' });
    const c = await open(gw.wsUrl('flood'));
    for (let i = 0; i < 30; i++) c.send({ agent_type: 'echo', message: `m${i}`, id: `m${i}` });
    const frames = [];
    for (let i = 0; i < 30; i++) frames.push(await c.next());
    const byId = new Map(frames.map((f) => [f['in_reply_to'], f]));
    expect(byId.size).toBe(30);
    const responses = frames.filter((f) => f['type'] === 'response');
    const limited = frames.filter((f) => f['code'] === 'rate_limited');
    expect(responses).toHaveLength(10);
    expect(limited).toHaveLength(20);
    for (const f of limited) {
      expect(f['retry_after_ms']).toBeGreaterThan(0);
      expect(f['retry_after_ms']).toBeLessThanOrEqual(1000);
    }
    // The socket stays open and works again once the window frees.
    await new Promise((r) => setTimeout(r, Number(limited[0]!['retry_after_ms']) + 50));
    c.send({ agent_type: 'echo', message: 'again', id: 'again' });
    expect(await c.next()).toMatchObject({ type: 'response', in_reply_to: 'again' });
    expect(gw.logs().some((l) => l['event'] === 'security.rate_limited')).toBe(true);
    await c.close();
    await gw.stop();
  });

  it('invalid frames count toward the limit too', async () => {
    const gw = await startTestGateway({ WEBSOCKET_MAX_MESSAGES_PER_SECOND: '3', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100' });
    const c = await open(gw.wsUrl('count-invalid'));
    for (let i = 0; i < 3; i++) c.send('garbage');
    c.send({ agent_type: 'echo', message: 'x', id: 'after' });
    const frames = [await c.next(), await c.next(), await c.next(), await c.next()];
    expect(frames.map((f) => f['code'])).toEqual(['invalid_message', 'invalid_message', 'invalid_message', 'rate_limited']);
    await c.close();
    await gw.stop();
  });

  it('limits are per user: two sockets of one user share the window', async () => {
    const gw = await startTestGateway({ WEBSOCKET_MAX_MESSAGES_PER_SECOND: '4', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100' });
    const a = await open(gw.wsUrl('shared'));
    const b = await open(gw.wsUrl('shared'));
    const other = await open(gw.wsUrl('someone-else'));
    for (let i = 0; i < 3; i++) a.send({ agent_type: 'echo', message: 'a', id: `a${i}` });
    for (let i = 0; i < 3; i++) b.send({ agent_type: 'echo', message: 'b', id: `b${i}` });
    for (let i = 0; i < 3; i++) other.send({ agent_type: 'echo', message: 'o', id: `o${i}` });
    const fa = [await a.next(), await a.next(), await a.next()];
    const fb = [await b.next(), await b.next(), await b.next()];
    const fo = [await other.next(), await other.next(), await other.next()];
    const ok = [...fa, ...fb].filter((f) => f['type'] === 'response').length;
    expect(ok).toBe(4);
    expect(fo.every((f) => f['type'] === 'response')).toBe(true);
    await Promise.all([a.close(), b.close(), other.close()]);
    await gw.stop();
  });

  it('a socket that keeps flooding is closed with 1008', async () => {
    const gw = await startTestGateway({ WEBSOCKET_MAX_MESSAGES_PER_SECOND: '2', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '5' });
    const c = await open(gw.wsUrl('flooder'));
    for (let i = 0; i < 20; i++) c.send({ agent_type: 'echo', message: 'x', id: `f${i}` });
    const { code } = await c.closed;
    expect(code).toBe(1008);
    const frames = c.drainReceived();
    // 2 answered, then 5 rate-limited are tolerated; the 6th denial closes the socket.
    expect(frames.filter((f) => f['code'] === 'rate_limited').length).toBe(6);
    await waitFor(() => gw.handle.hub.openCount === 0);
    const closing = gw.logs().find((l) => l['event'] === 'security.rate_limited' && l['closing'] === true);
    expect(closing).toBeDefined();
    await gw.stop();
  });
});
