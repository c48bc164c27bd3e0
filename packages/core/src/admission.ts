import { context, SpanStatusCode, trace, type Span, type SpanContext } from '@opentelemetry/api';
import { rejectionBody, UpgradeRejections, type UpgradeRejectionCode } from '@wsgw/protocol';
import { tokenFingerprint } from './fingerprint.js';
import { IdSource } from './ids.js';
import type { GatewayMetrics } from './metrics.js';
import type { OriginPolicy } from './origin.js';
import {
  SessionBackendUnavailableError,
  type ConnectionLeases,
  type Logger,
  type SessionResult,
  type SessionValidator,
} from './ports.js';
import {
  contextFromHeaders,
  failSpan,
  hasTrace,
  inChildSpan,
  SpanAttr,
  SpanNames,
  startServerSpan,
  traceLogFields,
} from './tracing.js';
import { SessionCheckGate, type UpgradeThrottle } from './upgrade-throttle.js';

/** Longer tokens are refused before any validator sees them. */
export const MAX_TOKEN_LENGTH = 8192;

/** What the transport copied out of the upgrade request before the first await. */
export interface UpgradeRequest {
  path: string;
  origin: string | undefined;
  token: string | undefined;
  remoteAddress: string;
  /** W3C trace context headers of the upgrade request, when the client sent them. */
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/** A granted upgrade: the slot is held until `release` (or the socket closes). */
export interface AdmissionTicket {
  connectionId: string;
  userId: string;
  path: string;
  origin: string | undefined;
  tokenHash: string;
  /** The client's address (its security log lines name it). */
  remoteAddress?: string | undefined;
  /** The upgrade's span, which the connection's message spans link to. */
  traceContext?: SpanContext | undefined;
}

export interface Rejection {
  code: UpgradeRejectionCode;
  status: number;
  body: string;
  retryAfterSeconds?: number;
}

export type Admission =
  | { admitted: true; ticket: AdmissionTicket }
  | { admitted: false; rejection: Rejection }
  /** The client left during the checks; whatever was taken has been given back. */
  | { admitted: false; rejection: null };

export interface AdmissionDeps {
  origins: OriginPolicy;
  sessions: SessionValidator;
  leases: ConnectionLeases;
  isDraining: () => boolean;
  /** Extra reason to refuse with `unavailable` (shared state unreachable in `closed` mode). */
  isUnavailable: () => boolean;
  throttle?: UpgradeThrottle | undefined;
  metrics: GatewayMetrics;
  log: Logger;
}

export interface AbortFlag {
  readonly aborted: boolean;
}

const OUTAGE_LOG_MS = 10_000;

/**
 * Runs the checks of CONTRACT §4 in their order: origin -> session -> draining -> unavailable
 * -> global limit -> user limit. The slot is checked and taken in one atomic step by the leases.
 */
export class UpgradeAdmission {
  private readonly connectionIds = new IdSource();
  /** Session backend outages: one warning per OUTAGE_LOG_MS, with how many refusals it stands for. */
  private outageLoggedAt = -Infinity;
  private outageRefusals = 0;
  /** Session checks in flight per address, kept within the failures the throttle still allows. */
  private readonly sessionChecks: SessionCheckGate | undefined;

  constructor(private readonly deps: AdmissionDeps) {
    this.sessionChecks = deps.throttle ? new SessionCheckGate(deps.throttle) : undefined;
  }

  /**
   * One `ws.upgrade` span per call (continuing the client's `traceparent`), with the session and
   * slot checks as child spans and the origin check as an event.
   *
   * Not async itself: the checks run in one async frame (`check`), which records the outcome and
   * ends the span as it returns. A second frame awaiting the first cost ~0.5 KB per upgrade.
   * Never throws: whatever fails (a custom propagator reading `traceparent`, say) rejects.
   */
  admit(req: UpgradeRequest, abort: AbortFlag): Promise<Admission> {
    try {
      const parent = contextFromHeaders(req.traceparent, req.tracestate);
      const span = startServerSpan(SpanNames.upgrade, parent);
      if (span.isRecording()) {
        span.setAttribute(SpanAttr.path, req.path);
        span.setAttribute('client.address', req.remoteAddress);
        if (req.origin !== undefined) span.setAttribute(SpanAttr.origin, req.origin);
      }
      // Untraced (no SDK, no client trace): no context to make active, the span is a stand-in.
      return hasTrace(span)
        ? context.with(trace.setSpan(parent, span), () => this.check(req, abort, span))
        : this.check(req, abort, span);
    } catch (err) {
      this.deps.metrics.connectionError(req.path, 'upgrade_failed');
      return Promise.reject(err);
    }
  }

