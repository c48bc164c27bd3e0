/**
 * Every Redis key the gateway uses, built in this one file. Each key starts with
 * REDIS_KEY_PREFIX, so several gateway clusters can share one Redis. The part in braces is the
 * Redis Cluster hash tag: keys that one script touches share it, so they live in one slot.
 * docs/REDIS.md lists the layout and what each shared slot means for throughput.
 *
 * Each concern has its own section below; add new key kinds to the section of their concern.
 */
export function redisKeys(prefix: string, options: { rateShards?: number } = {}) {
  const rateShards = Math.max(1, Math.floor(options.rateShards ?? 1));
  return Object.freeze({
    prefix,

    // ---------------------------------------------------------- connection slots (leases)
    /** ZSET of every held connection slot: member = connection id, score = lease expiry (ms, Redis TIME). */
    slotsAll: () => `${prefix}{slots}:all`,
    /** ZSET of one user's connection slots: same members and scores as `slotsAll`. */
    slotsOfUser: (userId: string) => `${prefix}{slots}:user:${userId}`,

    // ---------------------------------------------------------- message rate windows
    /**
     * Rate windows are spread over `rateShards` hash tags: 1 on a single Redis (one script call
     * per event-loop turn carries every user's decisions), more on Redis Cluster so the load
     * spreads over the masters (one call per shard with pending decisions).
     */
    rateShards,
    rateShardOf: (userId: string) => (rateShards === 1 ? 0 : fnv1a(userId) % rateShards),
    /**
     * LIST of one user's latest accepted message times (ms, Redis TIME), newest first, at most
     * as long as the larger limit that can bind (src/lua/rate_consume.lua): exact sliding 1 s and
     * 60 s windows. Named by the limits too: each replica trims the log to what its own limits
     * read, so replicas configured differently (a rolling change of the limits) must not share one,
     * or the stricter one's trims would hand the other a fresh allowance.
     */
    rateLog: (shard: number, userId: string, limits: { perSecond: number; perMinute: number }) =>
      `${prefix}{rate:${shard}}:log:${limits.perSecond}-${limits.perMinute}:${userId}`,

    // ---------------------------------------------------------- upgrade throttle
    /** rate-limiter-flexible's key prefix for failed session checks per client address. */
    throttlePrefix: () => `${prefix}throttle`,

    // ---------------------------------------------------------- sessions (CONTRACT §2)
    /** Written by the application that issues sessions; read by the `redis` session validator. */
    session: (token: string) => `${prefix}session:${token}`,

    // ---------------------------------------------------------- agents (Redis Streams, issue 4)
    /**
     * STREAM of one agent type's requests, read by the type's workers through one consumer group.
     * Answered entries are deleted, so its length is the type's queue (bound: AGENT_MAX_QUEUE).
     */
    agentRequests: (agentType: string) => `${prefix}{agent:${agentType}}:requests`,
    /** ZSET of one agent type's live workers: member = worker id, score = lease expiry (ms, Redis TIME). */
    agentWorkers: (agentType: string) => `${prefix}{agent:${agentType}}:workers`,
    /** STREAM of replies for the connections of one replica, read by that replica alone. */
    replicaReplies: (replicaId: string) => `${prefix}{replies:${replicaId}}`,
  });
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/** A small stable string hash (FNV-1a, 32 bit) to spread users over rate shards. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
