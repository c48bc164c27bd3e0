import { describe, expect, it } from 'vitest';
import { closeErrorReason } from '@wsgw/core';
import { OpenConnections } from '../src/open-connections.js';
import { FakeConnection } from './fakes.js';

const connection = (id: string) => new FakeConnection({ connectionId: id, userId: 'u1', path: '/api/ws/agent', origin: undefined, tokenHash: 'abc' });

function ids(list: OpenConnections): string[] {
  const seen: string[] = [];
  list.forEach((c) => {
    seen.push(c.id);
  });
  return seen;
}

describe('OpenConnections', () => {
  it('lists connections newest first and takes them out from anywhere, once', () => {
    const list = new OpenConnections();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(connection) as [FakeConnection, FakeConnection, FakeConnection, FakeConnection];
    for (const x of [a, b, c, d]) list.add(x);
    expect(ids(list)).toEqual(['d', 'c', 'b', 'a']);
    expect(list.remove(b)).toBe(true); // a middle one
    expect(list.remove(d)).toBe(true); // the newest
    expect(list.remove(b)).toBe(false); // again
    expect(list.remove(connection('never-added'))).toBe(false);
    expect(ids(list)).toEqual(['c', 'a']);
    expect(list.remove(a)).toBe(true); // the oldest
    expect(list.size).toBe(1);
    expect(ids(list)).toEqual(['c']);
  });

  it('lets a visit remove the connection it is given, and stops when a visit returns false', () => {
    const list = new OpenConnections();
    for (const id of ['a', 'b', 'c', 'd']) list.add(connection(id));
    const visited: string[] = [];
    list.forEach((c) => {
      visited.push(c.id);
      list.remove(c);
      return c.id !== 'c';
    });
    expect(visited).toEqual(['d', 'c']);
    expect(ids(list)).toEqual(['b', 'a']);
    list.forEach((c) => {
      list.remove(c);
    });
    expect(list.size).toBe(0);
    expect(ids(list)).toEqual([]);
  });
});

describe('closeErrorReason', () => {
  it('names the closes that mean something went wrong, and only those', () => {
    expect([1000, 1001, 1005].map(closeErrorReason)).toEqual([undefined, undefined, undefined]);
    expect([1002, 1003, 1006, 1007, 1008, 1009, 1011, 4000].map(closeErrorReason)).toEqual([
      'protocol_error',
      'invalid_data',
      'abnormal_closure',
      'invalid_data',
      'policy_violation',
      'message_too_big',
      'internal_error',
      'other',
    ]);
  });
});
