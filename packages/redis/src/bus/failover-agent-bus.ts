import type { AgentBus, AgentReply, AgentRequest, GatewayMetrics, Logger, PublishResult } from '@wsgw/core';
import type { FailureMode } from '../limits/failover.js';

export interface FailoverAgentBusOptions {
  /** WEBSOCKET_LIMITS_FAILURE_MODE: only `local` falls back. */
  mode: FailureMode;
  /** Agent types the local bus serves (built-in agents of this process). */
  localTypes: ReadonlySet<string>;
  /** True while Redis is known to be unreachable. */
  isDown(): boolean;
}

/**
 * In `local` failure mode the replica keeps serving while Redis is away (CONTRACT §2): messages for
 * agents this process serves itself go to the in-process bus instead of failing. Remote agents are
 * unreachable without Redis, so their messages still get `unavailable`. With Redis up, everything
 * takes the Redis road, so built-in and remote agents behave alike.
 */
export class FailoverAgentBus implements AgentBus {
  constructor(
    private readonly redis: AgentBus,
    private readonly local: AgentBus,
    private readonly options: FailoverAgentBusOptions,
    private readonly log: Logger,
    private readonly metrics?: Pick<GatewayMetrics, 'fallbackDecision'>,
  ) {}

  onReply(handler: (reply: AgentReply) => void): void {
    this.redis.onReply(handler);
    this.local.onReply(handler);
  }

  async publish(request: AgentRequest): Promise<PublishResult> {
    const fallback = this.options.mode === 'local' && this.options.localTypes.has(request.agentType);
    if (fallback && this.options.isDown()) return this.publishLocally(request);
    try {
      return await this.redis.publish(request);
    } catch (err) {
      if (!fallback) throw err;
      // Publish may have reached Redis before failing: a worker may answer too. The hub delivers
      // one final reply per request, so the client still sees one answer.
      this.log.warn({ err, agent_type: request.agentType }, 'agent bus unreachable; serving a built-in agent locally');
      return this.publishLocally(request);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.redis.close(), this.local.close()]);
  }

  private publishLocally(request: AgentRequest): Promise<PublishResult> {
    this.metrics?.fallbackDecision('agents', 'local_allowed');
    return this.local.publish(request);
  }
}
