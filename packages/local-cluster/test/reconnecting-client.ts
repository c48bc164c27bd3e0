import { openSocket, sleep, type LbSocket } from './support.js';

export interface SentMessage {
  id: string;
  socket: number;
  sentAt: number;
  /** Every frame that answered this id (exactly one is right). */
  outcomes: Array<{ type: string; code?: string; at: number }>;
}

/**
 * A client that behaves like a well-written app: keeps one socket open, sends a message every
 * `sendEveryMs`, and after a refusal or a close reconnects with full-jitter exponential backoff.
 * Everything it sees is recorded for the assertions.
 */
export class ReconnectingClient {
  readonly messages = new Map<string, SentMessage>();
  readonly closeCodes: number[] = [];
  readonly refusals = new Map<number, number>();
  readonly networkErrors: string[] = [];
  /** Frames answering an id this socket never sent (another socket's, or unknown). */
  readonly foreignReplies: string[] = [];
  sockets = 0;
  socket: LbSocket | undefined;
  private sending = true;
  private running: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly url: () => string,
    private readonly options = { sendEveryMs: 150, backoffBaseMs: 50, backoffCapMs: 500 },
  ) {}

  start(): void {
    this.running = this.loop();
  }

  /** Stops sending and reconnecting; an open socket stays open. */
  stopSending(): void {
    this.sending = false;
  }

  /** Closes the socket (if open) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.sending = false;
    if (this.socket?.isOpen()) this.socket.ws.close(1000);
    await this.running;
  }

  isOpen(): boolean {
    return this.socket?.isOpen() ?? false;
  }

  /** Messages sent on the current socket that have no outcome yet. */
  pendingOnOpenSocket(): SentMessage[] {
    if (!this.isOpen()) return [];
    return [...this.messages.values()].filter((m) => m.socket === this.sockets && m.outcomes.length === 0);
  }

  private backoff(attempt: number): number {
    return Math.random() * Math.min(this.options.backoffCapMs, this.options.backoffBaseMs * 2 ** attempt);
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (this.sending) {
      let result: Awaited<ReturnType<typeof openSocket>>;
      try {
        result = await openSocket(this.url());
      } catch (err) {
        this.networkErrors.push((err as Error).message);
        await sleep(this.backoff(++attempt));
        continue;
      }
      if (!result.opened) {
        this.refusals.set(result.status, (this.refusals.get(result.status) ?? 0) + 1);
        await sleep(this.backoff(++attempt));
        continue;
      }
      attempt = 0;
      const socket = result.socket;
      if (!this.sending) {
        socket.ws.close(1000);
        await socket.closed;
        break;
      }
      const seq = ++this.sockets;
      this.socket = socket;
      socket.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; code?: string; in_reply_to?: string };
        const message = frame.in_reply_to ? this.messages.get(frame.in_reply_to) : undefined;
        if (!message || message.socket !== seq) {
          this.foreignReplies.push(JSON.stringify(frame));
          return;
        }
        message.outcomes.push({ type: frame.type, ...(frame.code ? { code: frame.code } : {}), at: Date.now() });
      });
      let n = 0;
      const timer = setInterval(() => {
        if (!this.sending || !socket.isOpen()) return;
        const id = `${this.name}-s${seq}-m${n++}`;
        this.messages.set(id, { id, socket: seq, sentAt: Date.now(), outcomes: [] });
        socket.ws.send(JSON.stringify({ agent_type: 'echo', message: id, id, conversation_id: this.name }));
      }, this.options.sendEveryMs);
      const { code } = await socket.closed;
      clearInterval(timer);
      if (!this.sending) break;
      this.closeCodes.push(code);
      await sleep(this.backoff(1));
    }
  }
}
