import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { redisKeys } from '@wsgw/redis';
import { DevSessionValidator } from '@wsgw/sessions';

/** A socket through the load balancer, with the replica HAProxy picked (X-Served-By). */
export interface LbSocket {
  ws: WebSocket;
  servedBy: string;
  /** Frames received, parsed, in order. */
  frames: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; at: number }>;
  isOpen(): boolean;
  /** Resolves with the next frame whose in_reply_to is `id`. */
  reply(id: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export type OpenResult =
  | { opened: true; socket: LbSocket }
  | { opened: false; status: number; body: { error?: string } | undefined; servedBy: string | undefined };

/**
 * Opens a WebSocket; an HTTP refusal is a value, a network error throws. `options` pass to `ws`
 * (a `localAddress` on loopback, extra `headers`).
 */
export function openSocket(url: string, options?: WebSocket.ClientOptions): Promise<OpenResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    let servedBy = '';
    const frames: Array<Record<string, unknown>> = [];
    const waiters = new Map<string, (frame: Record<string, unknown>) => void>();
    const closed = new Promise<{ code: number; at: number }>((res) => ws.once('close', (code) => res({ code, at: Date.now() })));
    ws.on('upgrade', (res) => {
      servedBy = String(res.headers['x-served-by'] ?? '');
    });
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      frames.push(frame);
      const id = frame.in_reply_to;
      if (typeof id === 'string') {
        waiters.get(id)?.(frame);
        waiters.delete(id);
      }
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        let parsed: { error?: string } | undefined;
        try {
          parsed = JSON.parse(body) as { error?: string };
        } catch {
          parsed = undefined;
        }
        resolve({ opened: false, status: res.statusCode ?? 0, body: parsed, servedBy: res.headers['x-served-by'] as string | undefined });
        ws.terminate();
      });
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.removeListener('error', reject);
      ws.on('error', () => {});
      resolve({
        opened: true,
        socket: {
          ws,
          servedBy,
          frames,
          closed,
          isOpen: () => ws.readyState === WebSocket.OPEN,
          reply: (id, timeoutMs = 10_000) =>
            new Promise((res, rej) => {
              const seen = frames.find((f) => f.in_reply_to === id);
              if (seen) return res(seen);
              const timer = setTimeout(() => rej(new Error(`no reply to ${id} within ${timeoutMs} ms`)), timeoutMs);
              waiters.set(id, (frame) => {
                clearTimeout(timer);
                res(frame);
              });
            }),
        },
      });
    });
  });
}

export async function mustOpen(url: string): Promise<LbSocket> {
  const result = await openSocket(url);
  if (!result.opened) throw new Error(`upgrade refused: ${result.status} ${JSON.stringify(result.body)}`);
  return result.socket;
}

export async function closeAll(sockets: Iterable<LbSocket>): Promise<void> {
  await Promise.all(
    [...sockets].map(async (s) => {
      if (s.ws.readyState === WebSocket.OPEN || s.ws.readyState === WebSocket.CONNECTING) s.ws.close(1000);
      await s.closed;
    }),
  );
}

/** The user id the `dev` session validator gives a token (what the slots are keyed by). */
export async function devUserId(token: string): Promise<string> {
  const result = await new DevSessionValidator().validate(token);
  if (!result.valid) throw new Error('dev validator refused the token');
  return result.session.userId;
}

/** Reads the slot registry the replicas share: live (unexpired) leases, per user and in total. */
export class SlotInspector {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof redisKeys>;

  constructor(url: string, prefix: string) {
    this.redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
    this.keys = redisKeys(prefix);
  }

  private async now(): Promise<number> {
    const [s, us] = await this.redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  async ofUser(userId: string): Promise<number> {
    return this.redis.zcount(this.keys.slotsOfUser(userId), `(${await this.now()}`, '+inf');
  }

  async total(): Promise<number> {
    return this.redis.zcount(this.keys.slotsAll(), `(${await this.now()}`, '+inf');
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }
}

/**
 * The sliding-window rate limit, checked from the client's side: the server admitted each
 * answered message somewhere between its send and its reply, so any `limit + 1` answered
 * messages must span at least `windowMs` from the earliest send to the latest reply. Returns the
 * violations (empty when the limit held).
 */
export function slidingWindowViolations(
  answered: ReadonlyArray<{ sentAt: number; repliedAt: number }>,
  limit: number,
  windowMs: number,
): string[] {
  const bySend = [...answered].sort((a, b) => a.sentAt - b.sentAt);
  const problems: string[] = [];
  for (let i = 0; i < bySend.length; i++) {
    const start = bySend[i] as { sentAt: number };
    // The limit+1 messages sent at or after `start` that were answered earliest.
    const replies = bySend
      .slice(i)
      .map((m) => m.repliedAt)
      .sort((a, b) => a - b);
    const last = replies[limit];
    if (last !== undefined && last - start.sentAt < windowMs) {
      problems.push(`${limit + 1} messages admitted within ${last - start.sentAt} ms (window ${windowMs} ms)`);
    }
  }
  return problems;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
