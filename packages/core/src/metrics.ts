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
  /**
   * A valid message was handed to the agent bus. `agentType` is null when the bus refused it (no
   * agent serves the type, overload): a type a client made up must not become a series of its own.
   */
  messageReceived(agentType: string | null, pillar: string | undefined): void;
  messageRejected(reason: string): void;
  rateLimitExceeded(): void;
  replyLatency(agentType: string, ms: number): void;
  replyDropped(reason: string): void;
  backpressureDrop(): void;
  /** One call to Redis took `durationMs`; `command` is the Redis command name (low cardinality). */
  redisCall(command: string, durationMs: number, ok: boolean): void;
  /**
   * A limit was decided without Redis because it was unreachable: `store` is what decided
   * (`leases`, `rates`, ...), `decision` what it answered (`local_allowed`, `local_denied`, `refused`).
   */
  fallbackDecision(store: string, decision: string): void;
  /** Registers the reader of this replica's open sockets, read at each metric export. */
  observeOpenConnections(read: () => number): void;
  /** Registers the reader of messages awaiting an agent's reply on this replica. */
  observePendingRequests(read: () => number): void;
  /**
   * Registers the reader of agent queue depth (requests not yet taken by a worker) per agent type,
   * read at each metric export; it may be async (an XLEN per type).
   */
  observeAgentQueues(read: AgentQueueReader): void;
}

export type AgentQueueReader = () =>
  | Iterable<readonly [agentType: string, depth: number]>
  | Promise<Iterable<readonly [agentType: string, depth: number]>>;

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
  redisCall() {},
  fallbackDecision() {},
  observeOpenConnections() {},
  observePendingRequests() {},
  observeAgentQueues() {},
};

/**
 * Close codes that mean something went wrong, as the low-cardinality reason `connectionError`
 * carries; undefined for a normal close (1000, 1001, 1005 no code). Application codes (3000-4999)
 * collapse into `other`.
 */
export function closeErrorReason(code: number): string | undefined {
  switch (code) {
    case 1000:
    case 1001:
    case 1005:
      return undefined;
    case 1002:
      return 'protocol_error';
    case 1003:
    case 1007:
      return 'invalid_data';
    case 1006:
      return 'abnormal_closure';
    case 1008:
      return 'policy_violation';
    case 1009:
      return 'message_too_big';
    case 1011:
      return 'internal_error';
    default:
      return 'other';
  }
}
