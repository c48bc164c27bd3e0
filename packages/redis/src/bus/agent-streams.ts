import type { AgentRequest } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';
import { defineAgentScripts } from './scripts.js';
import { decodeRequest, encodeReplies, REPLIES_FIELD, type RawEntry, type WireReply } from './wire.js';

/** The consumer group every worker of a type reads through, so each request goes to one of them. */
export const AGENT_GROUP = 'workers';

/** A request taken from the stream, with the entry id that acknowledges it. */
export interface Delivery {
  entryId: string;
  /** Undefined for an entry that is not a request (it is settled without an answer). */
  request: AgentRequest | undefined;
  /** Times delivered, this one included (known for takeovers). */
  deliveries?: number;
}

/** A reply addressed to the replica that holds the client's socket. */
export interface OutgoingReply extends WireReply {
  replicaId: string;
}

export interface AgentStreamsOptions {
  keys: RedisKeys;
  agentType: string;
  /**
   * Reply streams are capped near this many entries (batches of replies), a last resort against a
   * replica that stopped reading but lives (its reader trims what it read; a gone replica's stream
   * expires). Generous: what a stalled reader has not read yet is trimmed past it, and its requests
   * end with `unavailable` (the bus sees the gap in their sequence numbers).
   */
  replyStreamMaxLen?: number;
  /** A reply stream whose replica is gone disappears this long after the last reply to it. */
  replyStreamTtlMs?: number;
  /** Registry and request stream of a type nobody serves disappear this long after the last heartbeat. */
  idleTypeTtlMs?: number;
}

type StreamRead = Array<[key: string, entries: RawEntry[]]> | null;

/**
 * The Redis side of an agent worker for one agent type: consumer group, liveness lease, reads,
 * claims of a dead worker's entries, replies and acknowledgements. Policy (when to read, claim,
 * renew) lives in the agent-sdk worker; this class only speaks to Redis.
 */
export class AgentStreams {
  readonly requestsKey: string;
  readonly workersKey: string;
  private readonly keys: RedisKeys;
  private readonly replyMaxLen: number;
  private readonly replyTtlMs: number;
  private readonly idleTypeTtlMs: number;
  /** When each reply stream's TTL was last refreshed by this worker. */
  private readonly expiryRefreshedAt = new Map<string, number>();

  constructor(
    private readonly client: RedisClient,
    options: AgentStreamsOptions,
  ) {
    defineAgentScripts(client);
    this.keys = options.keys;
    this.requestsKey = options.keys.agentRequests(options.agentType);
    this.workersKey = options.keys.agentWorkers(options.agentType);
    this.replyMaxLen = options.replyStreamMaxLen ?? 100_000;
    this.replyTtlMs = options.replyStreamTtlMs ?? 60_000;
    this.idleTypeTtlMs = options.idleTypeTtlMs ?? 24 * 3600_000;
  }

