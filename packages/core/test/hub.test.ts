import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionHub, noopMetrics, type AdmissionTicket, type GatewayMetrics } from '@wsgw/core';
import { FakeBus, FakeClock, FakeLeases, FakeRates, FakeConnection, RecordingLogger } from './fakes.js';

const ticket = (id = 'c1'): AdmissionTicket => ({
  connectionId: id,
  userId: 'u1',
  path: '/api/ws/agent',
  origin: undefined,
  tokenHash: 'abc',
});

function setup(perMinute = 5, metrics: GatewayMetrics = noopMetrics) {
  const clock = new FakeClock();
  const deps = {
    leases: new FakeLeases(),
    rates: new FakeRates(),
    bus: new FakeBus(),
    clock,
    metrics,
    log: new RecordingLogger(),
  };
  const hub = new ConnectionHub(
    { replicaId: 'r1', maxMessagesPerMinute: perMinute, agentReplyTimeoutMs: 5000, sweepIntervalMs: 60_000 },
    deps,
  );
  const connection = new FakeConnection(ticket());
  deps.leases.held.set('c1', 'u1');
  hub.open(connection);
  return { hub, deps, clock, socket: connection, connection };
}

const msg = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ agent_type: 'echo', message: 'hi', conversation_id: 'c', id: 'm1', ...over });

