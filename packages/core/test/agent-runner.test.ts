import { describe, expect, it } from 'vitest';
import { runAgentHandler, type AgentOutput, type AgentRequest } from '@wsgw/core';

const request: AgentRequest = {
  requestId: 'q1',
  connectionId: 'c1',
  replicaId: 'r1',
  userId: 'u1',
  agentType: 'test',
  message: 'hi',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a handler; returns what it emitted so far, with a way to wait for the end. */
function run(handler: Parameters<typeof runAgentHandler>[0]) {
  const out: AgentOutput[] = [];
  const running = runAgentHandler(handler, request, (o) => out.push(o));
  return { out, done: Promise.resolve(running) };
}

describe('runAgentHandler', () => {
  it('a returned value, or the value of a returned promise, is one response', async () => {
    expect(run(() => 'plain').out).toEqual([{ kind: 'response', message: 'plain' }]);
    const later = run(async () => ({ n: 1 }));
    await later.done;
    expect(later.out).toEqual([{ kind: 'response', message: { n: 1 } }]);
    // Strings and arrays are values, not streams.
    expect(run(() => [1, 2]).out).toEqual([{ kind: 'response', message: [1, 2] }]);
  });

  it('chunks of a stream that yields at once go out with the last one carrying done', async () => {
    const r = run(async function* () {
      yield 'a';
      yield 'b';
      yield 'c';
    });
    await r.done;
    expect(r.out).toEqual([
      { kind: 'chunk', message: 'a', done: false },
      { kind: 'chunk', message: 'b', done: false },
      { kind: 'chunk', message: 'c', done: true },
    ]);
  });

  it('a chunk the stream is slow to follow goes out at once, not when the next one comes', async () => {
    // Before: each chunk waited for the next (to carry done), so "working" reached nobody until
    // the agent was done working, and a long pause after it ended in agent_timeout.
    const r = run(async function* () {
      yield 'working';
      await sleep(200);
      yield 'result';
    });
    await sleep(50);
    expect(r.out).toEqual([{ kind: 'chunk', message: 'working', done: false }]);
    await r.done;
    expect(r.out).toEqual([
      { kind: 'chunk', message: 'working', done: false },
      { kind: 'chunk', message: 'result', done: true },
    ]);
  });

  it('a stream that ends after a pause ends with an empty final chunk', async () => {
    const r = run(async function* () {
      yield 'only';
      await sleep(20);
    });
    await r.done;
    expect(r.out).toEqual([
      { kind: 'chunk', message: 'only', done: false },
      { kind: 'chunk', message: '', done: true },
    ]);
  });

  it('the chunk yielded before a throw is sent, then the error is the caller\'s', async () => {
    // Before: the held-back chunk was dropped.
    const r = run(async function* () {
      yield 'a';
      yield 'b';
      throw new Error('boom');
    });
    await expect(r.done).rejects.toThrow('boom');
    expect(r.out.map((o) => o.message)).toEqual(['a', 'b']);
    expect(r.out.every((o) => o.done === false)).toBe(true);
  });

  it('a promise of a stream, and a generator, stream too', async () => {
    // Before: `async (r) => stream` sent {"message": {}} as a response.
    const promised = run(async () =>
      (async function* () {
        yield 1;
        yield 2;
      })(),
    );
    await promised.done;
    expect(promised.out).toEqual([
      { kind: 'chunk', message: 1, done: false },
      { kind: 'chunk', message: 2, done: true },
    ]);
    const sync = run(function* () {
      yield 'x';
      yield null;
    });
    await sync.done;
    expect(sync.out).toEqual([
      { kind: 'chunk', message: 'x', done: false },
      { kind: 'chunk', message: null, done: true },
    ]);
  });
});
