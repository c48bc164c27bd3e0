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

/** One settled promise for every accepted request: publishing allocates nothing when it succeeds. */
const ACCEPTED: Promise<PublishResult> = Promise.resolve(Object.freeze({ accepted: true as const }));

function refused(code: 'unavailable' | 'agent_unavailable', message: string): Promise<PublishResult> {
  return Promise.resolve({ accepted: false, code, message });
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

  publish(request: AgentRequest): Promise<PublishResult> {
    if (this.closed) return refused('unavailable', 'agent bus is closed');
    const handler = this.handlers.get(request.agentType);
    if (!handler) return refused('agent_unavailable', `no agent serves agent_type ${request.agentType}`);
    const busy = this.inFlight.get(request.agentType) ?? 0;
    if (busy >= this.options.maxInFlightPerType) {
      return refused('unavailable', `agent ${request.agentType} is overloaded`);
    }
    this.inFlight.set(request.agentType, busy + 1);
    // Runs after the caller has registered the request, like a reply from a remote worker would.
    queueMicrotask(() => void this.run(handler, request));
    return ACCEPTED;
  }

  private async run(handler: AgentHandler, request: AgentRequest): Promise<void> {
    const { requestId, connectionId, agentType } = request;
    try {
      // A fixed-shape literal per reply: this runs once per message.
      await runAgentHandler(handler, request, (output) =>
        this.emit({ requestId, connectionId, kind: output.kind, message: output.message, done: output.done }),
      );
    } catch (err) {
      // The request then times out with agent_timeout, as it would with a remote worker.
      this.log.error({ err, agent_type: agentType, request_id: requestId }, 'agent failed');
    } finally {
      this.inFlight.set(agentType, (this.inFlight.get(agentType) ?? 1) - 1);
    }
  }

  private emit(reply: AgentReply): void {
    for (const handler of this.replyHandlers) handler(reply);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
