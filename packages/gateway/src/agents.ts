import type { Config } from '@wsgw/config';
import { builtinAgents, type AgentBus, type AgentHandler, type GatewayMetrics, type Logger } from '@wsgw/core';
import { AgentWorker } from '@wsgw/agent-sdk';
import { MemoryAgentBus } from '@wsgw/memory';
import { createRedisClient, FailoverAgentBus, RedisAgentBus, type RedisClient, type RedisKeys } from '@wsgw/redis';

/** The agents this process serves itself: WEBSOCKET_BUILTIN_AGENTS plus the embedder's own. */
export function inProcessAgents(
  config: Config,
  extraAgents: Readonly<Record<string, AgentHandler>> = {},
): Array<[string, AgentHandler]> {
  const agents: Array<[string, AgentHandler]> = [];
  for (const name of config.builtinAgents) {
    const agent = builtinAgents[name];
    if (agent) agents.push([name, agent]);
  }
  return [...agents, ...Object.entries(extraAgents)];
}

/** Embedded mode: requests go straight to handlers in this process. */
export function memoryAgentBus(
  config: Config,
  log: Logger,
  extraAgents?: Readonly<Record<string, AgentHandler>>,
): MemoryAgentBus {
  const bus = new MemoryAgentBus({ maxInFlightPerType: config.agentMaxQueue }, log);
  for (const [name, agent] of inProcessAgents(config, extraAgents)) bus.register(name, agent);
  return bus;
}

export interface RedisAgentsOptions {
  client: RedisClient;
  keys: RedisKeys;
  metrics: GatewayMetrics;
  extraAgents?: Readonly<Record<string, AgentHandler>> | undefined;
  /** True while Redis is known to be unreachable (local failure mode serves built-ins in process). */
  isRedisDown?: () => boolean;
}

/**
 * Redis mode (docs/AGENTS.md): the bus over Redis Streams, and an agent-sdk worker in this process
 * for each built-in agent, so built-in agents take the same road as remote ones and any replica's
 * worker may answer any replica's client.
 */
export function redisAgents(
  config: Config,
  log: Logger,
  options: RedisAgentsOptions,
): { bus: AgentBus; started: Promise<void>; close(): Promise<void> } {
  const redis = config.redis;
  if (!redis) throw new Error('redisAgents needs REDIS_URL');
  const busLog = log.child({ component: 'agent-bus' });
  const blocking = createRedisClient(redis.url, {
    connectionName: `wsgw:${config.replicaId}:replies`,
    commandTimeoutMs: 6000,
  });
  const streams = new RedisAgentBus(
    options.client,
    blocking,
    { keys: options.keys, replicaId: config.replicaId, maxQueue: config.agentMaxQueue },
    busLog,
    options.metrics,
  );
  options.metrics.observeAgentQueues(() => streams.queueDepths());
  streams.start();
  const agents = inProcessAgents(config, options.extraAgents);
  // While Redis is away, `local` failure mode keeps built-in agents answering from this process.
  const local = new MemoryAgentBus({ maxInFlightPerType: config.agentMaxQueue }, busLog);
  for (const [name, agent] of agents) local.register(name, agent);
  const isDown = options.isRedisDown ?? (() => false);
  const bus = new FailoverAgentBus(
    streams,
    local,
    { mode: config.limits.failureMode, localTypes: new Set(agents.map(([name]) => name)), isDown },
    busLog,
    options.metrics,
  );
  const workers = agents.map(
    ([agentType, handler]) =>
      new AgentWorker({
        agentType,
        handler,
        redisUrl: redis.url,
        keyPrefix: redis.keyPrefix,
        workerId: `${config.replicaId}:${agentType}`,
        // In-process handlers are cheap; big batches keep Redis round trips per message low.
        concurrency: 1024,
        shutdownGraceMs: 2000,
        log: busLog,
      }),
  );
  // Resolves once every built-in agent counts as live (or failed to start, which is logged), or
  // after a few seconds if Redis went away meanwhile: readiness must not wait on it forever.
  const allStarted = Promise.all(
    workers.map((worker) =>
      worker.start().catch((err: unknown) => {
        busLog.error({ err, agent_type: worker.agentType }, 'built-in agent worker failed to start');
      }),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const started = Promise.race([
    allStarted,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 5000);
      timer.unref();
    }),
  ]).then(() => clearTimeout(timer));
  return {
    bus,
    started,
    close: async () => {
      await bus.close();
      await Promise.all(workers.map((w) => w.stop()));
    },
  };
}
