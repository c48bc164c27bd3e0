import type { Span } from '@opentelemetry/api';
import type { Connection } from './connection.js';

/** A message handed to an agent and not yet answered in full (one fixed shape: it is made per message). */
export class PendingRequest {
  /** When the next reply is overdue. */
  deadline: number;
  replied = false;

  constructor(
    readonly connection: Connection,
    readonly agentType: string,
    readonly conversationId: string | undefined,
    readonly clientId: string | undefined,
    readonly receivedAt: number,
    /** The message's `ws.message` span, ended with its last reply or its timeout. */
    readonly span: Span | undefined,
    timeoutMs: number,
  ) {
    this.deadline = receivedAt + timeoutMs;
  }
}

/**
 * Requests awaiting replies, kept in deadline order for free: every deadline is `now + timeout`
 * with one timeout, so insertion order is deadline order, and a sweep only looks at the head.
 * A reply moves its entry to the back with a fresh deadline (a stream that stalls times out too).
 */
export class PendingRequests {
  private readonly byId = new Map<string, PendingRequest>();

  constructor(private readonly timeoutMs: number) {}

  get size(): number {
    return this.byId.size;
  }

  add(
    requestId: string,
    connection: Connection,
    agentType: string,
    conversationId: string | undefined,
    clientId: string | undefined,
    receivedAt: number,
    span: Span | undefined,
  ): void {
    this.byId.set(
      requestId,
      new PendingRequest(connection, agentType, conversationId, clientId, receivedAt, span, this.timeoutMs),
    );
  }

  get(requestId: string): PendingRequest | undefined {
    return this.byId.get(requestId);
  }

  /** A non-final reply arrived: the request stays, with a fresh deadline. */
  touch(requestId: string, entry: PendingRequest, now: number): void {
    this.byId.delete(requestId);
    entry.replied = true;
    entry.deadline = now + this.timeoutMs;
    this.byId.set(requestId, entry);
  }

  delete(requestId: string): void {
    this.byId.delete(requestId);
  }

  /** Removes and returns every request whose deadline has passed. */
  *expire(now: number): Generator<[string, PendingRequest]> {
    for (const [id, entry] of this.byId) {
      if (entry.deadline > now) return;
      this.byId.delete(id);
      yield [id, entry];
    }
  }
}