  /** Creates the stream and its consumer group if missing (idempotent). */
  async ensureGroup(): Promise<void> {
    try {
      await this.client.xgroup('CREATE', this.requestsKey, AGENT_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
    }
  }

  /** Takes or renews this worker's liveness lease; returns how many workers of the type are live. */
  heartbeat(workerId: string, leaseMs: number): Promise<number> {
    return this.client.wsgwAgentHeartbeat(this.workersKey, this.requestsKey, workerId, leaseMs, this.idleTypeTtlMs);
  }

  /** This worker stops counting as live at once (graceful shutdown). */
  async leave(workerId: string): Promise<void> {
    await this.client.zrem(this.workersKey, workerId);
  }

  /**
   * New requests for this consumer; waits up to `blockMs` for the first one. `blocking` must be a
   * connection of its own (its command timeout above `blockMs`).
   */
  async read(blocking: RedisClient, consumer: string, count: number, blockMs: number): Promise<Delivery[]> {
    const read = (await blocking.xreadgroup(
      'GROUP',
      AGENT_GROUP,
      consumer,
      'COUNT',
      count,
      'BLOCK',
      blockMs,
      'STREAMS',
      this.requestsKey,
      '>',
    )) as StreamRead;
    return read ? read.flatMap(([, entries]) => entries.map(toDelivery)) : [];
  }

  /**
   * Takes over entries that another consumer read and has not settled or renewed for `minIdleMs`
   * (it died, froze, or its handler hangs). Entries this consumer holds and is still working on
   * (`busy`; by default all of them) are left alone, so a worker with a hung handler cannot keep its
   * own request from the others; its other entries (read by an earlier run under the same name, or by a read whose
   * reply was lost) are taken back like anyone's. Looks at up to `scan` of the oldest idle
   * entries; each delivery says how often its entry has been delivered.
   */
  async claim(consumer: string, minIdleMs: number, scan: number, busy: (entryId: string) => boolean = () => true): Promise<Delivery[]> {
    const idle = (await this.client.xpending(this.requestsKey, AGENT_GROUP, 'IDLE', minIdleMs, '-', '+', scan)) as Array<
      [id: string, owner: string, idleMs: number, delivered: number]
    >;
    const theirs = idle.filter(([id, owner]) => owner !== consumer || !busy(id));
    if (theirs.length === 0) return [];
    const delivered = new Map(theirs.map(([id, , , times]) => [id, Number(times) + 1]));
    // XCLAIM re-checks the idle time: an entry another worker took meanwhile is skipped.
    const claimed = (await this.client.xclaim(
      this.requestsKey,
      AGENT_GROUP,
      consumer,
      minIdleMs,
      ...theirs.map(([id]) => id),
    )) as Array<RawEntry | null>;
    return claimed
      .filter((e): e is RawEntry => Array.isArray(e) && Array.isArray(e[1]))
      .map((entry) => ({ ...toDelivery(entry), deliveries: delivered.get(entry[0]) ?? 1 }));
  }

  /**
   * Resets the idle time of entries this worker is still working on, so live work is not claimed
   * by others. Entries idle for less than `minIdleMs` are left alone: if another worker just took
   * one over, this does not take it back.
   */
  async renew(consumer: string, entryIds: readonly string[], minIdleMs: number): Promise<void> {
    if (entryIds.length === 0) return;
    await this.client.xclaim(this.requestsKey, AGENT_GROUP, consumer, minIdleMs, ...entryIds, 'JUSTID');
  }

  /**
   * Writes replies to the reply streams of their replicas: one entry per replica holding its
   * replies in the given order (the order the client sees). Resolves once every reply is stored.
   */
  async sendReplies(replies: readonly OutgoingReply[]): Promise<void> {
    const byReplica = new Map<string, OutgoingReply[]>();
    for (const reply of replies) {
      const list = byReplica.get(reply.replicaId);
      if (list) list.push(reply);
      else byReplica.set(reply.replicaId, [reply]);
    }
    const writes: Array<Promise<unknown>> = [];
    for (const [replicaId, list] of byReplica) {
      const key = this.keys.replicaReplies(replicaId);
      // Commands of one turn go out in one pipeline (the client auto-pipelines).
      writes.push(this.client.xadd(key, 'MAXLEN', '~', this.replyMaxLen, '*', REPLIES_FIELD, encodeReplies(list)));
      // The TTL only has to outlive the replica; refreshing it once a second is plenty.
      const now = Date.now();
      if (now - (this.expiryRefreshedAt.get(key) ?? 0) >= 1000) {
        this.expiryRefreshedAt.set(key, now);
        writes.push(this.client.pexpire(key, this.replyTtlMs));
        if (this.expiryRefreshedAt.size > 10_000) this.expiryRefreshedAt.clear();
      }
    }
    await Promise.all(writes);
  }

  /**
   * Acknowledges answered entries and deletes them, which keeps the stream as short as its queue.
   * With `holder`, only the entries that consumer still holds: a worker giving up a request must
   * not settle it under another worker that took it over meanwhile.
   */
  async settle(entryIds: readonly string[], holder = ''): Promise<void> {
    if (entryIds.length === 0) return;
    // Unpack in Lua is bounded by its stack; settle very large batches in slices.
    for (let i = 0; i < entryIds.length; i += 1000) {
      await this.client.wsgwAgentSettle(this.requestsKey, AGENT_GROUP, holder, ...entryIds.slice(i, i + 1000));
    }
  }

  /** Removes this consumer from the group; only when it holds no pending entries (they would be lost). */
  async removeConsumerIfIdle(consumer: string): Promise<boolean> {
    const summary = (await this.client.xpending(this.requestsKey, AGENT_GROUP, '-', '+', 1, consumer)) as unknown[];
    if (summary.length > 0) return false;
    await this.client.xgroup('DELCONSUMER', this.requestsKey, AGENT_GROUP, consumer);
    return true;
  }

  /** Forgets consumers of dead workers that hold nothing and have been idle for `idleMs`. */
  async pruneConsumers(idleMs: number): Promise<number> {
    const raw = (await this.client.xinfo('CONSUMERS', this.requestsKey, AGENT_GROUP)) as unknown[][];
    let removed = 0;
    for (const fields of raw) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < fields.length; i += 2) info.set(String(fields[i]), fields[i + 1]);
      if (Number(info.get('pending')) === 0 && Number(info.get('idle')) >= idleMs) {
        await this.client.xgroup('DELCONSUMER', this.requestsKey, AGENT_GROUP, String(info.get('name')));
        removed++;
      }
    }
    return removed;
  }
}

function toDelivery([entryId, fields]: RawEntry): Delivery {
  return { entryId, request: decodeRequest(fields) };
}
