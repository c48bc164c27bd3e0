import type { Attributes, Counter, Histogram, Meter, ObservableResult } from '@opentelemetry/api';
import { noopMetrics, normalizeOrigin, type AgentQueueReader, type GatewayMetrics } from '@wsgw/core';
import {
  AttributeCache,
  BoundedAttributes,
  BoundedAttributes2,
  closeCodeClass,
  durationClass,
  NONE,
  OTHER,
} from './attributes.js';

/**
 * The metric names operators and dashboards rely on (CONTRACT §7 names the first five).
 * Durations are in seconds, as OpenTelemetry's semantic conventions ask.
 */
export const MetricNames = {
  connectionAccepted: 'websocket.connection.accepted',
  connectionClosed: 'websocket.connection.closed',
  connectionError: 'websocket.connection.error',
  messageReceived: 'websocket.message.received',
  rateLimitExceeded: 'websocket.rate_limit.exceeded',
  connectionsActive: 'websocket.connection.active',
  connectionDuration: 'websocket.connection.duration',
  upgradeRejected: 'websocket.upgrade.rejected',
  messageRejected: 'websocket.message.rejected',
  replyLatency: 'websocket.message.reply_latency',
  replyDropped: 'websocket.reply.dropped',
  backpressureDropped: 'websocket.backpressure.dropped',
  requestsPending: 'websocket.requests.pending',
  agentQueueDepth: 'websocket.agent.queue_depth',
  limitsFallback: 'websocket.limits.fallback',
  redisDuration: 'db.client.operation.duration',
} as const;

export interface OtelMetricsOptions {
  meter: Meter;
  /**
   * Origins allowed to open sockets (CORS_ORIGINS): closes report these as their `origin`;
   * any other (possible with `*` in development) is `other`, a missing one `none`.
   */
  knownOrigins: readonly string[];
  /**
   * Distinct agent types kept before new ones count as `other` (only types an agent served reach
   * here); each keeps at most 20 pillars of its own, further pillars counting as `other`.
   */
  maxAgentSeries?: number;
}

const SECONDS_BUCKETS_LATENCY = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const SECONDS_BUCKETS_CONNECTION = [1, 5, 15, 60, 300, 900, 1800, 3600, 14_400, 86_400];
const SECONDS_BUCKETS_REDIS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

const EMPTY: Attributes = Object.freeze({});

/**
 * Per-message counts kept as plain numbers and reported by an observable counter at each export:
 * a message costs one Map update keyed by a pre-built attribute object, where a synchronous
 * counter would hash the attributes on every `add`.
 */
class LocalCounts {
  private readonly cells = new Map<Attributes, number>();

  add(attrs: Attributes): void {
    this.cells.set(attrs, (this.cells.get(attrs) ?? 0) + 1);
  }

  report(result: ObservableResult): void {
    for (const [attrs, count] of this.cells) result.observe(count, attrs);
  }
}

/**
 * Records into a histogram at most about `perSecond` values a second per attribute set. Under load
 * it keeps every k-th value, k set from the rate seen over the last `CHECK_EVERY` values. The SDK
 * hashes a data point's attribute set on every `record` (~1 us in the gateway, more than all the
 * other telemetry of a message together), so recording every message of a busy replica was the
 * largest cost of telemetry. A systematic sample keeps the distribution: quantiles and the mean
 * (sum / count) hold; the histogram's count is the number of values kept, not of messages.
 */
export class SampledHistogram {
  private static readonly CHECK_EVERY = 1024;
  private readonly cells = new Map<Attributes, { seen: number; stride: number; since: number }>();

  constructor(
    private readonly histogram: Histogram,
    private readonly perSecond: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  record(value: number, attrs: Attributes): void {
    let cell = this.cells.get(attrs);
    if (!cell) {
      cell = { seen: 0, stride: 1, since: this.clock() };
      this.cells.set(attrs, cell);
    }
    const seen = ++cell.seen;
    if (seen % cell.stride === 0) this.histogram.record(value, attrs);
    if (seen >= SampledHistogram.CHECK_EVERY) {
      const now = this.clock();
      const perSecond = (seen * 1000) / Math.max(now - cell.since, 1);
      cell.stride = Math.max(1, Math.round(perSecond / this.perSecond));
      cell.seen = 0;
      cell.since = now;
    }
  }
}

/** Reply latencies recorded per second and agent type, at most (see SampledHistogram). */
const LATENCY_RECORDS_PER_SECOND = 1000;

/**
 * GatewayMetrics on OpenTelemetry instruments. Every attribute set is built once and reused, so a
 * message costs a Map lookup and an `add`, no allocation. Client-chosen values (agent_type, pillar)
 * are capped in number; identifiers never become attributes.
 */
export class OtelGatewayMetrics implements GatewayMetrics {
  private readonly accepted: Counter;
  private readonly closedCounter: Counter;
  private readonly errors: Counter;
  private readonly received = new LocalCounts();
  private readonly rateLimited = new LocalCounts();
  private readonly duration: Histogram;
  private readonly rejectedUpgrades: Counter;
  private readonly rejectedMessages: Counter;
  private readonly latency: SampledHistogram;
  private readonly dropped: Counter;
  private readonly backpressure: Counter;
  private readonly fallback: Counter;
  private readonly redis: Histogram;

