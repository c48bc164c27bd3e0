import { describe, expect, it } from 'vitest';
import { ConnectionHub, Lifecycle, noopMetrics } from '@wsgw/core';
import { FakeBus, FakeClock, FakeLeases, FakeRates, RecordingLogger } from './fakes.js';

function lifecycle() {
  const log = new RecordingLogger();
  const hub = new ConnectionHub(
    { replicaId: 'r1', maxMessagesPerMinute: 5, agentReplyTimeoutMs: 5000, sweepIntervalMs: 60_000 },
    { leases: new FakeLeases(), rates: new FakeRates(), bus: new FakeBus(), clock: new FakeClock(), metrics: noopMetrics, log },
  );
  return { hub, lifecycle: new Lifecycle(hub, log, 0) };
}

describe('Lifecycle', () => {
  it('refuses upgrades (unavailable) and reports not ready until the stores are ready', () => {
    const { hub, lifecycle: l } = lifecycle();
    expect(l.current).toBe('starting');
    expect(l.isUnavailable()).toBe(true);
    expect(l.isReady()).toBe(false);
    l.markReady();
    expect(l.isUnavailable()).toBe(false);
    expect(l.isReady()).toBe(true);
    hub.stop();
  });

  it('stays unavailable while a check says so, and drains on shutdown', async () => {
    const { hub, lifecycle: l } = lifecycle();
    let redisDown = true;
    l.addUnavailableCheck(() => redisDown);
    l.markReady();
    expect(l.isUnavailable()).toBe(true);
    expect(l.isReady()).toBe(false);
    redisDown = false;
    expect(l.isReady()).toBe(true);
    await l.shutdown([]);
    expect(l.isDraining()).toBe(true);
    expect(l.current).toBe('stopped');
    hub.stop();
  });
});