  private async check(req: UpgradeRequest, abort: AbortFlag, span: Span): Promise<Admission> {
    try {
      const { deps } = this;
      const originAllowed = deps.origins.allowsUpgradeFrom(req.origin);
      if (span.isRecording()) span.addEvent('origin.checked', { allowed: originAllowed });
      if (!originAllowed) {
        deps.log.warn(
          { event: 'security.origin_rejected', origin: req.origin, path: req.path, ip: req.remoteAddress },
          'upgrade refused: origin not allowed',
        );
        return this.reject(span, req, 'origin_not_allowed');
      }

      const token = req.token;
      // Log lines after an await carry the span's ids themselves (no async context propagation).
      const traced = traceLogFields(span);
      if (token === undefined || token === '') {
        this.logSessionInvalid(req, 'missing', undefined, traced);
        return this.reject(span, req, 'session_invalid');
      }
      if (token.length > MAX_TOKEN_LENGTH) {
        // No validator needs more; refusing early keeps hashing and lookups cheap for junk.
        this.logSessionInvalid(req, 'too_long', undefined, traced);
        return this.reject(span, req, 'session_invalid');
      }
      const tokenHash = tokenFingerprint(token);
      if (span.isRecording()) span.setAttribute(SpanAttr.tokenHash, tokenHash);

      const { sessionChecks } = this;
      if (sessionChecks) {
        // Nearly always a turn at once; a promise only when the address has checks to wait for.
        const entry = sessionChecks.enter(req.remoteAddress, abort);
        const turn = entry instanceof Promise ? await entry : entry;
        if (turn.kind === 'aborted') return this.aborted(span);
        if (turn.kind === 'refused') {
          deps.log.warn(
            { event: 'security.session_invalid', reason: turn.reason, path: req.path, ip: req.remoteAddress, ...traced },
            turn.reason === 'too_many_failures'
              ? 'upgrade refused: too many failed session checks from this address'
              : 'upgrade refused: too many upgrades from this address waiting for a session check',
          );
          return this.reject(span, req, 'too_many_upgrades', turn.retryAfterMs);
        }
      }

      let result: SessionResult;
      // The turn lasts until the failure is recorded: the throttle's count must include it before
      // the address's next check starts.
      try {
        try {
          result = await (hasTrace(span)
            ? inChildSpan(SpanNames.sessionValidate, span, async (child) => {
                const r = await deps.sessions.validate(token);
                if (child.isRecording()) {
                  child.setAttribute('wsgw.session.validator', deps.sessions.kind);
                  child.setAttribute('wsgw.session.valid', r.valid);
                }
                return r;
              })
            : deps.sessions.validate(token));
        } catch (err) {
          if (!(err instanceof SessionBackendUnavailableError)) {
            deps.log.error({ err, path: req.path, token_hash: tokenHash, ...traced }, 'session validator failed');
          } else {
            this.logOutage(err);
          }
          if (abort.aborted) return this.aborted(span);
          // CONTRACT §4 puts draining before unavailable: a replica going away says so first.
          return this.reject(span, req, deps.isDraining() ? 'draining' : 'unavailable');
        }
        if (!result.valid) {
          this.logSessionInvalid(req, result.reason, tokenHash, traced);
          if (deps.throttle) await deps.throttle.failed(req.remoteAddress);
          return abort.aborted ? this.aborted(span) : this.reject(span, req, 'session_invalid');
        }
      } finally {
        sessionChecks?.leave(req.remoteAddress);
      }
      if (abort.aborted) return this.aborted(span);

      if (deps.isDraining()) return this.reject(span, req, 'draining');
      if (deps.isUnavailable()) return this.reject(span, req, 'unavailable');

      const { userId } = result.session;
      const connectionId = this.connectionIds.nextFlat();
      if (span.isRecording()) {
        span.setAttribute(SpanAttr.userId, userId);
        span.setAttribute(SpanAttr.connectionId, connectionId);
      }
      let decision;
      try {
        decision = await (hasTrace(span)
          ? inChildSpan(SpanNames.slotAcquire, span, async (child) => {
              const d = await deps.leases.acquire(connectionId, userId);
              if (child.isRecording()) child.setAttribute(SpanAttr.outcome, d.granted ? 'granted' : d.reason);
              return d;
            })
          : deps.leases.acquire(connectionId, userId));
      } catch (err) {
        deps.log.error({ err, path: req.path, user_id: userId, ...traced }, 'connection slot store failed');
        // The call may have taken the slot before failing: give it back (idempotent by id).
        await this.releaseQuietly(connectionId, userId);
        return abort.aborted ? this.aborted(span) : this.reject(span, req, 'unavailable');
      }
      if (!decision.granted) {
        if (decision.reason !== 'unavailable') {
          deps.log.warn(
            {
              event: 'security.connection_limit',
              reason: decision.reason,
              path: req.path,
              origin: req.origin,
              ip: req.remoteAddress,
              user_id: userId,
              token_hash: tokenHash,
              ...traced,
            },
            'upgrade refused: connection limit',
          );
        }
        return abort.aborted
          ? this.aborted(span)
          : this.reject(span, req, decision.reason, decision.retryAfterMs);
      }
      if (abort.aborted || deps.isDraining()) {
        await this.releaseQuietly(connectionId, userId);
        return abort.aborted ? this.aborted(span) : this.reject(span, req, 'draining');
      }
      return this.settle(span, {
        admitted: true,
        ticket: { connectionId, userId, path: req.path, origin: deps.origins.shared(req.origin), tokenHash, remoteAddress: req.remoteAddress },
      });
    } catch (err) {
      this.deps.metrics.connectionError(req.path, 'upgrade_failed');
      failSpan(span, err);
      span.end();
      throw err;
    }
  }

