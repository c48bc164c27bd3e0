// A minimal WebSocket client over node:net, for load generation only.
//
// Why not `ws`: on a 2-core box the client shares the CPU with the server it measures, so every
// microsecond the client spends per message is taken from the server. This client does the least
// the protocol allows: no UTF-8 validation, no extensions, no Sec-WebSocket-Accept check, and a
// zero masking key (legal on the wire, the server cannot tell; it saves the XOR pass). Replies are
// handed over as Buffers, so the caller can find what it needs without decoding.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;
const MASK_KEY_BYTES = 4;

/**
 * Opens a WebSocket. Resolves with a RawWebSocket once the server answered 101; rejects with an
 * Error carrying `status` (the HTTP status, or 0 for a network error) otherwise.
 *
 * @param {{host: string, port: number, path: string, headers?: Record<string,string>, localAddress?: string, timeoutMs?: number}} opts
 * @returns {Promise<RawWebSocket>}
 */
export function connectRaw(opts) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => fail(0, 'handshake timeout'), opts.timeoutMs ?? 10_000);
    const fail = (status, message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const err = new Error(message);
      err.status = status;
      reject(err);
    };
    const onData = (chunk) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16_384) fail(0, 'oversized handshake response');
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const status = Number(statusLine.split(' ')[1]);
      if (status !== 101) {
        fail(status || 0, `upgrade refused: ${statusLine} ${head.subarray(end + 4, end + 260).toString('utf8')}`);
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(new RawWebSocket(socket, head.subarray(end + 4)));
    };
    const onError = (err) => fail(0, err.message);
    const onClose = () => fail(0, 'closed during handshake');
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    let req =
      `GET ${opts.path} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [k, v] of Object.entries(opts.headers ?? {})) req += `${k}: ${v}\r\n`;
    socket.write(`${req}\r\n`, 'latin1');
  });
}

export class RawWebSocket {
  /** @param {net.Socket} socket @param {Buffer} rest bytes that followed the 101 response */
  constructor(socket, rest) {
    this.socket = socket;
    /** @type {(payload: Buffer) => void} */
    this.onmessage = () => {};
    /** @type {(code: number) => void} */
    this.onclose = () => {};
    this.closed = false;
    this.closing = false;
    this.closeTimer = undefined;
    this.closeCode = 1006;
    /** performance.now() when the chunk being handled arrived: one clock read per chunk. */
    this.receivedAt = 0;
    this.pending = rest.length > 0 ? rest : null;
    this.fragments = null;
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(this.closeTimer);
      if (!this.closed) {
        this.closed = true;
        this.onclose(this.closeCode);
      }
    });
    if (this.pending) queueMicrotask(() => this.onData(Buffer.alloc(0)));
  }

  /** Sends one text frame. Returns false when the kernel buffer is full (the caller may wait). */
  sendText(text) {
    const len = Buffer.byteLength(text);
    const headLen = len < 126 ? 2 : len < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(headLen + MASK_KEY_BYTES + len);
    frame[0] = 0x80 | OP_TEXT;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65_536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(len), 2);
    }
    frame.writeUInt32BE(0, headLen);
    frame.write(text, headLen + MASK_KEY_BYTES, 'utf8');
    return this.socket.write(frame);
  }

  /**
   * Builds a reusable masked text frame for `text` (zero key, so the payload stays as written);
   * the caller may patch payload bytes at `frame.payloadOffset + i` before each send.
   */
  static textFrame(text) {
    const len = Buffer.byteLength(text);
    if (len >= 126) throw new Error('textFrame: templates are for small frames');
    const frame = Buffer.alloc(2 + MASK_KEY_BYTES + len);
    frame[0] = 0x80 | OP_TEXT;
    frame[1] = 0x80 | len;
    frame.write(text, 2 + MASK_KEY_BYTES, 'utf8');
    frame.payloadOffset = 2 + MASK_KEY_BYTES;
    return frame;
  }

  /** Writes a frame built by textFrame (or any ready frame). */
  sendFrame(frame) {
    return this.socket.write(frame);
  }

  /**
   * Closing handshake, then a TCP reset instead of a FIN. The server sees a normal WebSocket
   * close; the reset keeps the connection out of TIME_WAIT, where tens of thousands of storm
   * connections would otherwise pin the machine's loopback ephemeral ports for a minute (the box
   * is shared with other test runs).
   */
  close(code = 1000) {
    if (this.closed || this.socket.destroyed || this.closing) return;
    this.closing = true;
    const frame = Buffer.alloc(2 + MASK_KEY_BYTES + 2);
    frame[0] = 0x80 | OP_CLOSE;
    frame[1] = 0x80 | 2;
    frame.writeUInt16BE(code, 2 + MASK_KEY_BYTES);
    this.socket.write(frame);
    this.closeTimer = setTimeout(() => this.reset(), 2000);
  }

  reset() {
    clearTimeout(this.closeTimer);
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Drops the TCP connection at once (no close handshake). */
  destroy() {
    this.socket.destroy();
  }

  onData(chunk) {
    let buf = this.pending === null ? chunk : chunk.length === 0 ? this.pending : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    this.receivedAt = performance.now();
    // Whatever the handlers send in answer to this chunk leaves in one write.
    this.socket.cork();
    let off = 0;
    while (buf.length - off >= 2) {
      const b0 = buf[off];
      const b1 = buf[off + 1];
      let len = b1 & 0x7f;
      let p = off + 2;
      if (len === 126) {
        if (buf.length - off < 4) break;
        len = buf.readUInt16BE(p);
        p += 2;
      } else if (len === 127) {
        if (buf.length - off < 10) break;
        len = Number(buf.readBigUInt64BE(p));
        p += 8;
      }
      if (b1 & 0x80) p += MASK_KEY_BYTES; // servers never mask; tolerate it anyway (payload left masked)
      if (buf.length < p + len) break;
      const payload = buf.subarray(p, p + len);
      off = p + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === OP_TEXT || opcode === OP_BINARY || opcode === 0) {
        if (fin && this.fragments === null) this.onmessage(payload);
        else {
          this.fragments = this.fragments === null ? [Buffer.from(payload)] : [...this.fragments, Buffer.from(payload)];
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = null;
            this.onmessage(whole);
          }
        }
      } else if (opcode === OP_CLOSE) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        if (this.closing) this.reset();
        else this.socket.end(); // the server closed first: answer with a FIN
      } else if (opcode === OP_PING) {
        const pong = Buffer.alloc(2 + MASK_KEY_BYTES + len);
        pong[0] = 0x80 | OP_PONG;
        pong[1] = 0x80 | len;
        payload.copy(pong, 2 + MASK_KEY_BYTES);
        this.socket.write(pong);
      }
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
    this.socket.uncork();
  }
}
