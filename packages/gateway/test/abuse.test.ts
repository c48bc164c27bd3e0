import net from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, open, startTestGateway, waitFor, type TestGateway } from '@wsgw/testkit';

/** The gateway must survive all of this and still answer the seed message afterwards. */
async function stillServes(gw: TestGateway): Promise<void> {
  const c = await open(gw.wsUrl('health-check-user'));
  c.send({ agent_type: 'echo', message: 'alive?', id: 'alive' });
  expect(await c.next()).toMatchObject({ type: 'response', message: 'alive?' });
  await c.close();
  expect((await fetch(gw.httpUrl('/healthz'))).status).toBe(200);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('bad input on purpose', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      WEBSOCKET_MAX_PAYLOAD_BYTES: '4096',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '10000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
      WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '100',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '100',
    });
  });
  afterAll(() => gw.stop());

  it('garbage, deeply nested JSON and wrong types each get invalid_message', async () => {
    const c = await open(gw.wsUrl('garbage'));
    const inputs = [
      '\u0000\u0001\u0002',
      '{"agent_type": "echo", "message": "unterminated',
      '['.repeat(2000) + ']'.repeat(2000),
      `{"agent_type":"echo","message":"x","pillar":${'['.repeat(1000)}${']'.repeat(1000)}}`,
      '{"agent_type":["echo"],"message":"x"}',
      '{"agent_type":"echo","message":null}',
      '{"__proto__":{"agent_type":"echo"},"message":"x"}',
      '\uD800',
      'null',
      '',
    ];
    for (const text of inputs) c.send(text);
    for (let i = 0; i < inputs.length; i++) {
      expect(await c.next()).toMatchObject({ type: 'error', code: 'invalid_message' });
    }
    await c.close();
    await stillServes(gw);
  });

  it('a text frame that is not UTF-8 ends that connection (uWS drops it: 1006), and nothing else', async () => {
    // uWebSockets.js checks text frames itself and drops the TCP connection without a close frame,
    // before the gateway sees the message (no option turns this off): documented in the README.
    const c = await open(gw.wsUrl('not-utf8'));
    const bystander = await open(gw.wsUrl('not-utf8'));
    const bytes = Buffer.concat([Buffer.from('{"agent_type":"echo","message":"'), Buffer.from([0xff, 0xfe]), Buffer.from('","id":"u1"}')]);
    c.ws.send(bytes, { binary: false });
    expect((await c.closed).code).toBe(1006);
    bystander.send({ agent_type: 'echo', message: 'still here', id: 'b1' });
    expect(await bystander.next()).toMatchObject({ type: 'response', message: 'still here', in_reply_to: 'b1' });
    await bystander.close();
    await stillServes(gw);
  });

  it('a frame above WEBSOCKET_MAX_PAYLOAD_BYTES closes the socket with 1009', async () => {
    const c = await open(gw.wsUrl('huge'));
    c.send({ agent_type: 'echo', message: 'x'.repeat(5000) });
    expect((await c.closed).code).toBe(1009);
    // Far above the limit uWS cuts the connection before reading it (no close frame).
    const d = await open(gw.wsUrl('huge-2'));
    d.send({ agent_type: 'echo', message: 'x'.repeat(1_000_000) });
    expect([1006, 1009]).toContain((await d.closed).code);
    await waitFor(() => gw.handle.hub.openCount === 0);
    await stillServes(gw);
  });

  it('a frame of exactly the limit is accepted', async () => {
    const c = await open(gw.wsUrl('at-limit'));
    const envelope = JSON.stringify({ agent_type: 'echo', message: '' });
    c.send(JSON.stringify({ agent_type: 'echo', message: 'y'.repeat(4096 - envelope.length) }));
    expect(await c.next()).toMatchObject({ type: 'response' });
    await c.close();
  });

  it('very long query strings and headers are refused without harm', async () => {
    const longToken = await connect(gw.wsUrl('a'.repeat(9000)));
    expect(longToken.opened ? 0 : longToken.rejected.status).toBe(401);
    await connect(gw.wsUrl('a'.repeat(200_000))).then(
      (r) => expect(r.opened).toBe(false),
      () => undefined, // uWS may drop a request line this long outright: also fine
    );
    await connect(gw.wsUrl('ok'), { headers: { 'X-Junk': 'b'.repeat(20_000) } }).then(
      async (r) => {
        if (r.opened) await r.client.close();
      },
      () => undefined,
    );
    await stillServes(gw);
  });

  it('raw junk on the TCP port does not hurt the process', async () => {
    for (const junk of ['GET /api/ws/agent HTTP/1.1\r\nUpgrade: websocket\r\n\r\n', '\x16\x03\x01\x00\xa5garbage-tls', 'HELLO\r\n\r\n']) {
      await new Promise<void>((resolve) => {
        const s = net.connect(gw.port, '127.0.0.1', () => s.end(junk));
        s.on('data', () => {});
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
    }
    await stillServes(gw);
  });

  it('many upgrades at once: exactly the global limit opens, the process survives', async () => {
    await waitFor(() => gw.handle.hub.openCount === 0);
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) => connect(gw.wsUrl(`many-${i}`)).catch(() => null)),
    );
    const opened = results.filter((r) => r?.opened);
    const refused = results.filter((r) => r && !r.opened);
    expect(opened.length).toBe(100);
    expect(refused.every((r) => !r!.opened && r!.rejected.status === 503)).toBe(true);
    await Promise.all(opened.map((r) => (r!.opened ? r!.client.close() : undefined)));
    await waitFor(() => gw.handle.hub.openCount === 0);
    await stillServes(gw);
  });
});

