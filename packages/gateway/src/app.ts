import type { Config } from '@wsgw/config';
import {
  ConnectionHub,
  Lifecycle,
  noopMetrics,
  OriginPolicy,
  systemClock,
  UpgradeAdmission,
  type AgentHandler,
  type GatewayMetrics,
  type Logger,
} from '@wsgw/core';
import { UwsServer } from '@wsgw/transport-uws';
import { createSessionValidator } from './sessions.js';
import { embeddedStores, redisStores, type Stores } from './stores.js';

export interface GatewayHandle {
  readonly port: number;
  readonly config: Config;
  readonly hub: ConnectionHub;
  readonly lifecycle: Lifecycle;
  /** Drains and stops (CONTRACT §1); idempotent. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  metrics?: GatewayMetrics;
  /** In-process agents besides WEBSOCKET_BUILTIN_AGENTS (embedders, tests). */
  agents?: Readonly<Record<string, AgentHandler>>;
}

/** The composition root: config -> stores -> core -> transport. */
export async function startGateway(config: Config, options: StartOptions): Promise<GatewayHandle> {
  const { log } = options;
  const metrics = options.metrics ?? noopMetrics;
  const stores: Stores = config.redis
    ? redisStores(config, log, { metrics, extraAgents: options.agents })
    : embeddedStores(config, log, options.agents);
  const sessions = createSessionValidator(config, stores.redisGet);

  const hub = new ConnectionHub(
    {
      replicaId: config.replicaId,
      maxMessagesPerMinute: config.limits.maxMessagesPerMinute,
      agentReplyTimeoutMs: config.agentReplyTimeoutSeconds * 1000,
      // The idle timeout counts only what a client sends; one awaiting a long reply sends nothing.
      keepAliveIntervalMs: (config.idleTimeoutSeconds * 1000) / 2,
    },
    { leases: stores.leases, rates: stores.rates, bus: stores.bus, clock: systemClock, metrics, log },
  );
  metrics.observeOpenConnections(() => hub.openCount);
  metrics.observePendingRequests(() => hub.pendingCount);
  const lifecycle = new Lifecycle(hub, log, config.shutdownDrainSeconds * 1000);
  lifecycle.addUnavailableCheck(stores.unavailable);
  const admission = new UpgradeAdmission({
    origins: OriginPolicy.fromList(config.corsOrigins),
    sessions,
    leases: stores.leases,
    isDraining: () => lifecycle.isDraining(),
    isUnavailable: () => lifecycle.isUnavailable(),
    throttle: stores.throttle,
    metrics,
    log,
  });
  const server = new UwsServer(
    {
      host: config.host,
      port: config.port,
      websocketPaths: config.websocketPaths,
      apiCors: OriginPolicy.fromList(config.apiCorsOrigins),
      maxPayloadBytes: config.limits.maxPayloadBytes,
      maxBackpressureBytes: config.limits.maxBackpressureBytes,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      trustedProxies: config.trustedProxies,
    },
    { admission, hub, lifecycle, log },
  );
  const port = await server.listen();
  log.info(
    {
      port,
      mode: config.redis ? 'redis' : 'embedded',
      environment: config.environment,
      paths: config.websocketPaths.map((p) => `${p}/agent`),
      session_validator: sessions.kind,
    },
    'gateway listening',
  );
  void stores.ready.then(() => lifecycle.markReady());

  const shutdown = () =>
    lifecycle.shutdown(
      [
        { name: 'stores', close: () => stores.close() },
        { name: 'sessions', close: async () => sessions.close?.() },
      ],
      async () => {
        await stores.leases.releaseAll();
        server.stopListening();
      },
    );
  return { port, config, hub, lifecycle, shutdown };
}
