import { describe, expect, it } from 'vitest';
import { AttributeCache, BoundedAttributes, BoundedAttributes2, closeCodeClass, durationClass } from '@wsgw/telemetry';

describe('attribute sets for metrics', () => {
  it('reuses one frozen object per value pair, so the hot path allocates nothing', () => {
    const sets = new BoundedAttributes2('agent_type', 'pillar', 10);
    const a = sets.get('echo', 'p1');
    expect(a).toEqual({ agent_type: 'echo', pillar: 'p1' });
    expect(sets.get('echo', 'p1')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(sets.get('echo', undefined)).toEqual({ agent_type: 'echo', pillar: 'none' });
  });

  it('caps client-chosen values: past the cap, and for over-long values, everything is `other`', () => {
    const sets = new BoundedAttributes2('agent_type', 'pillar', 2);
    sets.get('a', undefined);
    sets.get('b', undefined);
    expect(sets.get('c', undefined)).toEqual({ agent_type: 'other', pillar: 'other' });
    expect(sets.get('a', undefined)).toEqual({ agent_type: 'a', pillar: 'none' });
    const fresh = new BoundedAttributes2('agent_type', 'pillar', 100);
    expect(fresh.get('x'.repeat(65), undefined)).toEqual({ agent_type: 'other', pillar: 'other' });
    // A value that must not have a series of its own (a type no agent took).
    expect(fresh.get(null, 'p')).toEqual({ agent_type: 'other', pillar: 'other' });

    const one = new BoundedAttributes('agent_type', 1);
    expect(one.get('echo')).toEqual({ agent_type: 'echo' });
    expect(one.get('other-agent')).toEqual({ agent_type: 'other' });
  });

  it('caps the second value per first one: invented pillars never turn a real agent type into `other`', () => {
    const sets = new BoundedAttributes2('agent_type', 'pillar', 2, 3);
    for (let i = 0; i < 250; i++) sets.get('echo', `p-${i}`);
    expect(sets.get('echo', 'p-0')).toEqual({ agent_type: 'echo', pillar: 'p-0' });
    expect(sets.get('echo', 'p-3')).toEqual({ agent_type: 'echo', pillar: 'other' });
    expect(sets.get('echo', 'x'.repeat(65))).toEqual({ agent_type: 'echo', pillar: 'other' });
    // Other agent types keep room of their own.
    expect(sets.get('words', undefined)).toEqual({ agent_type: 'words', pillar: 'none' });
    expect(sets.get('third', undefined)).toEqual({ agent_type: 'other', pillar: 'other' });
  });

  it('caches server-side keys', () => {
    let built = 0;
    const cache = new AttributeCache((reason) => {
      built++;
      return { reason };
    });
    expect(cache.get('invalid')).toBe(cache.get('invalid'));
    expect(built).toBe(1);
  });

  it('turns lifetimes and close codes into a handful of classes', () => {
    expect(durationClass(10)).toBe('lt_1s');
    expect(durationClass(5_000)).toBe('lt_10s');
    expect(durationClass(30_000)).toBe('lt_1m');
    expect(durationClass(120_000)).toBe('lt_10m');
    expect(durationClass(1_800_000)).toBe('lt_1h');
    expect(durationClass(7_200_000)).toBe('ge_1h');
    expect(closeCodeClass(1000)).toBe('1000');
    expect(closeCodeClass(1009)).toBe('1009');
    expect(closeCodeClass(4321)).toBe('other');
  });
});
