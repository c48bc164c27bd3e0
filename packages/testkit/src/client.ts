import WebSocket from 'ws';

export interface Rejected {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface OpenClient {
  ws: WebSocket;
  /**
   * The next frame from the gateway, parsed as JSON. Fails after `timeoutMs`, or as soon as the
   * socket has closed with no frame left to take (saying how it closed).
   */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Every frame received so far and not yet taken by `next`. */
  drainReceived(): Array<Record<string, unknown>>;
  send(frame: unknown): void;
  /** Resolves with the close code once the socket closes. */
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export type ConnectResult = { opened: true; client: OpenClient } | { opened: false; rejected: Rejected };

/** Opens a WebSocket; an HTTP refusal of the upgrade is a value, not an exception. */
export function connect(
  url: string,
  options: { headers?: Record<string, string>; origin?: string } = {},
): Promise<ConnectResult> {
  return new Promise((resolve, reject) => {
    const wsOptions: WebSocket.ClientOptions = { headers: options.headers ?? {} };
    if (options.origin !== undefined) wsOptions.origin = options.origin;
    const ws = new WebSocket(url, wsOptions);
    const queue: Array<Record<string, unknown>> = [];
    const waiters: Array<{ take: (frame: Record<string, unknown>) => void; gone: (err: Error) => void }> = [];
    let received = 0;
    let closedWith: { code: number; reason: string } | undefined;
    const closedError = () =>
      new Error(`socket closed (${closedWith?.code} ${JSON.stringify(closedWith?.reason)}) after ${received} frames, none left to take`);
    const closed = new Promise<{ code: number; reason: string }>((res) => {
      ws.on('close', (code, reason) => {
        closedWith = { code, reason: reason.toString() };
        for (const waiter of waiters.splice(0)) waiter.gone(closedError());
        res(closedWith);
      });
    });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(text) as Record<string, unknown>;
      } catch {
        frame = { unparsable: text };
      }
      received++;
      const waiter = waiters.shift();
      if (waiter) waiter.take(frame);
      else queue.push(frame);
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        let parsed: unknown = body;
        try {
          parsed = JSON.parse(body);
        } catch {
          // keep the raw text
        }
        resolve({ opened: false, rejected: { status: res.statusCode ?? 0, headers: res.headers, body: parsed } });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
    ws.on('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => {});
      resolve({
        opened: true,
        client: {
          ws,
          closed,
          send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
          next: (timeoutMs = 5000) =>
            new Promise((res, rej) => {
              const queued = queue.shift();
              if (queued) {
                res(queued);
                return;
              }
              if (closedWith !== undefined) {
                rej(closedError());
                return;
              }
              const timer = setTimeout(() => {
                const i = waiters.indexOf(waiter);
                if (i >= 0) waiters.splice(i, 1);
                rej(new Error(`no frame within ${timeoutMs} ms (${received} frames received so far)`));
              }, timeoutMs);
              const waiter = {
                take: (frame: Record<string, unknown>) => {
                  clearTimeout(timer);
                  res(frame);
                },
                gone: (err: Error) => {
                  clearTimeout(timer);
                  rej(err);
                },
              };
              waiters.push(waiter);
            }),
          drainReceived: () => queue.splice(0),
          close: async () => {
            if (ws.readyState === WebSocket.CLOSED) return;
            ws.close();
            await closed;
          },
        },
      });
    });
  });
}

/** Opens a socket and fails the test if the gateway refuses it. */
export async function open(url: string, options?: Parameters<typeof connect>[1]): Promise<OpenClient> {
  const result = await connect(url, options);
  if (!result.opened) {
    throw new Error(`upgrade refused: ${result.rejected.status} ${JSON.stringify(result.rejected.body)}`);
  }
  return result.client;
}
