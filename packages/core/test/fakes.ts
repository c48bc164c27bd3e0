import { Connection } from '@wsgw/core';
import type {
  AgentBus,
  AgentReply,
  AgentRequest,
  ConnectionLeases,
  Logger,
  MessageRateLimiter,
  PublishResult,
  RateCallback,
  RateDecision,
  SendStatus,
  SessionResult,
  SessionValidator,
  SlotDecision,
} from '@wsgw/core';

export class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> = [];
  debug(obj: object, msg?: string) {
    this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg?: string) {
    this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg?: string) {
    this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg?: string) {
    this.lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
  child(): Logger {
    return this;
  }
  events(): string[] {
    return this.lines.map((l) => l.obj['event']).filter((e): e is string => typeof e === 'string');
  }
}

export class FakeSessions implements SessionValidator {
  readonly kind = 'fake';
  calls = 0;
  constructor(private readonly answer: (token: string) => Promise<SessionResult>) {}
  validate(token: string): Promise<SessionResult> {
    this.calls++;
    return this.answer(token);
  }
}

export class FakeLeases implements ConnectionLeases {
  readonly held = new Map<string, string>();
  decision: SlotDecision = { granted: true };
  lostHandler: ((ids: string[]) => void) | undefined;
  async acquire(connectionId: string, userId: string): Promise<SlotDecision> {
    if (this.decision.granted) this.held.set(connectionId, userId);
    return this.decision;
  }
  readonly released: string[] = [];
  async release(connectionId: string): Promise<void> {
    this.released.push(connectionId);
    this.held.delete(connectionId);
  }
  onLost(handler: (ids: string[]) => void): void {
    this.lostHandler = handler;
  }
  async releaseAll(): Promise<void> {
    this.held.clear();
  }
  async close(): Promise<void> {}
}

export class FakeRates implements MessageRateLimiter {
  decisions: RateDecision[] = [];
  consume(_userId: string, done: RateCallback): void {
    done(this.decisions.shift() ?? { allowed: true });
  }
  async close(): Promise<void> {}
}

export class FakeBus implements AgentBus {
  readonly published: AgentRequest[] = [];
  result: PublishResult = { accepted: true };
  private handler: ((reply: AgentReply) => void) | undefined;
  publish(request: AgentRequest): PublishResult {
    this.published.push(request);
    return this.result;
  }
  onReply(handler: (reply: AgentReply) => void): void {
    this.handler = handler;
  }
  reply(reply: AgentReply): void {
    this.handler?.(reply);
  }
  async close(): Promise<void> {}
}

/** A connection whose socket records what core writes to it and how core closes it. */
export class FakeConnection extends Connection {
  readonly sent: Array<Record<string, unknown>> = [];
  closedWith: { code: number; reason: string } | undefined;
  status: SendStatus = 'sent';
  /** keepAlive calls (a ping on a real socket). */
  pings = 0;
  override keepAlive(): void {
    this.pings++;
  }
  protected write(text: string): SendStatus {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
    return this.status;
  }
  closeSocket(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
}

export class FakeClock {
  t = 1_000_000;
  now = () => this.t;
}