  private readonly known: ReadonlySet<string>;
  private readonly byPath: AttributeCache;
  private readonly byPathReason: AttributeCache;
  private readonly byClose: AttributeCache;
  private readonly byReason: AttributeCache;
  private readonly byAgentPillar: BoundedAttributes2;
  private readonly byAgent: BoundedAttributes;
  private readonly byRedis: AttributeCache;
  private readonly byFallback: AttributeCache;

  private readonly openReaders: Array<() => number> = [];
  private readonly pendingReaders: Array<() => number> = [];
  private readonly queueReaders: AgentQueueReader[] = [];

  constructor(options: OtelMetricsOptions) {
    const { meter } = options;
    const maxAgentSeries = options.maxAgentSeries ?? 200;
    // Compared as the upgrade check compares them (case, a trailing slash): CORS_ORIGINS may say
    // `https://App.example.com/` of what browsers send as `https://app.example.com`.
    this.known = new Set(options.knownOrigins.filter((o) => o !== '*').map(normalizeOrigin));

    this.accepted = meter.createCounter(MetricNames.connectionAccepted, {
      description: 'WebSocket upgrades accepted (sockets opened)',
      unit: '{connection}',
    });
    this.closedCounter = meter.createCounter(MetricNames.connectionClosed, {
      description: 'WebSocket connections closed, by path, origin, close code and lifetime class (duration)',
      unit: '{connection}',
    });
    this.errors = meter.createCounter(MetricNames.connectionError, {
      description: 'Connections that failed: abnormal closes and failed upgrades, by reason',
      unit: '{connection}',
    });
    meter
      .createObservableCounter(MetricNames.messageReceived, {
        description: 'Valid client messages handed to the agent bus, by agent_type and pillar (other: no agent took it)',
        unit: '{message}',
      })
      .addCallback((result) => this.received.report(result));
    meter
      .createObservableCounter(MetricNames.rateLimitExceeded, {
        description: 'Frames dropped by the per-user message rate limit',
        unit: '{message}',
      })
      .addCallback((result) => this.rateLimited.report(result));
    this.duration = meter.createHistogram(MetricNames.connectionDuration, {
      description: 'Lifetime of closed WebSocket connections',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS_CONNECTION },
    });
    this.rejectedUpgrades = meter.createCounter(MetricNames.upgradeRejected, {
      description: 'Upgrade requests refused, by path and reason (the CONTRACT §4 error code)',
      unit: '{request}',
    });
    this.rejectedMessages = meter.createCounter(MetricNames.messageRejected, {
      description: 'Frames refused as invalid (not JSON, wrong fields, binary), by reason',
      unit: '{message}',
    });
    this.latency = new SampledHistogram(
      meter.createHistogram(MetricNames.replyLatency, {
        description:
          'From a message received to its first reply sent, by agent_type; sampled above 1000 messages/s per agent type (quantiles and mean hold, count does not: count messages with websocket.message.received)',
        unit: 's',
        advice: { explicitBucketBoundaries: SECONDS_BUCKETS_LATENCY },
      }),
      LATENCY_RECORDS_PER_SECOND,
    );
    this.dropped = meter.createCounter(MetricNames.replyDropped, {
      description: 'Agent replies not delivered (already answered, connection gone), by reason',
      unit: '{reply}',
    });
    this.backpressure = meter.createCounter(MetricNames.backpressureDropped, {
      description: 'Sockets closed because the client did not read its replies',
      unit: '{connection}',
    });
    this.fallback = meter.createCounter(MetricNames.limitsFallback, {
      description: 'Limit decisions made without Redis while it was unreachable, by store and decision',
      unit: '{decision}',
    });
    this.redis = meter.createHistogram(MetricNames.redisDuration, {
      description: 'Redis command latency (blocking reads excluded), by command and error type',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS_REDIS },
    });