/**
 * Opens a socket for `user` that stops reading, runs `send` on it, waits until the gateway has no
 * socket open, then reads again: resolves with the close code the client saw (-1: none in 5 s).
 */
async function cutOffWhileNotReading(gw: TestGateway, user: string, send: (ws: WebSocket) => void): Promise<number> {
  const ws = new WebSocket(gw.wsUrl(user));
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  ws.on('error', () => {});
  // Stop reading: what the gateway sends piles up in its send buffer.
  const socket = (ws as unknown as { _socket: net.Socket })._socket;
  socket.pause();
  send(ws);
  await waitFor(() => gw.handle.hub.openCount === 0, 20_000);
  socket.resume();
  return Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
}

describe('slow readers and silent sockets', () => {
  it('a client that stops reading is cut off at the backpressure limit; memory stays bounded', async () => {
    const gw = await startTestGateway({
      WEBSOCKET_MAX_PAYLOAD_BYTES: '65536',
      WEBSOCKET_MAX_BACKPRESSURE_BYTES: '262144',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '100000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '1000000',
    });
    const payload = JSON.stringify({ agent_type: 'echo', message: 'z'.repeat(60_000) });
    const code = await cutOffWhileNotReading(gw, 'slow-reader', (ws) => {
      for (let i = 0; i < 400; i++) ws.send(payload);
    });
    expect([1008, 1006]).toContain(code);
    await gw.stop();
  });

  it('so is one that floods invalid frames and does not read their error frames', async () => {
    const gw = await startTestGateway({
      WEBSOCKET_MAX_BACKPRESSURE_BYTES: '262144',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '100000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '1000000',
    });
    // No agent_type: each frame gets an invalid_message error naming its ~250-character id,
    // ~13 MB of error frames in all, more than the kernel's socket buffers hold.
    const pad = 'e'.repeat(240);
    const code = await cutOffWhileNotReading(gw, 'error-flooder', (ws) => {
      for (let i = 0; i < 40_000; i++) ws.send(`{"id":"${pad}-${i}"}`);
    });
    expect([1008, 1006]).toContain(code);
    await stillServes(gw);
    await gw.stop();
  });

  it('a silent socket is closed after WEBSOCKET_IDLE_TIMEOUT_SECONDS', async () => {
    const gw = await startTestGateway({ WEBSOCKET_IDLE_TIMEOUT_SECONDS: '8' });
    const c = await open(gw.wsUrl('idle'));
    const started = Date.now();
    await c.closed;
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(7_900);
    expect(elapsed).toBeLessThan(16_000);
    await waitFor(() => gw.handle.hub.openCount === 0);
    await gw.stop();
  }, 30_000);

  it('a socket whose reply is still streaming is not closed as idle (the message keeps its outcome)', async () => {
    // One message, then an agent that streams a chunk every 2 s for ~16 s: the client sends nothing
    // meanwhile, and uWS counts only what it receives. Before: cut with 1006 after
    // WEBSOCKET_IDLE_TIMEOUT_SECONDS, the message without its final chunk. Now the gateway pings a
    // socket with a request in flight every half idle timeout, and the client's pong is traffic.
    const gw = await startTestGateway(
      { WEBSOCKET_IDLE_TIMEOUT_SECONDS: '8', AGENT_REPLY_TIMEOUT_SECONDS: '30' },
      {
        slow: async function* () {
          for (let i = 0; i < 8; i++) {
            await sleep(2000);
            yield `part-${i}`;
          }
        },
      },
    );
    try {
      const c = await open(gw.wsUrl('streaming-reader'));
      c.send({ agent_type: 'slow', message: 'tell me a long story', id: 'm1' });
      const frames: Array<Record<string, unknown>> = [];
      for (;;) {
        const frame = await c.next(6000);
        frames.push(frame);
        if (frame.done === true || frame.type !== 'chunk') break;
      }
      expect(frames.at(-1)).toMatchObject({ type: 'chunk', in_reply_to: 'm1', done: true, message: 'part-7' });
      await c.close();
      await waitFor(() => gw.handle.hub.openCount === 0);
    } finally {
      await gw.stop();
    }
  }, 40_000);

});
