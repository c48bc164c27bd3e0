import { describe, expect, it } from 'vitest';
import type { AgentReply, AgentRequest, Logger } from '@wsgw/core';
import { MemoryAgentBus } from '@wsgw/memory';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

function request(agentType: string, requestId = 'r1'): AgentRequest {
  return { requestId, connectionId: 'c', replicaId: 'r', userId: 'u', agentType, message: 'hi' };
}

function collect(bus: MemoryAgentBus): AgentReply[] {
  const replies: AgentReply[] = [];
  bus.onReply((r) => replies.push(r));
  return replies;
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe('MemoryAgentBus', () => {
  it('answers agent_unavailable for an unknown type', async () => {
    const bus = new MemoryAgentBus({ maxInFlightPerType: 10 }, quiet);
    expect(await bus.publish(request('nobody'))).toMatchObject({ accepted: false, code: 'agent_unavailable' });
  });

  it('delivers a returned value as one response', async () => {
    const bus = new MemoryAgentBus({ maxInFlightPerType: 10 }, quiet);
    bus.register('echo', async (r) => r.message);
    const replies = collect(bus);
    expect(await bus.publish(request('echo'))).toEqual({ accepted: true });
    await settle();
    expect(replies).toEqual([{ requestId: 'r1', connectionId: 'c', kind: 'response', message: 'hi' }]);
  });

  it('replies from a handler that returns a plain value before publish returns, and frees its place at once', () => {
    const bus = new MemoryAgentBus({ maxInFlightPerType: 1 }, quiet);
    bus.register('echo', (r) => r.message);
    const replies = collect(bus);
    expect(bus.publish(request('echo', 'a'))).toEqual({ accepted: true });
    expect(replies).toEqual([{ requestId: 'a', connectionId: 'c', kind: 'response', message: 'hi' }]);
    // A bound of one: the first request is no longer in flight.
    expect(bus.publish(request('echo', 'b'))).toEqual({ accepted: true });
    expect(replies).toHaveLength(2);
  });

  it('delivers yielded chunks in order, the last with done', async () => {
    const bus = new MemoryAgentBus({ maxInFlightPerType: 10 }, quiet);
    bus.register('stream', async function* () {
      yield 'a';
      yield 'b';
      yield 'c';
    });
    const replies = collect(bus);
    await bus.publish(request('stream'));
    await settle();
    expect(replies.map((r) => [r.kind, r.message, r.done])).toEqual([
      ['chunk', 'a', false],
      ['chunk', 'b', false],
      ['chunk', 'c', true],
    ]);
  });

  it('refuses with unavailable past the per-type bound', async () => {
    const bus = new MemoryAgentBus({ maxInFlightPerType: 2 }, quiet);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    bus.register('slow', async () => {
      await gate;
      return 'done';
    });
    expect(await bus.publish(request('slow', 'a'))).toEqual({ accepted: true });
    expect(await bus.publish(request('slow', 'b'))).toEqual({ accepted: true });
    await settle();
    expect(await bus.publish(request('slow', 'c'))).toMatchObject({ accepted: false, code: 'unavailable' });
    release();
    await settle();
    expect(await bus.publish(request('slow', 'd'))).toEqual({ accepted: true });
  });

  it('a throwing agent sends nothing (the request then times out), and logs why', async () => {
    const errors: unknown[] = [];
    const log: Logger = { ...quiet, error: (obj) => errors.push(obj), child: () => log };
    const bus = new MemoryAgentBus({ maxInFlightPerType: 1 }, log);
    bus.register('broken', async () => {
      throw new Error('boom');
    });
    bus.register('brokenNow', () => {
      throw new Error('at once');
    });
    const replies = collect(bus);
    await bus.publish(request('broken'));
    expect(bus.publish(request('brokenNow'))).toEqual({ accepted: true });
    await settle();
    expect(replies).toEqual([]);
    expect(errors.map((e) => ((e as { err: Error }).err).message).sort()).toEqual(['at once', 'boom']);
    // Both failures freed their place under the bound of one.
    expect(bus.publish(request('broken', 'again'))).toEqual({ accepted: true });
    expect(bus.publish(request('brokenNow', 'again'))).toEqual({ accepted: true });
  });
});