    meter
      .createObservableGauge(MetricNames.connectionsActive, {
        description: 'Open WebSocket connections on this replica',
        unit: '{connection}',
      })
      .addCallback((result) => {
        let open = 0;
        for (const read of this.openReaders) open += read();
        result.observe(open);
      });
    meter
      .createObservableGauge(MetricNames.requestsPending, {
        description: 'Messages on this replica awaiting an agent reply',
        unit: '{message}',
      })
      .addCallback((result) => {
        let pending = 0;
        for (const read of this.pendingReaders) pending += read();
        result.observe(pending);
      });
    meter
      .createObservableGauge(MetricNames.agentQueueDepth, {
        description: 'Agent requests not yet taken by a worker, by agent_type',
        unit: '{message}',
      })
      .addCallback(async (result) => {
        for (const read of this.queueReaders) {
          for (const [agentType, depth] of await read()) result.observe(depth, this.byAgent.get(agentType));
        }
      });

    this.byPath = new AttributeCache((path) => ({ path }));
    this.byPathReason = new AttributeCache((key) => {
      const [path, reason] = key.split('\n');
      return { path, reason };
    });
    this.byClose = new AttributeCache((key) => {
      const [path, origin, code, duration] = key.split('\n');
      return { path, origin, code, duration };
    });
    this.byReason = new AttributeCache((reason) => ({ reason }));
    this.byAgentPillar = new BoundedAttributes2('agent_type', 'pillar', maxAgentSeries);
    this.byAgent = new BoundedAttributes('agent_type', maxAgentSeries);
    this.byRedis = new AttributeCache((key) => {
      const [command, error] = key.split('\n');
      return error
        ? { 'db.system.name': 'redis', 'db.operation.name': command, 'error.type': error }
        : { 'db.system.name': 'redis', 'db.operation.name': command };
    });
    this.byFallback = new AttributeCache((key) => {
      const [store, decision] = key.split('\n');
      return { store, decision };
    });
  }

  // The hot path (per message): Map lookups and a number increment.
  messageReceived(agentType: string | null, pillar: string | undefined): void {
    this.received.add(this.byAgentPillar.get(agentType, pillar));
  }

  replyLatency(agentType: string, ms: number): void {
    this.latency.record(ms / 1000, this.byAgent.get(agentType));
  }

  rateLimitExceeded(): void {
    this.rateLimited.add(EMPTY);
  }

  connectionAccepted(path: string): void {
    this.accepted.add(1, this.byPath.get(path));
  }

  connectionClosed(path: string, durationMs: number, origin: string | undefined, code: number): void {
    const listed = origin === undefined ? undefined : normalizeOrigin(origin);
    const originClass = listed === undefined ? NONE : this.known.has(listed) ? listed : OTHER;
    this.closedCounter.add(
      1,
      this.byClose.get(`${path}\n${originClass}\n${closeCodeClass(code)}\n${durationClass(durationMs)}`),
    );
    this.duration.record(durationMs / 1000, this.byPath.get(path));
  }

  connectionError(path: string, reason: string): void {
    this.errors.add(1, this.byPathReason.get(`${path}\n${reason}`));
  }

  upgradeRejected(path: string, reason: string): void {
    this.rejectedUpgrades.add(1, this.byPathReason.get(`${path}\n${reason}`));
  }

  messageRejected(reason: string): void {
    this.rejectedMessages.add(1, this.byReason.get(reason));
  }

  replyDropped(reason: string): void {
    this.dropped.add(1, this.byReason.get(reason));
  }

  backpressureDrop(): void {
    this.backpressure.add(1, EMPTY);
  }

  redisCall(command: string, durationMs: number, ok: boolean): void {
    this.redis.record(durationMs / 1000, this.byRedis.get(ok ? command : `${command}\nerror`));
  }

  fallbackDecision(store: string, decision: string): void {
    this.fallback.add(1, this.byFallback.get(`${store}\n${decision}`));
  }

  observeOpenConnections(read: () => number): void {
    this.openReaders.push(read);
  }

  observePendingRequests(read: () => number): void {
    this.pendingReaders.push(read);
  }

  observeAgentQueues(read: AgentQueueReader): void {
    this.queueReaders.push(read);
  }
}

/** OpenTelemetry metrics when a meter is given (SDK running), the no-op otherwise. */
export function createGatewayMetrics(meter: Meter | undefined, knownOrigins: readonly string[]): GatewayMetrics {
  return meter ? new OtelGatewayMetrics({ meter, knownOrigins }) : noopMetrics;
}
