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
 *
 * The request being published is held aside, not in the map, until `published()`: an in-process
 * agent usually answers in full before publish returns, and a Map entry set and deleted at once
 * for every message made the table rehash every few messages (Map add + delete were ~6% of the
 * gateway's CPU under load). Only a request still waiting after publish goes into the map.
 */
export class PendingRequests {
  private readonly byId = new Map<string, PendingRequest>();
  /** The request being published, and whether it was answered in full meanwhile. */
  private publishingId: string | undefined;
  private publishing: PendingRequest | undefined;
  private publishingDone = false;

  constructor(private readonly timeoutMs: number) {}

  get size(): number {
    return this.byId.size + (this.publishing !== undefined && !this.publishingDone ? 1 : 0);
  }

  /** Registers a request about to be published (then call `published`). */
  add(
    requestId: string,
    connection: Connection,
    agentType: string,
    conversationId: string | undefined,
    clientId: string | undefined,
    receivedAt: number,
    span: Span | undefined,
  ): void {
    this.published();
    this.publishingId = requestId;
    this.publishing = new PendingRequest(connection, agentType, conversationId, clientId, receivedAt, span, this.timeoutMs);
    this.publishingDone = false;
  }

  /** Publish returned (or threw): a request not answered in full by now waits in the map. */
  published(): void {
    const entry = this.publishing;
    if (entry === undefined) return;
    if (!this.publishingDone) this.byId.set(this.publishingId as string, entry);
    this.publishingId = undefined;
    this.publishing = undefined;
  }

  get(requestId: string): PendingRequest | undefined {
    if (requestId === this.publishingId) return this.publishingDone ? undefined : this.publishing;
    return this.byId.get(requestId);
  }

  /** A non-final reply arrived: the request stays, with a fresh deadline. */
  touch(requestId: string, entry: PendingRequest, now: number): void {
    entry.replied = true;
    entry.deadline = now + this.timeoutMs;
    if (requestId === this.publishingId) return; // goes to the back of the map when published
    this.byId.delete(requestId);
    this.byId.set(requestId, entry);
  }

  delete(requestId: string): void {
    if (requestId === this.publishingId) this.publishingDone = true;
    else this.byId.delete(requestId);
  }

  /** How many requests wait for replies on sockets still open. */
  countOpen(): number {
    let open = this.publishing !== undefined && !this.publishingDone && !this.publishing.connection.closed ? 1 : 0;
    for (const entry of this.byId.values()) if (!entry.connection.closed) open++;
    return open;
  }

  /** The connections that have a request waiting for (more of) its replies, each once. */
  waitingConnections(): Set<Connection> {
    const connections = new Set<Connection>();
    for (const entry of this.byId.values()) connections.add(entry.connection);
    if (this.publishing !== undefined && !this.publishingDone) connections.add(this.publishing.connection);
    return connections;
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
