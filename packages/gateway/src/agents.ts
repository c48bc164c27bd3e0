import type { Config } from '@wsgw/config';
import {
  builtinAgents,
  type AgentBus,
  type AgentHandler,
  type AgentReply,
  type AgentRequest,
  type GatewayMetrics,
  type Logger,
  type PublishResult,
} from '@wsgw/core';
import { MemoryAgentBus } from '@wsgw/memory';
import { createRedisClient, RedisAgentBus, type RedisClient, type RedisKeys } from '@wsgw/redis';

/** The agents this process serves itself: WEBSOCKET_BUILTIN_AGENTS plus the embedder's own. */
function inProcessAgents(
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

/** Requests go straight to handlers in this process (every type in embedded mode). */
export function memoryAgentBus(
  config: Config,
  log: Logger,
  extraAgents?: Readonly<Record<string, AgentHandler>>,
): MemoryAgentBus {
  const bus = new MemoryAgentBus({ maxInFlightPerType: config.agentMaxQueue, giveUpAfterMs: config.agentReplyTimeoutSeconds * 1000 }, log);
  for (const [name, agent] of inProcessAgents(config, extraAgents)) bus.register(name, agent);
  return bus;
}

/**
 * Sends each request to the bus serving its type: the agents of this process to the in-process
 * bus, every other type to remote workers. Replies of both reach the hub through one callback.
 */
export class SplitAgentBus implements AgentBus {
  constructor(
    private readonly local: MemoryAgentBus,
    private readonly remote: AgentBus,
  ) {}

  publish(request: AgentRequest): PublishResult | Promise<PublishResult> {
    return (this.local.serves(request.agentType) ? this.local : this.remote).publish(request);
  }

  onReply(handler: (reply: AgentReply) => void): void {
    this.local.onReply(handler);
    this.remote.onReply(handler);
  }

  async close(): Promise<void> {
    await Promise.all([this.local.close(), this.remote.close()]);
  }
}

export interface RedisAgentsOptions {
  client: RedisClient;
  keys: RedisKeys;
  metrics: GatewayMetrics;
  extraAgents?: Readonly<Record<string, AgentHandler>> | undefined;
}

/**
 * Redis mode (docs/AGENTS.md): agents served inside the gateway process (CONTRACT §2) answer
 * through the in-process bus, as in embedded mode, so an echo costs no Redis round trip and keeps
 * answering while Redis is away (`local` failure mode; `closed` refuses messages before the bus).
 * Every other agent type goes over Redis Streams to remote workers on any machine.
 */
export function redisAgents(config: Config, log: Logger, options: RedisAgentsOptions): AgentBus {
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
  // Queue depth is that of the streams. In-process agents have no queue (a request runs at once, at
  // most AGENT_MAX_QUEUE per type); while they work, their requests count in websocket.requests.pending.
  options.metrics.observeAgentQueues(() => streams.queueDepths());
  streams.start();
  return new SplitAgentBus(memoryAgentBus(config, busLog, options.extraAgents), streams);
}
