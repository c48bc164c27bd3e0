import type { Link } from '@opentelemetry/api';
import type { AdmissionTicket } from './admission.js';
import type { ClientSocket } from './ports.js';
import { linkTo } from './tracing.js';

/** One open socket as core tracks it. The transport holds it as the socket's user data. */
export class Connection {
  readonly id: string;
  readonly userId: string;
  readonly path: string;
  readonly origin: string | undefined;
  readonly tokenHash: string;
  readonly openedAt: number;
  /** Links every message span to the upgrade span (computed once, not per message). */
  readonly traceLinks: Link[] | undefined;
  closed = false;
  /** Times of this socket's rate-limited frames, oldest first, within the last 60 s. */
  private readonly denials: number[] = [];

  constructor(
    ticket: AdmissionTicket,
    readonly socket: ClientSocket,
    now: number,
  ) {
    this.id = ticket.connectionId;
    this.userId = ticket.userId;
    this.path = ticket.path;
    this.origin = ticket.origin;
    this.tokenHash = ticket.tokenHash;
    this.openedAt = now;
    this.traceLinks = linkTo(ticket.traceContext);
  }

  /**
   * Records a rate-limited frame and answers whether this socket has now gone past `limit`
   * denials in the last 60 s (CONTRACT §5: such a socket is closed with 1008).
   */
  recordDenial(now: number, limit: number): { first: boolean; exceeded: boolean } {
    const horizon = now - 60_000;
    while (this.denials.length > 0 && (this.denials[0] as number) <= horizon) this.denials.shift();
    this.denials.push(now);
    return { first: this.denials.length === 1, exceeded: this.denials.length > limit };
  }

  /** Sends unless the socket is gone; false when the frame could not be queued. */
  send(text: string): boolean {
    if (this.closed) return false;
    return this.socket.send(text) !== 'dropped';
  }
}
