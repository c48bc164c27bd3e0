import { ROOT_CONTEXT, SpanStatusCode, type Span } from '@opentelemetry/api';
import {
  CloseCode,
  errorFrame,
  MessageErrorCode,
  parseClientMessage,
  replyFrame,
  type ClientMessage,
} from '@wsgw/protocol';
import type { Connection } from './connection.js';
import { FloodWatch } from './flood.js';
import { closeErrorReason, type GatewayMetrics } from './metrics.js';
import { IdSource } from './ids.js';
import { OpenConnections } from './open-connections.js';
import { PendingRequests } from './pending.js';
import { SharedStateUnavailableError } from './ports.js';
import type {
  AgentBus,
  AgentReply,
  Clock,
  ConnectionLeases,
  Logger,
  MessageRateLimiter,
  PublishResult,
  RateDecision,
} from './ports.js';
import { failSpan, SpanAttr, SpanNames, startServerSpan, traceCarrier, traceLogFields } from './tracing.js';

/** retry_after_ms for a frame refused because too many of its socket's frames await a decision. */
const UNDECIDED_RETRY_MS = 1000;

export interface HubOptions {
  replicaId: string;
  maxMessagesPerMinute: number;
  agentReplyTimeoutMs: number;
  /** How often overdue requests are looked for; bounds how late `agent_timeout` can be. */
  sweepIntervalMs?: number;
  /**
   * How often sockets with a request in flight are shown to be in use (Connection.keepAlive), so
   * the idle timeout, which counts only what clients send, does not cut a reply that is still
   * streaming or still awaited. Half the idle timeout; 0 or absent: never.
   */
  keepAliveIntervalMs?: number;
}

export interface HubDeps {
  leases: ConnectionLeases;
  rates: MessageRateLimiter;
  bus: AgentBus;
  clock: Clock;
  metrics: GatewayMetrics;
  log: Logger;
}

/**
 * Open connections and the life of every message on them: rate limit -> parse -> agent bus ->
 * replies back. Each message gets exactly one outcome (replies or one error frame).
 */
