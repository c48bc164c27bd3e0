import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { open, startTestGateway, type TestGateway } from '@wsgw/testkit';

/**
 * CONTRACT §6: "A message with no first reply within AGENT_REPLY_TIMEOUT_SECONDS gets the error
 * agent_timeout, so every message has an outcome even when every worker hangs."
 *
 * The hub measured reply deadlines on the wall clock (Date.now()), so a wall-clock step (NTP, an
 * operator, a VM resume) while a request waited moved its deadline: stepped back an hour, the
 * request got no outcome for an hour; stepped forward, it timed out at once.
 * The step is simulated here by shifting Date.now() of this process (the gateway runs in it),
 * which is what an NTP step does to CLOCK_REALTIME; performance.now() and timers are unaffected.
 */
describe('agent_timeout across a wall-clock step (the hub runs on a monotonic clock)', () => {
  let gw: TestGateway;
  const realNow = Date.now.bind(Date);
  let offsetMs = 0;

  beforeAll(async () => {
    Date.now = () => realNow() + offsetMs;
    gw = await startTestGateway(
      { AGENT_REPLY_TIMEOUT_SECONDS: '2', WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '10000' },
      { hang: () => new Promise(() => {}) },
    );
  });
  afterEach(() => {
    offsetMs = 0;
  });
  afterAll(async () => {
    await gw?.stop();
    Date.now = realNow;
  });

  it('a wall-clock step back of one hour does not delay agent_timeout by an hour', async () => {
    const c = await open(gw.wsUrl('clock-back'));
    c.send({ agent_type: 'hang', message: 'x', id: 'b1' });
    await new Promise((r) => setTimeout(r, 200));
    offsetMs = -3_600_000; // NTP steps the wall clock back one hour
    // Timeout 2 s: the outcome is due ~1.8 s from now; 6 s of real time is plenty.
    const frame = await c.next(6_000).catch((err: Error) => ({ no_outcome: err.message }));
    expect(frame).toMatchObject({ type: 'error', code: 'agent_timeout', in_reply_to: 'b1' });
    await c.close();
  });

  it('a wall-clock step forward does not time a request out before AGENT_REPLY_TIMEOUT_SECONDS', async () => {
    const c = await open(gw.wsUrl('clock-fwd'));
    const sent = performance.now();
    c.send({ agent_type: 'hang', message: 'x', id: 'f1' });
    await new Promise((r) => setTimeout(r, 200));
    offsetMs = 3_600_000; // stepped forward one hour
    const frame = await c.next(6_000);
    const afterMs = performance.now() - sent;
    expect(frame).toMatchObject({ type: 'error', code: 'agent_timeout', in_reply_to: 'f1' });
    // No first reply "within 2 s" cannot be known before 2 s have passed.
    expect(afterMs).toBeGreaterThanOrEqual(1_900);
    await c.close();
  });
});