  /** Every answer of `check` goes through here: the outcome on the span, which then ends. */
  /** Every upgrade is refused 503 while the session backend is out: operators must hear why. */
  private logOutage(err: SessionBackendUnavailableError): void {
    this.outageRefusals++;
    const now = Date.now();
    if (now - this.outageLoggedAt < OUTAGE_LOG_MS) return;
    this.outageLoggedAt = now;
    this.deps.log.warn(
      { reason: err.message, validator: this.deps.sessions.kind, refused: this.outageRefusals },
      'session backend unavailable; upgrades refused with 503 unavailable',
    );
    this.outageRefusals = 0;
  }

  private settle(span: Span, admission: Admission): Admission {
    if (span.isRecording()) recordOutcome(span, admission);
    if (admission.admitted) admission.ticket.traceContext = span.spanContext();
    span.end();
    return admission;
  }

  private aborted(span: Span): Admission {
    return this.settle(span, { admitted: false, rejection: null });
  }

  /** The transport could not open the socket after all (client gone): give the slot back. */
  async abandon(ticket: AdmissionTicket): Promise<void> {
    await this.releaseQuietly(ticket.connectionId, ticket.userId);
  }

  private async releaseQuietly(connectionId: string, userId: string): Promise<void> {
    try {
      await this.deps.leases.release(connectionId, userId);
    } catch (err) {
      // The lease expires by itself; nothing else to do.
      this.deps.log.warn({ err, connection_id: connectionId }, 'slot release failed; lease will expire');
    }
  }

  private logSessionInvalid(
    req: UpgradeRequest,
    reason: string,
    tokenHash: string | undefined,
    traced: Readonly<Record<string, string>>,
  ): void {
    this.deps.log.warn(
      {
        event: 'security.session_invalid',
        reason,
        path: req.path,
        origin: req.origin,
        ip: req.remoteAddress,
        token_hash: tokenHash,
        ...traced,
      },
      'upgrade refused: session invalid',
    );
  }

  private reject(span: Span, req: UpgradeRequest, code: UpgradeRejectionCode, retryAfterMs?: number): Admission {
    this.deps.metrics.upgradeRejected(req.path, code);
    const rejection: Rejection = {
      code,
      status: UpgradeRejections[code].status,
      body: rejectionBody(code),
    };
    if (retryAfterMs !== undefined) rejection.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    return this.settle(span, { admitted: false, rejection });
  }
}

function recordOutcome(span: Span, admission: Admission): void {
  if (admission.admitted) {
    span.setAttribute(SpanAttr.outcome, 'admitted');
    span.setAttribute(SpanAttr.status, 101);
    return;
  }
  const { rejection } = admission;
  if (rejection === null) {
    span.setAttribute(SpanAttr.outcome, 'aborted');
    return;
  }
  span.setAttribute(SpanAttr.outcome, rejection.code);
  span.setAttribute(SpanAttr.status, rejection.status);
  // A refusal the client earned (4xx) is not a server error; a 5xx is.
  if (rejection.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: rejection.code });
}
