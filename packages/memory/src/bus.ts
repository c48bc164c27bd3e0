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

/** One frozen result for every accepted request: publishing allocates nothing when it succeeds. */
const ACCEPTED: PublishResult = Object.freeze({ accepted: true as const });

function refused(code: 'unavailable' | 'agent_unavailable', message: string): PublishResult {
  return { accepted: false, code, message };
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

  /** Whether a handler for `agentType` is registered here. */
  serves(agentType: string): boolean {
    return this.handlers.has(agentType);
  }

  onReply(handler: (reply: AgentReply) => void): void {
    this.replyHandlers.push(handler);
  }

  /**
   * Runs the handler at once: a handler that returns a plain value has replied (through
   * `onReply`) before this returns, so the caller must have registered the request first, as it
   * must for a remote worker that answers fast.
   */
  publish(request: AgentRequest): PublishResult {
    if (this.closed) return refused('unavailable', 'agent bus is closed');
    const handler = this.handlers.get(request.agentType);
    if (!handler) return refused('agent_unavailable', `no agent serves agent_type ${request.agentType}`);
    const { agentType } = request;
    const busy = this.inFlight.get(agentType) ?? 0;
    if (busy >= this.options.maxInFlightPerType) {
      return refused('unavailable', `agent ${agentType} is overloaded`);
    }
    let running: Promise<void> | undefined;
    try {
      // A fixed-shape literal per reply: this runs once per message.
      running = runAgentHandler(handler, request, (output) =>
        this.emit({ requestId: request.requestId, connectionId: request.connectionId, kind: output.kind, message: output.message, done: output.done }),
      );
    } catch (err) {
      this.failed(request, err);
      return ACCEPTED;
    }
    if (running !== undefined) {
      // Still running: it counts toward the agent type's limit until it settles.
      this.inFlight.set(agentType, busy + 1);
      running.then(
        () => this.settled(agentType),
        (err: unknown) => {
          this.settled(agentType);
          this.failed(request, err);
        },
      );
    }
    return ACCEPTED;
  }

  private settled(agentType: string): void {
    this.inFlight.set(agentType, (this.inFlight.get(agentType) ?? 1) - 1);
  }

  /** The request then times out with agent_timeout, as it would with a remote worker. */
  private failed(request: AgentRequest, err: unknown): void {
    this.log.error({ err, agent_type: request.agentType, request_id: request.requestId }, 'agent failed');
  }

  private emit(reply: AgentReply): void {
    for (const handler of this.replyHandlers) handler(reply);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
