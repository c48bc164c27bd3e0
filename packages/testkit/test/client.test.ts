import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { open } from '@wsgw/testkit';

/** A loopback server that runs `onSocket` for each connection. */
async function server(onSocket: (socket: WebSocket) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', onSocket);
  const { port } = wss.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/`, close: () => new Promise((resolve) => wss.close(() => resolve())) };
}

describe('testkit client', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it('takes the frames that arrived before a close, then says how the socket closed instead of timing out', async () => {
    const s = await server((socket) => {
      socket.send('{"n":1}');
      socket.close(4000, 'bye');
    });
    stop = s.close;
    const client = await open(s.url);
    await client.closed;
    expect(await client.next()).toEqual({ n: 1 });
    await expect(client.next(20_000)).rejects.toThrow('socket closed (4000 "bye") after 1 frames, none left to take');
  });

  it('fails a wait in progress when the socket closes', async () => {
    const s = await server((socket) => {
      socket.on('message', () => socket.close(4001, 'gone'));
    });
    stop = s.close;
    const client = await open(s.url);
    const waiting = client.next(20_000);
    client.send({ hello: true });
    await expect(waiting).rejects.toThrow('socket closed (4001 "gone") after 0 frames, none left to take');
  });
});
