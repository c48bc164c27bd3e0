import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { AGENT_TYPE_RULE, isAgentType, runAgentHandler, type AgentHandler, type AgentRequest, type Logger } from '@wsgw/core';
import {
  AgentStreams,
  connectRedis,
  createRedisClient,
  redisKeys,
  type Delivery,
  type OutgoingReply,
  type RedisClient,
} from '@wsgw/redis';
import { Outbox } from './outbox.js';

export interface AgentWorkerOptions {
  agentType: string;
  handler: AgentHandler;
  /** `redis://` or `rediss://` (CONTRACT §2 REDIS_URL). */
  redisUrl: string;
  /** REDIS_KEY_PREFIX of the gateways this worker serves. */
  keyPrefix?: string;
  /** Unique per worker process; names its consumer and its liveness lease. */
  workerId?: string;
  /** Requests handled at once. */
  concurrency?: number;
  /** How often the liveness lease is renewed; it lapses after three missed beats. */
  heartbeatMs?: number;
  /**
   * Visibility timeout: a request taken by a worker that has not answered it, nor renewed it,
   * for this long (the worker died or froze) is taken over by another live worker.
   */
  claimIdleMs?: number;
  /**
   * A handler silent (no reply, no chunk) for this long counts as hung: its request is no longer
   * renewed, so another worker takes it over after the visibility timeout. The handler keeps
   * running; whichever answer comes first reaches the client.
   */
  handlerSilenceMs?: number;
  /** A handler silent for this long is given up: its request is settled without an answer. */
  handlerIdleTimeoutMs?: number;
  /** A request delivered this many times (takeovers) without an answer is dropped, logged. */
  maxDeliveries?: number;
  /** On `stop`, how long in-flight handlers get to finish. */
  shutdownGraceMs?: number;
  log?: Logger;
}

interface Job {
  request: AgentRequest;
  lastOutputAt: number;
  abandoned: boolean;
  /** No longer renewed: silent too long, left for another worker to take over. */
  released: boolean;
}

const BLOCK_MS = 1000;

/**
 * One agent worker: reads its type's requests through the consumer group, runs the handler with
 * the request's trace context, writes replies to the asking replica's reply stream, keeps a
 * liveness lease, takes over requests of dead workers, and stops gracefully. Replies and
 * acknowledgements go through the `Outbox` (batched per turn, acknowledged only once answered).
 */
export class AgentWorker {
  readonly workerId: string;
  readonly agentType: string;
  private readonly client: RedisClient;
  private readonly blocking: RedisClient;
  private readonly streams: AgentStreams;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly heartbeatMs: number;
  private readonly claimIdleMs: number;
  private readonly handlerIdleMs: number;
  private readonly silenceMs: number;
  private readonly maxDeliveries: number;
  private readonly graceMs: number;
  private readonly jobs = new Map<string, Job>();
  private readonly outbox: Outbox;
  private capacityWaiters: Array<() => void> = [];
  private running = false;
  private stopping: Promise<void> | undefined;
  private readLoop: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  /** How often the read loop looks for requests other workers left (between two reads). */
  private readonly claimEveryMs: number;
  private lastPruneAt = Date.now();
  private failures = 0;

