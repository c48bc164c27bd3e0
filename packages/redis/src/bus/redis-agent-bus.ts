import type { AgentBus, AgentReply, AgentRequest, GatewayMetrics, Logger, PublishResult } from '@wsgw/core';
import { connectRedis, type RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';
import { AGENT_GROUP } from './agent-streams.js';
import { defineAgentScripts } from './scripts.js';
import { decodeReplies, encodeRequest, type RawEntry, type WireReply } from './wire.js';

export interface RedisAgentBusOptions {
  keys: RedisKeys;
  /** Replies for this replica's connections come back on this replica's reply stream. */
  replicaId: string;
  /** Requests one agent type may have waiting or in progress; past it, `unavailable` at once. */
  maxQueue: number;
  /** Replies taken per read. */
  readCount?: number;
  /** How long one blocking read waits; bounds how long `close` waits for the reader. */
  blockMs?: number;
}

type StreamRead = Array<[key: string, entries: RawEntry[]]> | null;

interface OutgoingRequest {
  fields: string[];
  resolve(result: PublishResult): void;
  reject(err: unknown): void;
}

/** Requests per script call: bounds how long one call keeps Redis busy. */
const MAX_PUBLISH_BATCH = 500;
/** Agent types whose queue depth this replica reports. */
const MAX_TYPES_OBSERVED = 256;

/**
 * How long the chunk order of an unfinished reply is remembered after its last chunk: longer than
 * the longest AGENT_REPLY_TIMEOUT_SECONDS (3600), so its request has timed out by then (a chunk
 * after that would be taken for a reply whose first part was lost).
 */
const SEQ_MEMORY_MS = 61 * 60_000;

/**
 * The gateway's side of the agent bus on Redis (docs/AGENTS.md). Requests go to their type's
 * stream by one script call per type per event-loop turn, which also checks for a live worker and
 * the queue bound. Replies come back on this replica's own reply stream, read in batches by one
 * blocking reader, so nothing is broadcast to every replica.
 */
export class RedisAgentBus implements AgentBus {
  private readonly handlers: Array<(reply: AgentReply) => void> = [];
  private readonly replyKey: string;
  private readonly readCount: number;
  private readonly blockMs: number;
  /** Next expected `seq` of replies that are still streaming, by request id. */
  private readonly streaming = new Map<string, { next: number; at: number }>();
  private readonly typesSeen = new Set<string>();
  /** Publishes of this turn not yet sent, by agent type. */
  private readonly outgoing = new Map<string, OutgoingRequest[]>();
  private flushScheduled = false;
  private lastId = '0-0';
  private lastTrimAt = 0;
  private lastSweepAt = 0;
  private closed = false;
  private reader: Promise<void> | undefined;

  /**
   * @param client shared, non-blocking commands (publish, trim)
   * @param blocking owned by the bus: one connection for the blocking reply reads, closed by `close`;
   *   its command timeout must exceed `blockMs`
   */
  constructor(
    private readonly client: RedisClient,
    private readonly blocking: RedisClient,
    private readonly options: RedisAgentBusOptions,
    private readonly log: Logger,
    private readonly metrics?: Pick<GatewayMetrics, 'replyDropped'>,
  ) {
    defineAgentScripts(client);
    this.replyKey = options.keys.replicaReplies(options.replicaId);
    this.readCount = options.readCount ?? 1000;
    this.blockMs = options.blockMs ?? 1000;
    // Connection trouble surfaces as failed reads (logged there); this keeps it off 'unhandled error'.
    blocking.on('error', (err: unknown) => log.debug({ err }, 'reply reader connection error'));
  }

  /** Starts reading replies. */
  start(): void {
    this.reader ??= this.readReplies();
  }

  onReply(handler: (reply: AgentReply) => void): void {
    this.handlers.push(handler);
  }

  /**
   * Queues the request for this turn's batch of its agent type: every publish of one event-loop
   * turn goes to Redis in one script call per type, which answers each in order.
   */
  publish(request: AgentRequest): Promise<PublishResult> {
    if (this.closed) return Promise.resolve({ accepted: false, code: 'unavailable', message: 'agent bus is closed' });
    return new Promise((resolve, reject) => {
      const type = request.agentType;
      let batch = this.outgoing.get(type);
      if (!batch) {
        batch = [];
        this.outgoing.set(type, batch);
      }
      batch.push({ fields: encodeRequest(request), resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushPublishes());
      }
    });
  }

  private flushPublishes(): void {
    this.flushScheduled = false;
    const batches = [...this.outgoing];
    this.outgoing.clear();
    for (const [type, batch] of batches) {
      for (let i = 0; i < batch.length; i += MAX_PUBLISH_BATCH) {
        void this.publishBatch(type, batch.slice(i, i + MAX_PUBLISH_BATCH));
      }
    }
  }

  private async publishBatch(type: string, batch: OutgoingRequest[]): Promise<void> {
    const { keys, maxQueue } = this.options;
    const args: Array<string | number> = [];
    for (const { fields } of batch) args.push(fields.length, ...fields);
    let results: string[];
    try {
      results = await this.client.wsgwAgentPublish(keys.agentRequests(type), keys.agentWorkers(type), maxQueue, ...args);
    } catch (err) {
      for (const { reject } of batch) reject(err);
      return;
    }
    batch.forEach(({ resolve }, i) => {
      const result = results[i];
      if (result === 'no_worker') {
        resolve({ accepted: false, code: 'agent_unavailable', message: `no live agent serves agent_type ${type}` });
      } else if (result === 'full') {
        resolve({ accepted: false, code: 'unavailable', message: `agent ${type} has too many queued messages` });
      } else {
        // Only types some worker serves: clients choose agent_type, the gauge must stay small.
        if (this.typesSeen.size < MAX_TYPES_OBSERVED) this.typesSeen.add(type);
        resolve({ accepted: true });
      }
    });
  }

  /**
   * Requests no worker has taken yet, per agent type this replica has sent to (a gauge): the
   * stream's length less the entries workers hold (read, not settled: in progress).
   */
  async queueDepths(): Promise<Array<[string, number]>> {
    const types = [...this.typesSeen];
    const depths = await Promise.all(
      types.map(async (t) => {
        const key = this.options.keys.agentRequests(t);
        const [length, pending] = await Promise.all([
          this.client.xlen(key),
          // No group yet (no worker ever started): nothing is held.
          this.client.xpending(key, AGENT_GROUP).then((summary) => Number((summary as unknown[])[0] ?? 0), () => 0),
        ]);
        return Math.max(0, length - pending);
      }),
    );
    return types.map((t, i) => [t, depths[i] ?? 0]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushScheduled) this.flushPublishes();
    // Ends the blocking read at once instead of waiting out its BLOCK time.
    this.blocking.disconnect();
    await this.reader;
  }

  private async readReplies(): Promise<void> {
    await connectRedis(this.blocking);
    let failures = 0;
    while (!this.closed) {
      let read: StreamRead;
      try {
        read = (await this.blocking.xread(
          'COUNT',
          this.readCount,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          this.replyKey,
          this.lastId,
        )) as StreamRead;
        failures = 0;
      } catch (err) {
        if (this.closed) break;
        // Redis is away; the client reconnects by itself. One line per burst of failures.
        if (failures++ % 40 === 0) this.log.warn({ err, failures }, 'reading agent replies failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      if (!read) continue;
      for (const [, entries] of read) {
        for (const [id, fields] of entries) {
          this.lastId = id;
          const replies = decodeReplies(fields);
          if (replies) for (const reply of replies) this.dispatch(reply);
          else this.log.warn({ entry_id: id }, 'dropping a malformed agent reply entry');
        }
      }
      this.housekeeping();
    }
  }

  private dispatch(wire: WireReply): void {
    const state = this.streaming.get(wire.requestId);
    const final = wire.kind === 'response' || wire.done === true;
    // A second worker took the request over and repeats what the first one already sent. Its final
    // reply always goes through, even when its run was shorter than the first one's: without it the
    // stream would never end (a request already answered in full is dropped by the hub).
    if (state && wire.seq < state.next && !final) {
      this.metrics?.replyDropped('duplicate');
      return;
    }
    // A reply past the next one expected: those between never arrived (trimmed from a reply stream
    // its reader was too late for). The request ends with an error, not a stream with a hole.
    if (wire.seq > (state?.next ?? 0)) {
      // What still comes for it is dropped here (as duplicates) and, once final, by the hub.
      this.streaming.set(wire.requestId, { next: Number.POSITIVE_INFINITY, at: Date.now() });
      for (const handler of this.handlers) handler({ requestId: wire.requestId, connectionId: wire.connectionId, kind: 'lost', message: undefined });
      return;
    }
    if (final) this.streaming.delete(wire.requestId);
    else this.streaming.set(wire.requestId, { next: wire.seq + 1, at: Date.now() });
    const reply: AgentReply = {
      requestId: wire.requestId,
      connectionId: wire.connectionId,
      kind: wire.kind,
      message: wire.message,
    };
    if (wire.kind === 'chunk') reply.done = wire.done === true;
    for (const handler of this.handlers) handler(reply);
  }

  /** Trims what this replica has read from its reply stream, and forgets abandoned streams. */
  private housekeeping(): void {
    const now = Date.now();
    if (now - this.lastTrimAt >= 1000) {
      this.lastTrimAt = now;
      this.client.xtrim(this.replyKey, 'MINID', this.lastId).catch((err: unknown) => {
        this.log.debug({ err }, 'trimming the reply stream failed; the next read retries');
      });
    }
    if (now - this.lastSweepAt >= 30_000) {
      this.lastSweepAt = now;
      for (const [id, state] of this.streaming) if (now - state.at > SEQ_MEMORY_MS) this.streaming.delete(id);
    }
  }
}
