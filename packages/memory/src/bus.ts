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
  /**
   * A handler silent (no reply, no chunk) this long no longer counts toward its type's limit: its
   * request has had its outcome (agent_timeout) and a hung handler must not hold the slot for good.
   * The gateway passes AGENT_REPLY_TIMEOUT_SECONDS. Unset: never.
   */
  giveUpAfterMs?: number;
}

interface Running {
  agentType: string;
  lastOutputAt: number;
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
  /** Handlers still running after publish returned, by request id (counted in `inFlight`). */
  private readonly running = new Map<string, Running>();
  private readonly replyHandlers: Array<(reply: AgentReply) => void> = [];
  private readonly sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: MemoryBusOptions,
    private readonly log: Logger,
  ) {
    const giveUpMs = options.giveUpAfterMs;
    if (giveUpMs !== undefined) {
      this.sweeper = setInterval(() => this.giveUpSilent(giveUpMs), Math.min(1000, giveUpMs));
      this.sweeper.unref();
    }
  }

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
    const { requestId } = request;
    let running: Promise<void> | undefined;
    try {
      // A fixed-shape literal per reply: this runs once per message.
      running = runAgentHandler(handler, request, (output) => {
        const entry = this.running.get(requestId);
        if (entry !== undefined) entry.lastOutputAt = performance.now();
        this.emit({ requestId, connectionId: request.connectionId, kind: output.kind, message: output.message, done: output.done });
      });
    } catch (err) {
      this.failed(request, err);
      return ACCEPTED;
    }
    if (running !== undefined) {
      // Still running: it counts toward the agent type's limit until it settles or is given up.
      this.inFlight.set(agentType, busy + 1);
      this.running.set(requestId, { agentType, lastOutputAt: performance.now() });
      running.then(
        () => this.settled(requestId),
        (err: unknown) => {
          this.settled(requestId);
          this.failed(request, err);
        },
      );
    }
    return ACCEPTED;
  }

  /** The handler ended, or was given up (then counted out already). */
  private settled(requestId: string): void {
    const entry = this.running.get(requestId);
    if (entry === undefined) return;
    this.running.delete(requestId);
    this.inFlight.set(entry.agentType, (this.inFlight.get(entry.agentType) ?? 1) - 1);
  }

  private giveUpSilent(giveUpMs: number): void {
    const now = performance.now();
    for (const [requestId, entry] of this.running) {
      if (now - entry.lastOutputAt < giveUpMs) continue;
      this.log.error({ agent_type: entry.agentType, request_id: requestId, silent_ms: Math.round(now - entry.lastOutputAt) }, 'agent handler hung; its slot is freed');
      this.settled(requestId);
    }
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
    clearInterval(this.sweeper);
  }
}