  constructor(private readonly options: AgentWorkerOptions) {
    if (!isAgentType(options.agentType)) {
      throw new Error(`agent type ${JSON.stringify(options.agentType)} must be ${AGENT_TYPE_RULE}: no client message could name it`);
    }
    this.agentType = options.agentType;
    this.workerId = options.workerId ?? defaultWorkerId();
    // Whole numbers: they reach Redis as COUNT and IDLE arguments, which refuse fractions.
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 64));
    this.heartbeatMs = Math.max(100, Math.floor(options.heartbeatMs ?? 2000));
    // Own entries are renewed every beat; the timeout must leave room for a late beat.
    this.claimIdleMs = Math.max(2 * this.heartbeatMs, Math.floor(options.claimIdleMs ?? 10_000));
    this.claimEveryMs = Math.min(2000, Math.floor(this.claimIdleMs / 2));
    this.handlerIdleMs = options.handlerIdleTimeoutMs ?? 120_000;
    // Hung handler -> released after this, taken over one visibility timeout later (CONTRACT §6:
    // another worker answers within 30 s with the defaults: 15 s + 10 s + a claim sweep).
    this.silenceMs = options.handlerSilenceMs ?? 15_000;
    this.maxDeliveries = options.maxDeliveries ?? 5;
    this.graceMs = options.shutdownGraceMs ?? 10_000;
    this.log = (options.log ?? silentLogger).child({ agent_type: this.agentType, worker_id: this.workerId });
    const name = `wsgw-agent:${this.agentType}`;
    this.client = createRedisClient(options.redisUrl, { connectionName: name, commandTimeoutMs: 2000 });
    this.blocking = createRedisClient(options.redisUrl, { connectionName: name, commandTimeoutMs: BLOCK_MS + 5000 });
    // Connection trouble surfaces as failed commands (logged where they fail).
    for (const c of [this.client, this.blocking]) c.on('error', (err: unknown) => this.log.debug({ err }, 'redis connection error'));
    this.streams = new AgentStreams(this.client, {
      keys: redisKeys(options.keyPrefix ?? 'wsgw:'),
      agentType: this.agentType,
    });
    this.outbox = new Outbox(this.streams, this.workerId, (err, what) => this.recover(err, what));
  }

  /** Requests being handled right now. */
  get inFlight(): number {
    return this.jobs.size;
  }

  /** Connects (waiting for Redis if needed), registers as live and starts serving. */
  async start(): Promise<void> {
    if (this.running || this.stopping) return;
    this.running = true;
    await Promise.all([this.ready(this.client), this.ready(this.blocking)]);
    let live = 0;
    // Redis may go away between connecting and registering: keep trying until stopped.
    for (;;) {
      if (!this.running) return;
      try {
        await this.streams.ensureGroup();
        live = await this.streams.heartbeat(this.workerId, this.leaseMs());
        break;
      } catch (err) {
        await this.recover(err, 'registering the worker failed');
      }
    }
    this.ticker = setInterval(() => void this.tick(), this.heartbeatMs);
    this.readLoop = this.read();
    this.log.info(
      { concurrency: this.concurrency, claim_idle_ms: this.claimIdleMs, live_workers: live },
      'agent worker serving',
    );
  }

  /**
   * Graceful stop: no new requests; stops counting as live at once; in-flight handlers get up to
   * the grace time to finish and their replies are written; then the connections close. Requests
   * still unfinished stay pending and are taken over by another worker.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    this.wakeReaders();
    if (wasRunning) {
      this.log.info({ in_flight: this.jobs.size }, 'agent worker stopping');
      await this.streams.leave(this.workerId).catch((err: unknown) => {
        this.log.warn({ err }, 'leaving the live-worker registry failed; the lease will lapse');
      });
      // The last read returns within its block time; what it brought is handled like the rest.
      await this.readLoop;
      const deadline = Date.now() + this.graceMs;
      while (this.jobs.size > 0 && Date.now() < deadline) await sleep(20);
      if (this.jobs.size > 0) this.log.warn({ in_flight: this.jobs.size }, 'grace time over; unfinished requests go to another worker');
      await this.outbox.drain(deadline + 2000);
      clearInterval(this.ticker);
      await this.streams.removeConsumerIfIdle(this.workerId).catch(() => false);
    }
    clearInterval(this.ticker);
    await Promise.all([quit(this.client), quit(this.blocking)]);
    this.log.info({}, 'agent worker stopped');
  }

  // ---------------------------------------------------------------- taking requests

  /**
   * Takes requests: new ones from the stream, and every `claimEveryMs` those other workers left.
   * Both in this one loop, one after the other, each asking for the slots still free: run side by
   * side, a claim and a blocked read each counted the same free slots and together began up to
   * twice `concurrency` handlers.
   */
  private async read(): Promise<void> {
    let claimAt = Date.now() + this.claimEveryMs;
    while (this.running) {
      if (Date.now() >= claimAt) {
        await this.claim();
        claimAt = Date.now() + this.claimEveryMs;
        if (!this.running) break;
      }
      const free = this.concurrency - this.jobs.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
        continue;
      }
      let deliveries: Delivery[];
      try {
        deliveries = await this.streams.read(this.blocking, this.workerId, free, BLOCK_MS);
        this.failures = 0;
      } catch (err) {
        if (!this.running) break;
        await this.recover(err, 'reading requests failed');
        continue;
      }
      for (const delivery of deliveries) this.begin(delivery);
    }
  }

  /** Takes over requests another worker took and did not answer within the visibility timeout. */
  private async claim(): Promise<void> {
    const free = this.concurrency - this.jobs.size;
    if (free <= 0) return;
    try {
      // Own released (hung) entries may be among the oldest idle ones: look past them.
      let released = 0;
      for (const job of this.jobs.values()) if (job.released) released++;
      // Entries under this worker's own name that it is not working on were read by an earlier
      // run with the same AGENT_WORKER_ID, or by a read whose reply was lost: take them back too
      // (not those it has just answered or given up on, whose settling is on its way).
      const busy = (id: string) => this.jobs.has(id) || this.outbox.isSettling(id);
      const deliveries = await this.streams.claim(this.workerId, this.claimIdleMs, free + released, busy);
      if (deliveries.length > 0) this.log.warn({ count: deliveries.length }, 'took over requests a dead or hung worker left');
      for (const delivery of deliveries) {
        // A request that every worker that took it failed to answer would go round forever.
        if ((delivery.deliveries ?? 1) > this.maxDeliveries) {
          this.log.error(
            { request_id: delivery.request?.requestId, deliveries: delivery.deliveries },
            'no worker answered this request; dropping it',
          );
          this.settle(delivery.entryId);
        } else {
          this.begin(delivery);
        }
      }
    } catch (err) {
      if (isNoGroup(err)) await this.streams.ensureGroup().catch(() => undefined);
      else this.log.debug({ err }, 'claiming abandoned requests failed; retrying later');
    }
  }

  /** Liveness lease, renewal of the requests being worked on, housekeeping. */
  private async tick(): Promise<void> {
    const now = Date.now();
    const renew: string[] = [];
    for (const [entryId, job] of this.jobs) {
      const silentMs = now - job.lastOutputAt;
      if (silentMs > this.handlerIdleMs) this.abandon(entryId, job);
      else if (silentMs <= this.silenceMs) renew.push(entryId);
      else if (!job.released) {
        job.released = true;
        this.log.warn(
          { request_id: job.request.requestId, silent_ms: silentMs },
          'agent handler silent too long; another worker may take its request over',
        );
      }
    }
    try {
      if (this.running) await this.streams.heartbeat(this.workerId, this.leaseMs());
      await this.streams.renew(this.workerId, renew, Math.floor(this.heartbeatMs / 2));
      if (this.running && now - this.lastPruneAt > 60_000) {
        this.lastPruneAt = now;
        const removed = await this.streams.pruneConsumers(10 * 60_000);
        if (removed > 0) this.log.info({ removed }, 'forgot consumers of workers long gone');
      }
    } catch (err) {
      if (isNoGroup(err)) await this.streams.ensureGroup().catch(() => undefined);
      else this.log.warn({ err }, 'heartbeat failed; the lease lapses if this goes on');
    }
  }

  // ---------------------------------------------------------------- handling

  private begin(delivery: Delivery): void {
    const { entryId, request } = delivery;
    if (this.jobs.has(entryId)) return;
    if (!request) {
      this.log.warn({ entry_id: entryId }, 'dropping a stream entry that is not a request');
      this.settle(entryId);
      return;
    }
    const job: Job = { request, lastOutputAt: Date.now(), abandoned: false, released: false };
    this.jobs.set(entryId, job);
    void this.handle(entryId, job);
  }

  private async handle(entryId: string, job: Job): Promise<void> {
    const { request } = job;
    let seq = 0;
    try {
      // The run is a span continuing the gateway's trace from `request.trace` (core's runner).
      await runAgentHandler(this.options.handler, request, (output) => {
        if (job.abandoned) return;
        job.lastOutputAt = Date.now();
        const problem = notJson(output.message);
        if (problem !== undefined) {
          // Dropped here, not written: a batch that cannot be encoded would hold up every later
          // reply of this worker. Without its final reply the request ends with agent_timeout,
          // as when a handler throws.
          this.log.error({ err: problem, request_id: request.requestId, kind: output.kind }, 'agent reply is not JSON-serialisable; dropped');
          return;
        }
        this.send({
          ...output,
          requestId: request.requestId,
          connectionId: request.connectionId,
          replicaId: request.replicaId,
          seq: seq++,
        });
      });
    } catch (err) {
      // No reply: the client gets agent_timeout. Not retried elsewhere, as it would fail again.
      this.log.error({ err, request_id: request.requestId }, 'agent handler failed');
    } finally {
      if (!job.abandoned) this.finish(entryId);
    }
  }

  private abandon(entryId: string, job: Job): void {
    job.abandoned = true;
    this.log.error(
      { request_id: job.request.requestId, silent_ms: Date.now() - job.lastOutputAt },
      'agent handler hung; giving up on its request',
    );
    // Released long ago: another worker may hold it now, and its answer must not be cut off.
    this.jobs.delete(entryId);
    this.outbox.giveUp(entryId);
    this.wakeReaders();
  }

  private finish(entryId: string): void {
    this.jobs.delete(entryId);
    this.settle(entryId);
    this.wakeReaders();
  }

  private wakeReaders(): void {
    const waiters = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const wake of waiters) wake();
  }

  private send(reply: OutgoingReply): void {
    this.outbox.send(reply);
  }

  private settle(entryId: string): void {
    this.outbox.settle(entryId);
  }

  // ---------------------------------------------------------------- plumbing

  private leaseMs(): number {
    return 3 * this.heartbeatMs;
  }

  /** One log line per burst of failures, a pause, and a fresh group if Redis lost it. */
  private async recover(err: unknown, what: string): Promise<void> {
    if (this.failures++ % 20 === 0) this.log.warn({ err, failures: this.failures }, `${what}; retrying`);
    if (isNoGroup(err)) await this.streams.ensureGroup().catch(() => undefined);
    await sleep(250);
  }

  private async ready(client: RedisClient): Promise<void> {
    if (client.status === 'ready') return;
    if (await connectRedis(client)) return;
    this.log.warn({}, 'Redis is not reachable yet; waiting');
    // The client keeps reconnecting by itself.
    while (this.running && !isReady(client)) await sleep(200);
  }
}

/** A worker's id when none is given: unique per process, and readable (host, pid). */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** Why `message` cannot go on the wire as JSON (a BigInt, a cycle, a throwing toJSON); undefined when it can. */
function notJson(message: unknown): unknown {
  if (typeof message === 'string') return undefined;
  try {
    JSON.stringify(message);
    return undefined;
  } catch (err) {
    return err;
  }
}

/** Read through a function: TypeScript narrows `status` after the first check and forgets it changes. */
function isReady(client: RedisClient): boolean {
  return client.status === 'ready';
}

function isNoGroup(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function quit(client: RedisClient): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
