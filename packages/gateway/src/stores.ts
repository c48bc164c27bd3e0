import type { Config } from '@wsgw/config';
import {
  type AgentBus,
  type AgentHandler,
  type ConnectionLeases,
  type GatewayMetrics,
  type Logger,
  type MessageRateLimiter,
  type UpgradeThrottle,
} from '@wsgw/core';
import { MemoryConnectionLeases, MemoryRateLimiter, MemoryUpgradeThrottle } from '@wsgw/memory';
import {
  connectRedis,
  createRedisClient,
  FailoverConnectionLeases,
  FailoverRateLimiter,
  isClusterUrl,
  RedisConnectionLeases,
  RedisHealth,
  redisKeys,
  RedisRateLimiter,
  RedisUpgradeThrottle,
  type RedisClient,
} from '@wsgw/redis';
import { instrumentRedisClient } from '@wsgw/telemetry';
import { memoryAgentBus, redisAgents } from './agents.js';

/** The shared-state ports, chosen by mode: in-process (embedded) or Redis. */
export interface Stores {
  leases: ConnectionLeases;
  rates: MessageRateLimiter;
  bus: AgentBus;
  throttle: UpgradeThrottle | undefined;
  /** True while shared state is unreachable and the failure mode is `closed`. */
  unavailable: () => boolean;
  /** Resolves once the first attempt to reach shared state has finished. */
  ready: Promise<void>;
  /** Redis mode: the GET the `redis` session validator reads sessions with. */
  redisGet?: (key: string) => Promise<string | null>;
  close(): Promise<void>;
}

export function embeddedStores(
  config: Config,
  log: Logger,
  extraAgents: Readonly<Record<string, AgentHandler>> = {},
): Stores {
  const leases = new MemoryConnectionLeases({
    maxPerUser: config.limits.maxConnectionsPerUser,
    maxGlobal: config.limits.maxGlobalConnections,
  });
  const rates = new MemoryRateLimiter({
    perSecond: config.limits.maxMessagesPerSecond,
    perMinute: config.limits.maxMessagesPerMinute,
  });
  // Built-in and extra agents answer in this process, through the same bus port as in Redis mode.
  const bus = memoryAgentBus(config, log, extraAgents);
  return {
    leases,
    rates,
    bus,
    throttle: upgradeThrottle(config),
    unavailable: () => false,
    ready: Promise.resolve(),
    close: async () => {
      await bus.close();
      await rates.close();
      await leases.close();
    },
  };
}

export function upgradeThrottle(config: Config): UpgradeThrottle | undefined {
  const failures = config.limits.sessionFailuresPerMinute;
  return failures > 0 ? new MemoryUpgradeThrottle({ failures, windowSeconds: 60 }) : undefined;
}

export interface RedisStoresOptions {
  metrics: GatewayMetrics;
  extraAgents?: Readonly<Record<string, AgentHandler>>;
}

/**
 * Redis mode (docs/REDIS.md): connection slots and message windows shared by every replica,
 * each behind the failure mode of WEBSOCKET_LIMITS_FAILURE_MODE with its memory twin as the
 * per-replica fallback. `ready` resolves once the first connection attempt has finished.
 */
export function redisStores(config: Config, log: Logger, options: RedisStoresOptions): Stores {
  const redis = config.redis;
  if (!redis) throw new Error('redisStores needs REDIS_URL');
  const { metrics } = options;
  const limitsLog = log.child({ component: 'limits' });
  // Every command timed into db.client.operation.duration, and a child span inside a traced upgrade/message.
  const client: RedisClient = instrumentRedisClient(
    createRedisClient(redis.url, { connectionName: `wsgw:${config.replicaId}` }),
    metrics,
  );
  // On Redis Cluster the message windows spread over 16 hash tags (one script call per tag per turn).
  const keys = redisKeys(redis.keyPrefix, { rateShards: isClusterUrl(redis.url) ? 16 : 1 });
  // Limits get a connection of their own: their decisions never queue behind agent traffic, so a
  // timeout on it means Redis is slow or gone, not that this replica is busy publishing.
  const limitsClient: RedisClient = instrumentRedisClient(
    createRedisClient(redis.url, { connectionName: `wsgw:${config.replicaId}:limits` }),
    metrics,
  );
  const health = new RedisHealth(limitsClient, limitsLog);
  const mode = config.limits.failureMode;
  const limits = {
    maxPerUser: config.limits.maxConnectionsPerUser,
    maxGlobal: config.limits.maxGlobalConnections,
  };
  const windows = { perSecond: config.limits.maxMessagesPerSecond, perMinute: config.limits.maxMessagesPerMinute };

  const redisLeases = new RedisConnectionLeases(limitsClient, health, limitsLog, {
    keys,
    ...limits,
    leaseMs: config.leaseSeconds * 1000,
  });
  const leases = new FailoverConnectionLeases(
    redisLeases,
    new MemoryConnectionLeases(limits),
    health,
    mode,
    metrics,
    limitsLog,
  );
  const rates = new FailoverRateLimiter(
    new RedisRateLimiter(limitsClient, health, { keys, ...windows }),
    new MemoryRateLimiter(windows),
    health,
    mode,
    metrics,
  );
  const failures = config.limits.sessionFailuresPerMinute;
  const throttle =
    failures > 0 ? new RedisUpgradeThrottle(limitsClient, limitsLog, { keys, failures, windowSeconds: 60 }) : undefined;
  // Agents of this process answer in it; every other type goes through Redis Streams.
  const bus = redisAgents(config, log, { client, keys, metrics, extraAgents: options.extraAgents });

  const ready = Promise.all([connectRedis(limitsClient), connectRedis(client)]).then(([connected]) => {
    if (!connected) health.startDown();
    else log.info({ cluster: isClusterUrl(redis.url) }, 'connected to redis');
  });
  return {
    leases,
    rates,
    bus,
    throttle,
    unavailable: () => mode === 'closed' && health.isDown(),
    ready,
    redisGet: (key) => client.get(key),
    close: async () => {
      await bus.close();
      await rates.close();
      await leases.close();
      health.close();
      for (const c of [limitsClient, client]) {
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      }
    },
  };
}
