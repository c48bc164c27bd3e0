/**
 * What core reports to operators. Telemetry implements it with OpenTelemetry instruments;
 * attributes are low-cardinality only (path, agent_type, pillar, reason): never a token,
 * user id or connection id.
 */
export interface GatewayMetrics {
  connectionAccepted(path: string): void;
  connectionClosed(path: string, durationMs: number, origin: string | undefined, code: number): void;
  connectionError(path: string, reason: string): void;
  upgradeRejected(path: string, reason: string): void;
  messageReceived(agentType: string, pillar: string | undefined): void;
  messageRejected(reason: string): void;
  rateLimitExceeded(): void;
  replyLatency(agentType: string, ms: number): void;
  replyDropped(reason: string): void;
  backpressureDrop(): void;
}

export const noopMetrics: GatewayMetrics = {
  connectionAccepted() {},
  connectionClosed() {},
  connectionError() {},
  upgradeRejected() {},
  messageReceived() {},
  messageRejected() {},
  rateLimitExceeded() {},
  replyLatency() {},
  replyDropped() {},
  backpressureDrop() {},
};