export class ConnectionHub {
  private readonly connections = new OpenConnections();
  private readonly pending: PendingRequests;
  private readonly requestIds = new IdSource();
  /** Sockets that keep sending past their rate limit (closed with 1008). */
  private readonly floods: FloodWatch;
  /** Frames of every socket whose rate decision has not come back yet. */
  private deciding = 0;
  private readonly sweeper: NodeJS.Timeout;
  private readonly keeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: HubOptions,
    private readonly deps: HubDeps,
  ) {
    this.pending = new PendingRequests(options.agentReplyTimeoutMs);
    this.floods = new FloodWatch(options.maxMessagesPerMinute);
    this.sweeper = setInterval(() => this.expireOverdue(), options.sweepIntervalMs ?? 250);
    this.sweeper.unref();
    if (options.keepAliveIntervalMs) {
      this.keeper = setInterval(() => this.keepWaitingAlive(), options.keepAliveIntervalMs);
      this.keeper.unref();
    }
    deps.bus.onReply((reply) => this.deliver(reply));
    deps.leases.onLost((ids) => this.closeLost(ids));
  }

  get openCount(): number {
    return this.connections.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Messages that may still get an outcome on an open socket: those whose rate decision is still
   * on its way, and requests awaiting replies for sockets still open (the shutdown drain waits on
   * this; a request of a closed socket has nobody left to answer).
   */
  get unanswered(): number {
    return this.deciding + this.pending.countOpen();
  }

  /** The transport's socket for an admitted upgrade has opened; core tracks it until `closed`. */
  open(connection: Connection): void {
    connection.markOpened(this.deps.clock.now());
    this.connections.add(connection);
    this.deps.metrics.connectionAccepted(connection.path);
  }

  /**
   * A frame arrived. `text` is null for a binary frame. On a traced connection each frame gets a
   * `ws.message` span (a new trace, linked to the upgrade's); it ends with the frame's outcome, or
   * with the agent's last reply. Frames of other connections start no span (Connection.quiet).
   *
   * No promise on this path: the rate decision comes back through a callback (a batch of them at
   * once from Redis), and an in-process agent's reply may be sent before `publish` returns.
   * Never throws.
   */
  message(connection: Connection, text: string | null): void {
    const span = connection.traced
      ? startServerSpan(SpanNames.message, ROOT_CONTEXT, connection.traceLinks)
      : connection.quiet.span;
    if (span.isRecording()) {
      span.setAttribute(SpanAttr.connectionId, connection.id);
      span.setAttribute(SpanAttr.userId, connection.userId);
    }
    // A socket with more frames awaiting their decision than a minute's limit (Redis slow to
    // answer, a client flooding meanwhile) is refused here, without holding the frame: at most
    // that many of them could be allowed anyway, and each one waiting holds its text in memory.
    if (connection.deciding >= this.options.maxMessagesPerMinute) {
      this.rateLimited(connection, text, UNDECIDED_RETRY_MS, span);
      endSpan(span, MessageErrorCode.rateLimited, false);
      return;
    }
    connection.deciding++;
    this.deciding++;
    // Reply latency counts from here: the wait for the rate decision is the client's wait too.
    const receivedAt = this.deps.clock.now();
    // Every frame counts toward the rate limit, valid or not (CONTRACT §5). The span is passed
    // down, not made active: decisions are batched across messages, so no Redis call belongs to
    // this span alone.
    this.deps.rates.consume(connection.userId, (decision, err) => {
      connection.deciding--;
      this.deciding--;
      try {
        this.handle(connection, text, span, decision, err, receivedAt);
      } catch (thrown) {
        this.failed(connection, span, thrown);
      }
    });
  }

  /** What the message path did not expect: logged, its span failed; the socket stays up. */
  private failed(connection: Connection, span: Span, err: unknown): void {
    failSpan(span, err);
    span.end();
    this.deps.log.error({ err, connection_id: connection.id, ...traceLogFields(span) }, 'message handling failed');
  }

  /** Every outcome ends the span, except a request handed to an agent (its replies end it). */
  private handle(
    connection: Connection,
    text: string | null,
    span: Span,
    decision: RateDecision | null,
    err: unknown,
    receivedAt: number,
  ): void {
    const { deps } = this;
    if (decision === null) {
      // During an outage in `closed` mode every message lands here: one line each would flood the log.
      if (!(err instanceof SharedStateUnavailableError)) {
        deps.log.error({ err, connection_id: connection.id, ...traceLogFields(span) }, 'rate limiter failed');
      }
      this.answer(connection, errorFrame(MessageErrorCode.unavailable, 'rate limiter unavailable', peekId(text)));
      endSpan(span, MessageErrorCode.unavailable, true);
      return;
    }
    if (connection.closed) {
      endSpan(span, 'connection_gone', false);
      return;
    }

    if (!decision.allowed) {
      this.rateLimited(connection, text, decision.retryAfterMs, span);
      endSpan(span, MessageErrorCode.rateLimited, false);
      return;
    }
    if (text === null) {
      deps.metrics.messageRejected('binary');
      this.answer(connection, errorFrame(MessageErrorCode.invalidMessage, 'binary frames are not accepted; send JSON text', undefined));
      endSpan(span, MessageErrorCode.invalidMessage, false);
      return;
    }
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      deps.metrics.messageRejected('invalid');
      this.answer(connection, errorFrame(MessageErrorCode.invalidMessage, parsed.reason, parsed.id));
      endSpan(span, MessageErrorCode.invalidMessage, false);
      return;
    }
    this.route(connection, parsed.value, span, receivedAt);
  }

  private route(connection: Connection, msg: ClientMessage, span: Span, receivedAt: number): void {
    const { deps } = this;
    const requestId = this.requestIds.next();
    if (span.isRecording()) {
      span.setAttribute(SpanAttr.agentType, msg.agent_type);
      if (msg.pillar !== undefined) span.setAttribute(SpanAttr.pillar, msg.pillar);
      span.setAttribute(SpanAttr.requestId, requestId);
    }
    // Registered before publishing: an in-process agent may reply before publish returns.
    this.pending.add(requestId, connection, msg.agent_type, msg.conversation_id, msg.id, receivedAt, span);
    let result: PublishResult | Promise<PublishResult>;
    try {
      result = deps.bus.publish({
        requestId,
        connectionId: connection.id,
        replicaId: this.options.replicaId,
        userId: connection.userId,
        agentType: msg.agent_type,
        message: msg.message,
        conversationId: msg.conversation_id,
        clientId: msg.id,
        pillar: msg.pillar,
        trace: connection.traced ? traceCarrier(span) : connection.quiet.carrier,
      });
    } catch (err) {
      result = this.publishFailed(err, connection, msg, span);
    }
    this.pending.published();
    if (result instanceof Promise) {
      result
        .catch((err: unknown) => this.publishFailed(err, connection, msg, span))
        .then((settled) => this.published(settled, requestId, connection, msg, span))
        .catch((err: unknown) => this.failed(connection, span, err));
    } else {
      this.published(result, requestId, connection, msg, span);
    }
  }

  private publishFailed(err: unknown, connection: Connection, msg: ClientMessage, span: Span): PublishResult {
    this.deps.log.error(
      { err, agent_type: msg.agent_type, connection_id: connection.id, ...traceLogFields(span) },
      'agent bus publish failed',
    );
    return { accepted: false, code: 'unavailable', message: 'agent bus unavailable' };
  }

  /** Accepted (or already answered): the pending request owns the span now. Refused: answered here. */
  private published(result: PublishResult, requestId: string, connection: Connection, msg: ClientMessage, span: Span): void {
    // Counted by agent type only once an agent took it (CONTRACT §7: low-cardinality attributes).
    this.deps.metrics.messageReceived(result.accepted ? msg.agent_type : null, msg.pillar);
    if (result.accepted || !this.pending.get(requestId)) return;
    this.pending.delete(requestId);
    this.answer(connection, errorFrame(result.code, result.message, msg.id));
    endSpan(span, result.code, result.code === 'unavailable');
  }

  private rateLimited(connection: Connection, text: string | null, retryAfterMs: number, span: Span): void {
    const { deps } = this;
    deps.metrics.rateLimitExceeded();
    const { first, exceeded } = this.floods.denied(connection, deps.clock.now());
    if (first || exceeded) {
      deps.log.warn(
        {
          event: 'security.rate_limited',
          user_id: connection.userId,
          connection_id: connection.id,
          path: connection.path,
          origin: connection.origin,
          ip: connection.ip,
          token_hash: connection.tokenHash,
          closing: exceeded,
          ...traceLogFields(span),
        },
        exceeded ? 'closing socket that keeps flooding' : 'message rate limit reached',
      );
    }
    this.answer(
      connection,
      errorFrame(MessageErrorCode.rateLimited, 'message rate limit reached', peekId(text), {
        retry_after_ms: Math.max(1, Math.ceil(retryAfterMs)),
      }),
    );
    if (exceeded) this.closeConnection(connection, CloseCode.policy, 'rate limit exceeded repeatedly');
  }

  /** A frame above WEBSOCKET_MAX_PAYLOAD_BYTES: 1009, and it counts as nothing else. */
  tooBig(connection: Connection): void {
    this.deps.metrics.messageRejected('too_big');
    this.closeConnection(connection, CloseCode.tooBig, 'message too big');
  }

  /** A reply from an agent for a request of this replica. */
  deliver(reply: AgentReply): void {
    const { deps } = this;
    const entry = this.pending.get(reply.requestId);
    if (!entry) {
      // Already answered (a duplicate delivery after a worker died) or timed out.
      deps.metrics.replyDropped('unknown_request');
      return;
    }
    if (entry.connection.closed) {
      this.pending.delete(reply.requestId);
      deps.metrics.replyDropped('connection_gone');
      if (entry.span) endSpan(entry.span, 'connection_gone', false);
      return;
    }
    if (reply.kind === 'lost') {
      this.pending.delete(reply.requestId);
      deps.metrics.replyDropped('lost');
      deps.log.warn({ agent_type: entry.agentType, connection_id: entry.connection.id }, 'part of an agent reply was lost; the request ends with unavailable');
      this.answer(entry.connection, errorFrame(MessageErrorCode.unavailable, `part of the reply of agent ${entry.agentType} was lost`, entry.clientId));
      if (entry.span) endSpan(entry.span, 'reply_lost', true);
      return;
    }
    let frame: string;
    try {
      frame = replyFrame(reply.kind, entry, reply.message, reply.done);
    } catch (err) {
      // A message with no JSON form (a BigInt, a cycle) from an in-process agent: dropped like a
      // worker drops it. The request stays pending, so without a final reply it gets agent_timeout.
      deps.metrics.replyDropped('not_json');
      deps.log.error({ err, agent_type: entry.agentType, connection_id: entry.connection.id }, 'agent reply is not JSON-serialisable; dropped');
      return;
    }
    const final = reply.kind === 'response' || reply.done === true;
    const now = deps.clock.now();
    if (!entry.replied) deps.metrics.replyLatency(entry.agentType, now - entry.receivedAt);
    if (final) this.pending.delete(reply.requestId);
    else this.pending.touch(reply.requestId, entry, now);
    const sent = this.answer(entry.connection, frame);
    if (final && entry.span) endSpan(entry.span, sent ? 'replied' : 'backpressure', !sent);
  }

  /** The transport says the socket closed (by either side). */
  closed(connection: Connection, code: number): void {
    if (connection.closed) return;
    connection.closed = true;
    this.connections.remove(connection);
    const { deps } = this;
    deps.metrics.connectionClosed(connection.path, deps.clock.now() - connection.openedAt, connection.origin, code);
    const error = closeErrorReason(code);
    if (error !== undefined) deps.metrics.connectionError(connection.path, error);
    deps.leases.release(connection.id, connection.userId).catch((err: unknown) => {
      deps.log.warn({ err, connection_id: connection.id }, 'slot release failed; lease will expire');
    });
  }

  /** Closes every open socket with `code` (shutdown: 1001). */
  closeAll(code: number, reason: string): void {
    this.connections.forEach((connection) => this.closeConnection(connection, code, reason));
  }

  stop(): void {
    clearInterval(this.sweeper);
    clearInterval(this.keeper);
  }

  /** Sockets whose client waits for replies are in use, however silent the client is meanwhile. */
  private keepWaitingAlive(): void {
    for (const connection of this.pending.waitingConnections()) if (!connection.closed) connection.keepAlive();
  }

  private closeConnection(connection: Connection, code: number, reason: string): void {
    if (connection.closed) return;
    connection.closeSocket(code, reason);
    // Transports report the close through `closed`; make sure it is accounted for either way.
    this.closed(connection, code);
  }

  /**
   * Sends a frame that answers a message (a reply or an error); false when it could not be queued.
   * One the socket cannot take (the client has left more than WEBSOCKET_MAX_BACKPRESSURE_BYTES
   * unread) would leave that message with no outcome at all: the socket is closed as a slow reader.
   */
  private answer(connection: Connection, frame: string): boolean {
    if (connection.send(frame)) return true;
    if (!connection.closed) this.slowReader(connection);
    return false;
  }

  /** The client does not read what it is sent: close before its backlog grows our memory. */
  slowReader(connection: Connection): void {
    this.deps.metrics.backpressureDrop();
    this.deps.log.warn(
      { connection_id: connection.id, user_id: connection.userId },
      'client does not read its replies; closing the socket',
    );
    this.closeConnection(connection, CloseCode.policy, 'backpressure limit exceeded');
  }

  /** Rare (a replica that was paused past its leases): one walk of the open connections. */
  private closeLost(ids: string[]): void {
    const lost = new Set(ids);
    this.connections.forEach((connection) => {
      if (lost.delete(connection.id)) {
        this.deps.log.warn({ connection_id: connection.id, user_id: connection.userId }, 'connection slot lease was lost; closing');
        this.closeConnection(connection, CloseCode.internal, 'connection lease lost');
      }
      return lost.size > 0;
    });
  }

  private expireOverdue(): void {
    for (const [, entry] of this.pending.expire(this.deps.clock.now())) {
      if (entry.span) endSpan(entry.span, entry.connection.closed ? 'connection_gone' : MessageErrorCode.agentTimeout, !entry.connection.closed);
      if (entry.connection.closed) continue;
      this.answer(
        entry.connection,
        errorFrame(MessageErrorCode.agentTimeout, `agent ${entry.agentType} did not reply in time`, entry.clientId),
      );
    }
  }

  /** Runs one sweep now (tests with fake clocks). */
  sweep(): void {
    this.expireOverdue();
  }
}

/** The `id` of a frame we will not parse in full, so its error can still name it. */
function peekId(text: string | null): string | undefined {
  if (text === null || text.length > 65_536) return undefined;
  const parsed = parseClientMessage(text);
  return parsed.ok ? parsed.value.id : parsed.id;
}

/** Ends a message span with its outcome; `failed` marks outcomes that are the server's fault. */
function endSpan(span: Span, outcome: string, failed: boolean): void {
  if (span.isRecording()) {
    span.setAttribute(SpanAttr.outcome, outcome);
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
  }
  span.end();
}
