/**
 * The ports core needs from the outside world. Core never does I/O itself: transports,
 * stores and buses implement these, in memory (embedded mode, tests) or on Redis.
 * A denial is a value; an Error means the backing store could not answer.
 */

/**
 * Milliseconds on a monotonic clock, for durations and deadlines only (never a date): a step of
 * the wall clock (NTP, an operator, a VM resumed) must not move a reply deadline by the step.
 * Shared windows use Redis TIME instead.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** The subset of pino's API core uses; a pino logger satisfies it. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

// ---------------------------------------------------------------- sessions

export interface Session {
  /** What connection and message limits count by. */
  userId: string;
}

export type SessionResult = { valid: true; session: Session } | { valid: false; reason: string };

/** Thrown by a validator whose backing service cannot be reached (-> 503 `unavailable`). */
export class SessionBackendUnavailableError extends Error {
  override readonly name = 'SessionBackendUnavailableError';
}

export interface SessionValidator {
  readonly kind: string;
  validate(token: string): Promise<SessionResult>;
  close?(): Promise<void>;
}

// ---------------------------------------------------------------- connection slots

export type SlotDenial = 'global_connection_limit' | 'user_connection_limit' | 'unavailable';

export type SlotDecision =
  | { granted: true }
  | { granted: false; reason: SlotDenial; retryAfterMs: number };

/**
 * Connection slots as leases. `acquire` checks the global and per-user limits and takes the
 * slot in one atomic step, keyed by connection id so a retried call neither leaks nor counts twice.
 * Implementations keep their own leases alive (heartbeats) until `release`.
 */
export interface ConnectionLeases {
  acquire(connectionId: string, userId: string): Promise<SlotDecision>;
  /** Best effort: lease expiry covers what a failed release leaves behind. */
  release(connectionId: string, userId: string): Promise<void>;
  /**
   * Called with connection ids whose leases this replica lost (taken over after a long pause);
   * the sockets must be closed, since another replica may have been given their slots.
   */
  onLost(handler: (connectionIds: string[]) => void): void;
  /** Releases everything this replica holds (graceful shutdown). */
  releaseAll(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Thrown by a port whose shared store cannot be reached while the failure mode says to refuse
 * (`closed`). An expected state during an outage, already counted by its metric: not logged per call.
 */
export class SharedStateUnavailableError extends Error {
  override readonly name: string = 'SharedStateUnavailableError';
}

// ---------------------------------------------------------------- message rate

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/** Receives one decision, or (with `decision` null) the error that kept it from being made. */
export type RateCallback = (decision: RateDecision | null, err?: unknown) => void;

/**
 * Per-user message rate across every replica: no more than N in any 1 s and any 60 s window.
 *
 * A callback, not a promise: this runs once per message, and a store that decides in batches
 * (Redis) settles a whole batch in one loop, with no promise and no microtask per message.
 */
export interface MessageRateLimiter {
  /** Decides one message of `userId`: calls `done` exactly once, at once or later. Never throws. */
  consume(userId: string, done: RateCallback): void;
  close(): Promise<void>;
}

/** `consume` as a promise, for callers off the message path (tools, tests). */
export function consumeRate(limiter: MessageRateLimiter, userId: string): Promise<RateDecision> {
  return new Promise((resolve, reject) => {
    limiter.consume(userId, (decision, err) => (decision === null ? reject(err) : resolve(decision)));
  });
}

// ---------------------------------------------------------------- agents

/** What the gateway hands to an agent. */
export interface AgentRequest {
  /** Unique per accepted message; replies and timeouts are keyed by it. */
  requestId: string;
  connectionId: string;
  replicaId: string;
  userId: string;
  agentType: string;
  message: string;
  conversationId?: string | undefined;
  /** The client's own `id`, echoed back as `in_reply_to`. */
  clientId?: string | undefined;
  pillar?: string | undefined;
  /** W3C trace context carrier (`traceparent`, `tracestate`). */
  trace?: Record<string, string> | undefined;
}

/** One reply from an agent, addressed by the request it answers. */
export interface AgentReply {
  requestId: string;
  connectionId: string;
  /**
   * `lost`: part of the reply never arrived (a bus that can tell, by sequence numbers); the request
   * ends with an error instead of a stream with a hole in it. Final, carries no message.
   */
  kind: 'response' | 'chunk' | 'lost';
  message: unknown;
  /** For chunks: the last one of the reply. A `response` is always final. */
  done?: boolean;
}

export type PublishResult =
  | { accepted: true }
  | { accepted: false; code: 'agent_unavailable' | 'unavailable'; message: string };

/** Carries requests to agents and their replies back to this replica. */
export interface AgentBus {
  /**
   * Hands a request on. An in-process bus answers at once (a plain result, and its handler may
   * even have replied already: callers register the request before publishing); a remote bus
   * answers with a promise.
   */
  publish(request: AgentRequest): PublishResult | Promise<PublishResult>;
  /** Replies for connections on this replica. */
  onReply(handler: (reply: AgentReply) => void): void;
  close(): Promise<void>;
}

/**
 * An agent written as one function: return the reply (or a promise of it), or yield chunks for
 * streaming (an async iterable). Used by built-in agents and by agent-sdk workers alike. A reply
 * returned as a plain value is sent without waiting for a microtask.
 */
export type AgentHandler = (
  request: Readonly<AgentRequest>,
) => unknown;

// ---------------------------------------------------------------- transport

export type SendStatus = 'sent' | 'buffered' | 'dropped';

// A transport gives core its sockets by subclassing Connection (connection.ts): one object per
// socket, holding core's state and the transport's, with the two socket primitives core calls.
