// The same interface as RawWebSocket over the `ws` package, to measure what the ordinary client
// costs per message (`--client ws`); the bench's default is the raw client.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const SMALL_FRAME_HEADER = 6;

/** @returns {Promise<WsClientSocket>} rejects with an Error carrying `status` (0 = network) */
export function connectWs(opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${opts.host}:${opts.port}${opts.path}`, {
      headers: opts.headers,
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
    });
    ws.once('open', () => resolve(new WsClientSocket(ws)));
    ws.once('unexpected-response', (_req, res) => {
      const err = new Error(`upgrade refused: ${res.statusCode}`);
      err.status = res.statusCode;
      res.resume();
      ws.terminate();
      reject(err);
    });
    ws.once('error', (e) => {
      const err = new Error(e.message);
      err.status = 0;
      reject(err);
    });
  });
}

export class WsClientSocket {
  constructor(ws) {
    this.ws = ws;
    this.onmessage = () => {};
    this.onclose = () => {};
    this.closed = false;
    this.receivedAt = 0;
    ws.on('error', () => {});
    ws.on('message', (data) => {
      this.receivedAt = performance.now();
      this.onmessage(data);
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.onclose(code);
    });
  }

  /**
   * Takes a frame made from a RawWebSocket.textFrame template (2-byte header + 4-byte zero mask +
   * payload: templates are always under 126 bytes) and sends its payload as text.
   */
  sendFrame(frame) {
    this.ws.send(frame.subarray(SMALL_FRAME_HEADER), { binary: false });
  }

  close(code = 1000) {
    if (!this.closed) this.ws.close(code);
  }

  destroy() {
    this.ws.terminate();
  }
}
