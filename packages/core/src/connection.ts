import type { Link, SpanContext } from '@opentelemetry/api';
import type { AdmissionTicket } from './admission.js';
import type { SendStatus } from './ports.js';
import { isSampled, linkTo, QuietTrace } from './tracing.js';

/**
 * Where `openedAt` is counted from: the first connection's open. An offset of under ~24 days is a
 * small integer, stored in the object itself; a time since 1970 is a boxed double, 16 B more per
 * idle socket. (So is the difference of two such times until Math.floor makes it an integer again:
 * one double stored in the field and V8 boxes it in every connection.)
 */
let openedBase: number | undefined;

/** What tokenFingerprint makes: 12 lowercase hex digits. */
const FINGERPRINT = /^[0-9a-f]{12}$/;

/**
 * One socket as core tracks it, from the upgrade that admitted it to its close. A transport
 * subclasses it with the two things core asks of a socket (`write`, `closeSocket`) and keeps its own
 * per-socket state in the subclass: one object per idle socket, not a core object plus an adapter
 * pointing at each other (docs/BENCHMARKS.md, "Memory per idle socket").
 */
export abstract class Connection {
  readonly id: string;
  readonly userId: string;
  readonly path: string;
  readonly origin: string | undefined;
  /**
   * The token hash (tokenFingerprint's 12 hex digits) as two 24-bit halves, small integers kept in
   * the object itself: as a string it cost every idle socket 32 B. A hash of any other form is kept
   * as it is in `tokenLow`, so `tokenHash` always gives back what the ticket had.
   */
  private readonly tokenHigh: number;
  private readonly tokenLow: number | string;
  closed = false;
  /** Frames of this socket whose rate decision has not come back yet (ConnectionHub.message). */
  deciding = 0;
  private openedOffset = 0;
  /**
   * One field for the trace, two fewer per idle socket: the links to the upgrade span when the
   * connection is traced (decided once), else the upgrade's span context, replaced by the
   * QuietTrace built from it on first use.
   */
  private trace: Link[] | QuietTrace | SpanContext | undefined;
  /** The hub's list of open connections, kept in the connections themselves: see OpenConnections. */
  newer: Connection | null = null;
  older: Connection | null = null;

  constructor(ticket: AdmissionTicket) {
    this.id = ticket.connectionId;
    this.userId = ticket.userId;
    this.path = ticket.path;
    this.origin = ticket.origin;
    const hash = ticket.tokenHash;
    const packed = FINGERPRINT.test(hash);
    this.tokenHigh = packed ? parseInt(hash.slice(0, 6), 16) : 0;
    this.tokenLow = packed ? parseInt(hash.slice(6), 16) : hash;
    this.trace = isSampled(ticket.traceContext) ? linkTo(ticket.traceContext) : ticket.traceContext;
  }

  /** Queues one text frame on the socket (the transport's primitive behind `send`). */
  protected abstract write(text: string): SendStatus;

  /**
   * Closes the socket with this code and reason; frames already queued go out first. The transport
   * then reports the close through ConnectionHub.closed, like any other close. Core calls it once.
   */
  abstract closeSocket(code: number, reason: string): void;

  /**
   * The client's address as admission resolved it (security log lines), if the transport can tell.
   * Asked rarely (a rate-limited socket's log line): a transport may work it out then rather than
   * keep a string in every idle socket.
   */
  get ip(): string | undefined {
    return undefined;
  }

  /**
   * Shows the client's end that this socket is in use (a ping: its pong is traffic from the
   * client), so a socket waiting for a long reply is not closed as silent. No-op by default.
   */
  keepAlive(): void {}

  /** The socket opened (ConnectionHub.open), at `now` on core's clock. */
  markOpened(now: number): void {
    openedBase ??= now;
    this.openedOffset = Math.floor(now - openedBase);
  }

  /** The hash of the session token this socket opened with (never the token). */
  get tokenHash(): string {
    const { tokenLow } = this;
    if (typeof tokenLow === 'string') return tokenLow;
    return this.tokenHigh.toString(16).padStart(6, '0') + tokenLow.toString(16).padStart(6, '0');
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

  /** Sends unless the socket is gone; false when the frame could not be queued. */
  send(text: string): boolean {
    if (this.closed) return false;
    return this.write(text) !== 'dropped';
  }
}
