import { describe, expect, it } from 'vitest';
import type { Connection } from '../src/connection.js';
import { PendingRequests } from '../src/pending.js';

const connection = {} as Connection;

describe('PendingRequests: the request being published is held aside', () => {
  it('never enters the map when answered in full before publish returns', () => {
    const pending = new PendingRequests(1000);
    pending.add('r1', connection, 'echo', undefined, 'c1', 0, undefined);
    expect(pending.size).toBe(1);
    expect(pending.get('r1')?.clientId).toBe('c1');
    pending.delete('r1'); // the final reply, during publish
    expect(pending.get('r1')).toBeUndefined();
    expect(pending.size).toBe(0);
    pending.published();
    expect(pending.get('r1')).toBeUndefined();
    expect(pending.size).toBe(0);
    expect([...pending.expire(10_000)]).toEqual([]);
  });

  it('waits in deadline order once published, and a reply during publish refreshes its deadline', () => {
    const pending = new PendingRequests(1000);
    pending.add('early', connection, 'a', undefined, undefined, 0, undefined);
    pending.published();
    pending.add('streaming', connection, 'a', undefined, undefined, 100, undefined);
    const entry = pending.get('streaming')!;
    pending.touch('streaming', entry, 500); // a first chunk before publish returned
    expect(entry.replied).toBe(true);
    expect(entry.deadline).toBe(1500);
    pending.published();
    pending.add('late', connection, 'a', undefined, undefined, 600, undefined);
    pending.published();
    expect(pending.size).toBe(3);
    // Deadlines 1000, 1500, 1600: the sweep takes what is due, oldest first.
    expect([...pending.expire(1100)].map(([id]) => id)).toEqual(['early']);
    expect([...pending.expire(1550)].map(([id]) => id)).toEqual(['streaming']);
    expect([...pending.expire(1600)].map(([id]) => id)).toEqual(['late']);
    expect(pending.size).toBe(0);
  });

  it('puts a request still being published into the map when the next one is added', () => {
    const pending = new PendingRequests(1000);
    pending.add('a', connection, 'x', undefined, undefined, 0, undefined);
    pending.add('b', connection, 'x', undefined, undefined, 0, undefined);
    expect(pending.get('a')).toBeDefined();
    pending.delete('a');
    expect(pending.get('a')).toBeUndefined();
    expect(pending.size).toBe(1);
  });
});
