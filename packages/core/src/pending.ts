import type { Span } from '@opentelemetry/api';
import type { Connection } from './connection.js';

/** A message handed to an agent and not yet answered in full. */
export interface PendingRequest {
  connection: Connection;
  agentType: string;
  conversationId: string | undefined;
  clientId: string | undefined;
  receivedAt: number;
  /** When the next reply is overdue. */
  deadline: number;
  replied: boolean;
  /** The message's `ws.message` span, ended with its last reply or its timeout. */
  span?: Span | undefined;
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

  add(requestId: string, entry: Omit<PendingRequest, 'deadline' | 'replied'>): void {
    this.byId.set(requestId, { ...entry, deadline: entry.receivedAt + this.timeoutMs, replied: false });
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
