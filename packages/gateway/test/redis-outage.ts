import { expect } from 'vitest';
import {
  connect,
  open,
  readyStatus,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type OpenClient,
  type RedisServerProcess,
} from '@wsgw/testkit';
import { eventually } from './redis-support.js';

// Issue 3 §6 on one Redis (redis-failure.test.ts) and on a Redis Cluster
// (redis-cluster-failure.test.ts): the outage scenario both run, and its helpers.

/** An outage to run the scenario through: how it starts, and how it ends (Redis answers again). */
export interface Outage {
  begin: () => Promise<void>;
  end: () => Promise<void>;
}

/** Where the replicas find Redis, and how the test counts the slots held there. */
export interface Target {
  url: () => string;
  /**
   * Unexpired slots in a sorted set (liveSlots). Not ZCARD: leases that ran out during a long
   * outage stay in the set until a script reaps them, and would pass for re-registered slots.
   */
  slotCount: (key: string) => Promise<number>;
  started: GatewayProcess[];
}

/**
 * Three replicas: two `local` sharing a key prefix, one `closed`. Sockets opened before the outage,
 * decisions during it (bounded in time, per the failure mode), and after it: every replica back on
 * Redis, held slots registered again, shared limits applied.
 */
export async function outageScenario(name: string, target: Target, outage: Outage): Promise<void> {
  const tag = name.replace(/[^a-z]+/g, '-');
  const localPrefix = uniquePrefix(`fail-local-${tag}`);
  const env = (prefix: string, mode: string) => ({
    REDIS_URL: target.url(),
    REDIS_KEY_PREFIX: prefix,
    WEBSOCKET_LIMITS_FAILURE_MODE: mode,
    WEBSOCKET_MAX_CONNECTIONS_PER_USER: '2',
    WEBSOCKET_MAX_MESSAGES_PER_SECOND: '3',
    WEBSOCKET_LEASE_SECONDS: '3',
  });
  const [local1, local2, closed] = await Promise.all([
    spawnGateway(env(localPrefix, 'local')),
    spawnGateway(env(localPrefix, 'local')),
    spawnGateway(env(uniquePrefix(`fail-closed-${tag}`), 'closed')),
  ]);
  target.started.push(local1, local2, closed);
  const before: OpenClient[] = [await open(local1.wsUrl('u')), await open(closed.wsUrl('c'))];

  await outage.begin();
  const t0 = Date.now();

  // closed: refused with 503 unavailable, in bounded time.
  const refused = await timed(() => connect(closed.wsUrl('c')));
  expect(refused.ms).toBeLessThan(BOUND_MS);
  expect(refused.value.opened ? null : refused.value.rejected).toMatchObject({ status: 503, body: { error: 'unavailable' } });
  // local: a new upgrade is decided from this replica's memory, in bounded time...
  const first = await timed(() => connect(local1.wsUrl('u')));
  expect(first.ms).toBeLessThan(BOUND_MS);
  expect(first.value.opened).toBe(true);
  // ...with the same limits: 2 per user on this replica.
  const second = await timed(() => connect(local1.wsUrl('u')));
  expect(second.ms).toBeLessThan(BOUND_MS);
  expect(second.value.opened ? 200 : second.value.rejected.status).toBe(429);
  // /readyz: 200 in local mode, 503 in closed mode.
  expect(await readyStatus(local1)).toBe(200);
  // (A timeout is confirmed by a PING before Redis counts as away: a few seconds.)
  await eventually(async () => (await readyStatus(closed)) === 503, 8000, 'closed mode not ready');

  // Messages on sockets opened before the outage: local still limits (3 a second, in memory),
  // closed answers `unavailable`. Invalid frames pass the limiter without needing an agent.
  const [onLocal, onClosed] = before as [OpenClient, OpenClient];
  for (let i = 0; i < 5; i++) onLocal.send({ id: `l${i}` });
  const localFrames = await Promise.all(Array.from({ length: 5 }, () => onLocal.next(5000)));
  expect(localFrames.filter((f) => f['code'] === 'invalid_message')).toHaveLength(3);
  expect(localFrames.filter((f) => f['code'] === 'rate_limited')).toHaveLength(2);
  onClosed.send({ agent_type: 'echo', message: 'hi', id: 'c1' });
  expect(await onClosed.next(5000)).toMatchObject({ type: 'error', code: 'unavailable', in_reply_to: 'c1' });
  // Existing sockets stay up.
  expect(before.every((c) => c.ws.readyState === c.ws.OPEN)).toBe(true);
  const opened = first.value.opened ? first.value.client : undefined;
  expect(Date.now() - t0).toBeLessThan(15_000);

  await outage.end();
  const back = Date.now();
  // Within 5 s of Redis answering, every replica that noticed the outage is back on Redis...
  await eventually(
    async () => [local1, local2, closed].every((gw) => lastHealth(gw) !== 'down') && (await readyStatus(closed)) === 200,
    RECOVERY_MS,
    'every replica back on redis',
  );
  // ...and holds its slots in Redis again,
  await eventually(async () => (await target.slotCount(`${localPrefix}{slots}:all`)) === 2, 5000, 'slots re-registered');
  expect(Date.now() - back).toBeLessThan(RECOVERY_MS);
  // ...so the shared limit counts them: user u already has 2 (both on local1), local2 refuses.
  const shared = await connect(local2.wsUrl('u'));
  expect(shared.opened ? 200 : shared.rejected.status).toBe(429);
  const again = await connect(closed.wsUrl('c'));
  expect(again.opened).toBe(true);

  // No crash, no unhandled rejection.
  for (const gw of [local1, local2, closed]) {
    expect(gw.logs().some((l) => l['msg'] === 'unhandled rejection')).toBe(false);
    expect(gw.stderr()).toBe('');
  }
  for (const c of [...before, ...(opened ? [opened] : []), ...(again.opened ? [again.client] : [])]) await c.close();
  await Promise.all([local1, local2, closed].map((g) => g.stop()));
}

/**
 * Decisions take at most the client's command timeout (1 s) plus the upgrade itself; recovery takes
 * a reconnect (<= 1 s) and a probe (0.5 s). The bounds here leave room for a machine shared with
 * other builds, where a process can wait seconds for a CPU.
 */
export const BOUND_MS = 6000;
export const RECOVERY_MS = 8000;

/** `down` if this replica's last word on Redis is that it is unreachable. */
export function lastHealth(gw: GatewayProcess): 'up' | 'down' {
  const lines = gw.logs().filter((l) => String(l['msg']).startsWith('redis unreachable') || l['msg'] === 'redis answers again: shared limits apply');
  const last = lines[lines.length - 1];
  return last && String(last['msg']).startsWith('redis unreachable') ? 'down' : 'up';
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - start };
}

export async function fetchPing(server: RedisServerProcess): Promise<string> {
  const c = server.admin();
  try {
    return await Promise.race([c.ping(), new Promise<string>((r) => setTimeout(() => r('timeout'), 500))]);
  } catch {
    return 'error';
  }
}