describe('ConnectionHub: one outcome per message', () => {
  let hub: ConnectionHub | undefined;
  afterEach(() => hub?.stop());

  it('publishes a valid message and delivers its response once', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    const [request] = s.deps.bus.published;
    expect(request).toMatchObject({ agentType: 'echo', message: 'hi', clientId: 'm1', userId: 'u1', replicaId: 'r1' });
    s.deps.bus.reply({ requestId: request!.requestId, connectionId: 'c1', kind: 'response', message: 'hi' });
    s.deps.bus.reply({ requestId: request!.requestId, connectionId: 'c1', kind: 'response', message: 'hi' });
    expect(s.socket.sent).toEqual([
      { type: 'response', agent_type: 'echo', conversation_id: 'c', in_reply_to: 'm1', message: 'hi' },
    ]);
  });

  it('streams chunks in order and ends the request on done', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    const id = s.deps.bus.published[0]!.requestId;
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 'a', done: false });
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 'b', done: true });
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 'late', done: true });
    expect(s.socket.sent.map((f) => [f['type'], f['message'], f['done']])).toEqual([
      ['chunk', 'a', false],
      ['chunk', 'b', true],
    ]);
    expect(s.hub.pendingCount).toBe(0);
  });

  it('ends a request whose reply lost a part with unavailable, after the chunks that came', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    const id = s.deps.bus.published[0]!.requestId;
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 'a', done: false });
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'lost', message: undefined });
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 'z', done: true });
    expect(s.socket.sent).toEqual([
      { type: 'chunk', agent_type: 'echo', conversation_id: 'c', in_reply_to: 'm1', message: 'a', done: false },
      { type: 'error', code: 'unavailable', message: 'part of the reply of agent echo was lost', in_reply_to: 'm1' },
    ]);
    expect(s.hub.pendingCount).toBe(0);
  });

  it('drops an agent reply with no JSON form, logged; the request keeps its outcome (agent_timeout)', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    const id = s.deps.bus.published[0]!.requestId;
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    // Before: the request was forgotten before the frame threw, so it never got any outcome.
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'chunk', message: 1n, done: false });
    s.deps.bus.reply({ requestId: id, connectionId: 'c1', kind: 'response', message: circular });
    expect(s.socket.sent).toEqual([]);
    expect(s.hub.pendingCount).toBe(1);
    expect(s.deps.log.lines.filter((l) => l.msg === 'agent reply is not JSON-serialisable; dropped')).toHaveLength(2);
    s.clock.t += 5000;
    s.hub.sweep();
    expect(s.socket.sent).toEqual([
      { type: 'error', code: 'agent_timeout', message: 'agent echo did not reply in time', in_reply_to: 'm1' },
    ]);
  });

  it('answers invalid JSON and binary frames with invalid_message', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, '{nope');
    await s.hub.message(s.connection, null);
    await s.hub.message(s.connection, msg({ agent_type: 5 }));
    expect(s.socket.sent.map((f) => [f['code'], f['in_reply_to']])).toEqual([
      ['invalid_message', null],
      ['invalid_message', null],
      ['invalid_message', 'm1'],
    ]);
    expect(s.deps.bus.published).toHaveLength(0);
  });

  it('answers agent_unavailable when the bus has no agent', async () => {
    const s = setup();
    hub = s.hub;
    s.deps.bus.result = { accepted: false, code: 'agent_unavailable', message: 'nobody' };
    await s.hub.message(s.connection, msg());
    expect(s.socket.sent).toEqual([
      { type: 'error', code: 'agent_unavailable', message: 'nobody', in_reply_to: 'm1' },
    ]);
    expect(s.hub.pendingCount).toBe(0);
  });

  it('counts a message by its agent type only once an agent took it', async () => {
    const counted: Array<[string | null, string | undefined]> = [];
    const s = setup(5, { ...noopMetrics, messageReceived: (agentType, pillar) => void counted.push([agentType, pillar]) });
    hub = s.hub;
    await s.hub.message(s.connection, msg({ pillar: 'p' }));
    // A type a client made up must not become a metric series of its own (CONTRACT §7).
    s.deps.bus.result = { accepted: false, code: 'agent_unavailable', message: 'nobody' };
    await s.hub.message(s.connection, msg({ agent_type: 'made-up-1', pillar: 'anything@example.com' }));
    expect(counted).toEqual([
      ['echo', 'p'],
      [null, 'anything@example.com'],
    ]);
  });

  it('keeps a socket with a request in flight alive (pings every keepAliveIntervalMs), and only such a socket', async () => {
    const plain = setup();
    plain.hub.stop();
    const { deps } = plain;
    hub = new ConnectionHub(
      { replicaId: 'r1', maxMessagesPerMinute: 5, agentReplyTimeoutMs: 5000, sweepIntervalMs: 60_000, keepAliveIntervalMs: 10 },
      deps,
    );
    const waiting = new FakeConnection(ticket('w'));
    const quiet = new FakeConnection(ticket('q'));
    hub.open(waiting);
    hub.open(quiet);
    hub.message(waiting, msg());
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(waiting.pings).toBeGreaterThanOrEqual(2);
    expect(quiet.pings).toBe(0);
    // Answered in full: no more pings.
    deps.bus.reply({ requestId: deps.bus.published[0]!.requestId, connectionId: 'w', kind: 'response', message: 'hi' });
    const after = waiting.pings;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(waiting.pings).toBe(after);
  });

  it('times out with agent_timeout when no reply comes', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    s.clock.t += 4999;
    s.hub.sweep();
    expect(s.socket.sent).toEqual([]);
    s.clock.t += 1;
    s.hub.sweep();
    expect(s.socket.sent).toEqual([
      { type: 'error', code: 'agent_timeout', message: 'agent echo did not reply in time', in_reply_to: 'm1' },
    ]);
    // A reply after the timeout is dropped: still exactly one outcome.
    s.deps.bus.reply({ requestId: s.deps.bus.published[0]!.requestId, connectionId: 'c1', kind: 'response', message: 'x' });
    expect(s.socket.sent).toHaveLength(1);
  });

  it('refuses, without holding them, frames past a minute\'s limit still awaiting their decision', async () => {
    const s = setup(5);
    hub = s.hub;
    // A rate limiter that has not answered yet (Redis slow, a failover): decisions wait.
    const waiting: Array<(d: { allowed: true }) => void> = [];
    s.deps.rates.consume = (_user, done) => {
      waiting.push(() => done({ allowed: true }));
    };
    for (let i = 0; i < 8; i++) s.hub.message(s.connection, msg({ id: `f${i}` }));
    // Before: all 8 waited (a flood held every frame in memory until Redis answered).
    expect(waiting).toHaveLength(5);
    expect(s.socket.sent).toEqual([0, 1, 2].map(() => expect.objectContaining({ type: 'error', code: 'rate_limited', retry_after_ms: 1000 })));
    expect(s.socket.sent.map((f) => f['in_reply_to'])).toEqual(['f5', 'f6', 'f7']);
    for (const decide of waiting.splice(0)) decide({ allowed: true });
    expect(s.deps.bus.published).toHaveLength(5);
    // Decided: the socket may have that many waiting again.
    s.hub.message(s.connection, msg({ id: 'g0' }));
    expect(waiting).toHaveLength(1);
  });

  it('rate-limited frames get rate_limited with retry_after_ms; the socket stays open', async () => {
    const s = setup(5);
    hub = s.hub;
    s.deps.rates.decisions = [{ allowed: false, retryAfterMs: 321.4 }];
    await s.hub.message(s.connection, msg());
    expect(s.socket.sent).toEqual([
      { type: 'error', code: 'rate_limited', message: 'message rate limit reached', in_reply_to: 'm1', retry_after_ms: 322 },
    ]);
    expect(s.socket.closedWith).toBeUndefined();
    expect(s.deps.bus.published).toHaveLength(0);
    expect((s.deps.log as RecordingLogger).events()).toEqual(['security.rate_limited']);
  });

  it('closes with 1008 once rate-limited frames in 60 s exceed the per-minute limit', async () => {
    const s = setup(3);
    hub = s.hub;
    s.deps.rates.decisions = Array.from({ length: 10 }, () => ({ allowed: false as const, retryAfterMs: 1000 }));
    for (let i = 0; i < 3; i++) await s.hub.message(s.connection, msg());
    expect(s.socket.closedWith).toBeUndefined();
    // Denials older than 60 s do not count.
    s.clock.t += 60_001;
    await s.hub.message(s.connection, msg());
    await s.hub.message(s.connection, msg());
    await s.hub.message(s.connection, msg());
    expect(s.socket.closedWith).toBeUndefined();
    await s.hub.message(s.connection, msg());
    expect(s.socket.closedWith?.code).toBe(1008);
    expect(s.deps.leases.held.size).toBe(0);
  });

  it('a rate limiter that refuses during an outage answers unavailable, without an error line per message', async () => {
    const { SharedStateUnavailableError } = await import('@wsgw/core');
    const s = setup();
    hub = s.hub;
    s.deps.rates.consume = (_userId, done) => done(null, new SharedStateUnavailableError('redis down, closed mode'));
    await s.hub.message(s.connection, msg());
    await s.hub.message(s.connection, msg({ id: 'm2' }));
    expect(s.socket.sent.map((f) => [f['code'], f['in_reply_to']])).toEqual([
      ['unavailable', 'm1'],
      ['unavailable', 'm2'],
    ]);
    expect((s.deps.log as RecordingLogger).lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(s.deps.bus.published).toHaveLength(0);
  });

  it('drops replies for a closed connection', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    s.hub.closed(s.connection, 1000);
    s.deps.bus.reply({ requestId: s.deps.bus.published[0]!.requestId, connectionId: 'c1', kind: 'response', message: 'x' });
    expect(s.socket.sent).toEqual([]);
    expect(s.hub.openCount).toBe(0);
  });

  it('closes a socket that cannot take more frames (slow reader)', async () => {
    const s = setup();
    hub = s.hub;
    await s.hub.message(s.connection, msg());
    s.socket.status = 'dropped';
    s.deps.bus.reply({ requestId: s.deps.bus.published[0]!.requestId, connectionId: 'c1', kind: 'response', message: 'x' });
    expect(s.socket.closedWith?.code).toBe(1008);
  });

  // An error frame the socket cannot take would leave its message with no outcome at all.
  it.each([
    ['invalid_message', (s: ReturnType<typeof setup>) => s.hub.message(s.connection, '{"id":"m1"}')],
    ['rate_limited', (s: ReturnType<typeof setup>) => {
      s.deps.rates.decisions.push({ allowed: false, retryAfterMs: 500 });
      s.hub.message(s.connection, msg());
    }],
    ['publish refused', (s: ReturnType<typeof setup>) => {
      s.deps.bus.result = { accepted: false, code: 'agent_unavailable', message: 'no worker' };
      s.hub.message(s.connection, msg());
    }],
    ['agent_timeout', (s: ReturnType<typeof setup>) => {
      s.socket.status = 'sent';
      s.hub.message(s.connection, msg());
      s.socket.status = 'dropped';
      s.clock.t += 5000;
      s.hub.sweep();
    }],
  ])('closes a slow reader whose error frame (%s) it cannot take, and releases its slot', (_, act) => {
    const s = setup();
    hub = s.hub;
    s.socket.status = 'dropped';
    act(s);
    expect(s.socket.sent).toHaveLength(1);
    expect(s.socket.sent[0]).toMatchObject({ type: 'error' });
    expect(s.socket.closedWith).toEqual({ code: 1008, reason: 'backpressure limit exceeded' });
    expect(s.hub.openCount).toBe(0);
    expect(s.deps.leases.released).toEqual(['c1']);
    // The closed socket gets nothing more, and is not closed twice.
    s.hub.message(s.connection, '{"id":"m2"}');
    expect(s.socket.sent).toHaveLength(1);
  });

  it('does not treat an error frame for a socket already closed as a slow reader', () => {
    const s = setup();
    hub = s.hub;
    s.deps.rates.consume = (_user, done) => done(null, new Error('redis down'));
    s.hub.closed(s.connection, 1000);
    s.hub.message(s.connection, msg());
    expect(s.socket.closedWith).toBeUndefined();
    expect((s.deps.log as RecordingLogger).lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect(s.deps.leases.released).toEqual(['c1']);
  });

  it('closes connections whose lease was lost', () => {
    const s = setup();
    hub = s.hub;
    s.deps.leases.lostHandler?.(['c1', 'unknown']);
    expect(s.socket.closedWith?.code).toBe(1011);
    expect(s.hub.openCount).toBe(0);
  });

  it('closeAll closes every socket with the given code and releases slots', () => {
    const s = setup();
    hub = s.hub;
    const other = new FakeConnection(ticket('c2'));
    s.hub.open(other);
    s.hub.closeAll(1001, 'bye');
    expect(s.socket.closedWith?.code).toBe(1001);
    expect(other.closedWith?.code).toBe(1001);
    expect(s.hub.openCount).toBe(0);
  });

  it('keeps its list of open connections whatever order they close in', () => {
    const s = setup();
    hub = s.hub;
    const more = ['c2', 'c3', 'c4', 'c5', 'c6', 'c7'].map((id) => new FakeConnection(ticket(id)));
    for (const c of more) s.hub.open(c);
    const [c2, c3, c4, c5, c6, c7] = more as [FakeConnection, FakeConnection, FakeConnection, FakeConnection, FakeConnection, FakeConnection];
    expect(s.hub.openCount).toBe(7);
    s.hub.closed(c4, 1000); // a middle one
    s.hub.closed(c7, 1000); // the newest
    s.hub.closed(s.connection, 1000); // the oldest
    s.hub.closed(c4, 1000); // reported twice
    s.hub.closed(new FakeConnection(ticket('never-opened')), 1006);
    expect(s.hub.openCount).toBe(4);
    // Lost leases: only the named ones that are open here close.
    s.deps.leases.lostHandler?.(['c3', 'c4', 'c6', 'elsewhere']);
    expect([c3.closedWith?.code, c6.closedWith?.code]).toEqual([1011, 1011]);
    expect(s.hub.openCount).toBe(2);
    const late = new FakeConnection(ticket('c8'));
    s.hub.open(late);
    s.hub.closeAll(1001, 'bye');
    expect([c2, c5, late].map((c) => c.closedWith?.code)).toEqual([1001, 1001, 1001]);
    expect([s.connection, c4, c7].map((c) => c.closedWith)).toEqual([undefined, undefined, undefined]);
    expect(s.hub.openCount).toBe(0);
    // Every close gave its slot back once.
    expect(s.deps.leases.released.sort()).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'never-opened']);
  });
});
