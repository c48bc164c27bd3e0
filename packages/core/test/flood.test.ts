import { describe, expect, it } from 'vitest';
import type { Connection } from '@wsgw/core';
import { FloodWatch } from '@wsgw/core/flood';

const socket = () => ({}) as Connection;

describe('FloodWatch (CONTRACT §5: closed after too many denials a minute)', () => {
  it('says first for a socket\'s first denial of the last 60 s, exceeded past the limit', () => {
    const watch = new FloodWatch(2);
    const a = socket();
    expect(watch.denied(a, 0)).toEqual({ first: true, exceeded: false });
    expect(watch.denied(a, 10)).toEqual({ first: false, exceeded: false });
    expect(watch.denied(a, 20)).toEqual({ first: false, exceeded: true });
    expect(watch.denied(socket(), 20)).toEqual({ first: true, exceeded: false });
  });

  it('forgets denials older than 60 s', () => {
    const watch = new FloodWatch(2);
    const a = socket();
    watch.denied(a, 0);
    watch.denied(a, 1000);
    expect(watch.denied(a, 60_000)).toEqual({ first: false, exceeded: false }); // the one at 0 is gone
    expect(watch.denied(a, 121_000)).toEqual({ first: true, exceeded: false });
  });
});
