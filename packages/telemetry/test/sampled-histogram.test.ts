import type { Attributes, Histogram } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { SampledHistogram } from '@wsgw/telemetry';

/** A histogram that keeps what it is given, and a clock the test moves. */
function setup(perSecond: number) {
  const kept: Array<[number, Attributes | undefined]> = [];
  const histogram = { record: (value: number, attrs?: Attributes) => kept.push([value, attrs]) } as Histogram;
  let now = 0;
  const sampled = new SampledHistogram(histogram, perSecond, () => now);
  return { kept, sampled, advance: (ms: number) => (now += ms) };
}

describe('SampledHistogram', () => {
  const echo = Object.freeze({ agent_type: 'echo' });
  const words = Object.freeze({ agent_type: 'words' });

  it('records every value below the rate', () => {
    const { kept, sampled, advance } = setup(1000);
    for (let i = 0; i < 5000; i++) {
      sampled.record(i, echo);
      advance(2); // 500 a second
    }
    expect(kept).toHaveLength(5000);
    expect(kept.every(([, a]) => a === echo)).toBe(true);
  });

  it('keeps about the rate under load, per attribute set, and the mean of what it keeps', () => {
    const { kept, sampled, advance } = setup(1000);
    let sum = 0;
    const n = 1024 + 100_000;
    for (let i = 0; i < n; i++) {
      const value = (i * 7919) % 1000; // spread over 0..999, mean 499.5
      sum += value;
      sampled.record(value, echo);
      if (i % 10 === 0) sampled.record(1, words); // a quiet agent beside it: 10,000 a second
      advance(0.01); // 100,000 a second
    }
    const echoKept = kept.filter(([, a]) => a === echo).map(([v]) => v);
    // The first 1024 before the rate is known, then every 100th.
    expect(echoKept.length).toBeGreaterThan(1024 + 900);
    expect(echoKept.length).toBeLessThan(1024 + 1100);
    const mean = echoKept.reduce((a, b) => a + b, 0) / echoKept.length;
    expect(Math.abs(mean - sum / n)).toBeLessThan(25);
    // The other agent type has its own rate: 10,000 a second, every 10th once measured.
    const wordsKept = kept.filter(([, a]) => a === words).length;
    expect(wordsKept).toBeGreaterThan(1024 + 800);
    expect(wordsKept).toBeLessThan(1024 + 1200);
  });

  it('records every value again once the load is gone', () => {
    const { kept, sampled, advance } = setup(1000);
    for (let i = 0; i < 4096; i++) {
      sampled.record(1, echo);
      advance(0.01);
    }
    const afterBurst = kept.length;
    // The next 1024 values arrive slowly: still thinned by the burst's stride, then all recorded.
    for (let i = 0; i < 1024 + 500; i++) {
      sampled.record(2, echo);
      advance(5);
    }
    expect(kept.length - afterBurst).toBeGreaterThanOrEqual(500);
    expect(kept.slice(-500).every(([v]) => v === 2)).toBe(true);
  });
});
