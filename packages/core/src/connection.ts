import type { Link, SpanContext } from '@opentelemetry/api';
import type { AdmissionTicket } from './admission.js';
import type { ClientSocket } from './ports.js';
import { isSampled, linkTo, QuietTrace } from './tracing.js';

/** One open socket as core tracks it. The transport holds it as the socket's user data. */
export class Connection {
  readonly id: string;
  readonly userId: string;
  readonly path: string;
  readonly origin: string | undefined;
  readonly tokenHash: string;
  readonly openedAt: number;
  /** Links every message span to the upgrade span (computed once; only for traced connections). */
  readonly traceLinks: Link[] | undefined;
  closed = false;
  private readonly upgradeTrace: SpanContext | undefined;
  private quietTrace: QuietTrace | undefined;
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
    this.openedAt = now;
    const traced = isSampled(ticket.traceContext);
    this.traceLinks = traced ? linkTo(ticket.traceContext) : undefined;
    this.upgradeTrace = traced ? undefined : ticket.traceContext;
  }

  /**
   * Whether this connection's messages are traced, each as its own `ws.message` trace linked to
   * the upgrade: decided once, by whether the upgrade's span was sampled (docs/OBSERVABILITY.md).
   */
  get traced(): boolean {
    return this.traceLinks !== undefined;
  }

  /** What the messages of an untraced connection run under (see QuietTrace); built on first use. */
  get quiet(): QuietTrace {
    this.quietTrace ??= new QuietTrace(this.upgradeTrace);
    return this.quietTrace;
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
