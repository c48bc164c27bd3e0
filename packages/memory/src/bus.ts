import {
  runAgentHandler,
  type AgentBus,
  type AgentHandler,
  type AgentReply,
  type AgentRequest,
  type Logger,
  type PublishResult,
} from '@wsgw/core';

export interface MemoryBusOptions {
  /** Requests of one agent type in progress at once; past it, `unavailable` at once. */
  maxInFlightPerType: number;
}

/**
 * The in-process agent bus of embedded mode: requests go to handlers registered in this process,
 * replies come back through the same callback the Redis bus uses, so core cannot tell them apart.
 */
export class MemoryAgentBus implements AgentBus {
  private readonly handlers = new Map<string, AgentHandler>();
  private readonly inFlight = new Map<string, number>();
  private readonly replyHandlers: Array<(reply: AgentReply) => void> = [];
  private closed = false;

  constructor(
    private readonly options: MemoryBusOptions,
    private readonly log: Logger,
  ) {}

  register(agentType: string, handler: AgentHandler): void {
    this.handlers.set(agentType, handler);
  }

  onReply(handler: (reply: AgentReply) => void): void {
    this.replyHandlers.push(handler);
  }

  async publish(request: AgentRequest): Promise<PublishResult> {
    if (this.closed) return { accepted: false, code: 'unavailable', message: 'agent bus is closed' };
    const handler = this.handlers.get(request.agentType);
    if (!handler) {
      return {
        accepted: false,
        code: 'agent_unavailable',
        message: `no agent serves agent_type ${request.agentType}`,
      };
    }
    const busy = this.inFlight.get(request.agentType) ?? 0;
    if (busy >= this.options.maxInFlightPerType) {
      return { accepted: false, code: 'unavailable', message: `agent ${request.agentType} is overloaded` };
    }
    this.inFlight.set(request.agentType, busy + 1);
    // Runs after the caller has registered the request, like a reply from a remote worker would.
    queueMicrotask(() => {
      void this.run(handler, request).finally(() => {
        this.inFlight.set(request.agentType, (this.inFlight.get(request.agentType) ?? 1) - 1);
      });
    });
    return { accepted: true };
  }

  private async run(handler: AgentHandler, request: AgentRequest): Promise<void> {
    const { requestId, connectionId } = request;
    try {
      // A fixed-shape literal per reply: this runs once per message.
      await runAgentHandler(handler, request, (output) =>
        this.emit({ requestId, connectionId, kind: output.kind, message: output.message, done: output.done }),
      );
    } catch (err) {
      // The request then times out with agent_timeout, as it would with a remote worker.
      this.log.error({ err, agent_type: request.agentType, request_id: request.requestId }, 'agent failed');
    }
  }

  private emit(reply: AgentReply): void {
    for (const handler of this.replyHandlers) handler(reply);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
