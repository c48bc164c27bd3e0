import type { Link, SpanContext } from '@opentelemetry/api';
import type { AdmissionTicket } from './admission.js';
import type { ClientSocket } from './ports.js';
import { isSampled, linkTo, QuietTrace } from './tracing.js';

/**
 * Where `openedAt` is counted from: the first connection's open. An offset of under ~24 days is a
 * small integer, stored in the object itself; a time since 1970 is a boxed double, 16 B more per
 * idle socket.
 */
let openedBase: number | undefined;

/** One open socket as core tracks it. The transport holds it as the socket's user data. */
export class Connection {
  readonly id: string;
  readonly userId: string;
  readonly path: string;
  readonly origin: string | undefined;
  readonly tokenHash: string;
  closed = false;
  private readonly openedOffset: number;
  /**
   * One field for the trace, two fewer per idle socket: the links to the upgrade span when the
   * connection is traced (decided once), else the upgrade's span context, replaced by the
   * QuietTrace built from it on first use.
   */
  private trace: Link[] | QuietTrace | SpanContext | undefined;
  /**
   * Times of this socket's rate-limited frames, oldest first, within the last 60 s. Made on the
   * first denial: most sockets never have one, and an idle socket should cost little.
   */
  private denials: number[] | undefined;

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
    openedBase ??= now;
    this.openedOffset = now - openedBase;
    this.trace = isSampled(ticket.traceContext) ? linkTo(ticket.traceContext) : ticket.traceContext;
  }

  /** When the socket opened, on the clock core was given. */
  get openedAt(): number {
    return (openedBase as number) + this.openedOffset;
  }

  /** Links every message span to the upgrade span (computed once; only for traced connections). */
  get traceLinks(): Link[] | undefined {
    return Array.isArray(this.trace) ? this.trace : undefined;
  }

  /**
   * Whether this connection's messages are traced, each as its own `ws.message` trace linked to
   * the upgrade: decided once, by whether the upgrade's span was sampled (docs/OBSERVABILITY.md).
   */
  get traced(): boolean {
    return Array.isArray(this.trace);
  }

  /** What the messages of an untraced connection run under (see QuietTrace); built on first use. */
  get quiet(): QuietTrace {
    const { trace } = this;
    if (trace instanceof QuietTrace) return trace;
    // Asked of untraced connections (the field holds the upgrade's span context); a traced one keeps its links.
    if (Array.isArray(trace)) return new QuietTrace(undefined);
    const quiet = new QuietTrace(trace);
    this.trace = quiet;
    return quiet;
  }

  /**
   * Records a rate-limited frame and answers whether this socket has now gone past `limit`
   * denials in the last 60 s (CONTRACT §5: such a socket is closed with 1008).
   */
  recordDenial(now: number, limit: number): { first: boolean; exceeded: boolean } {
    const denials = (this.denials ??= []);
    const horizon = now - 60_000;
    while (denials.length > 0 && (denials[0] as number) <= horizon) denials.shift();
    denials.push(now);
    return { first: denials.length === 1, exceeded: denials.length > limit };
  }

  /** Sends unless the socket is gone; false when the frame could not be queued. */
  send(text: string): boolean {
    if (this.closed) return false;
    return this.socket.send(text) !== 'dropped';
  }
}
