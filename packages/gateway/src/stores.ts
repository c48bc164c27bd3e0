import type { Config } from '@wsgw/config';
import {
  builtinAgents,
  type AgentBus,
  type AgentHandler,
  type ConnectionLeases,
  type Logger,
  type MessageRateLimiter,
  type UpgradeThrottle,
} from '@wsgw/core';
import { MemoryAgentBus, MemoryConnectionLeases, MemoryRateLimiter, MemoryUpgradeThrottle } from '@wsgw/memory';

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
  const bus = new MemoryAgentBus({ maxInFlightPerType: config.agentMaxQueue }, log);
  for (const name of config.builtinAgents) {
    const agent = builtinAgents[name];
    if (agent) bus.register(name, agent);
  }
  for (const [name, agent] of Object.entries(extraAgents)) bus.register(name, agent);
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
