import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import { openSocket } from './support.js';

/**
 * Behind HAProxy every TCP peer a replica sees is HAProxy. The failed-session throttle counts per
 * client address, so the cluster must hand the replicas WEBSOCKET_TRUSTED_PROXIES and HAProxy must
 * send X-Forwarded-For: otherwise one client's bad tokens get every client 429. Clients here
 * connect from their own loopback addresses (Linux routes all of 127.0.0.0/8 to lo); HAProxy
 * reaches the replicas from 127.0.0.1, the one trusted address.
 */
const FAILURES = 3;
const CLIENT_A = '127.0.0.2';
const CLIENT_B = '127.0.0.3';

describe('the client address through HAProxy (WEBSOCKET_TRUSTED_PROXIES)', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    cluster = await LocalCluster.start({
      // One replica: the budget is exact (across R replicas an address gets up to R - 1 more checks).
      replicas: 1,
      env: {
        // jwt: a token that is not a JWT is a failed session check (the dev validator takes any token).
        SESSION_VALIDATOR: 'jwt',
        SESSION_JWT_SECRET: 'local-cluster-proxy-test-secret-0123456789',
        WEBSOCKET_SESSION_FAILURES_PER_MINUTE: String(FAILURES),
        SHUTDOWN_DRAIN_SECONDS: '1',
      },
    });
  }, 150_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  const badToken = async (localAddress: string, headers: Record<string, string> = {}) => {
    const result = await openSocket(cluster.wsUrl('not-a-jwt'), { localAddress, headers });
    if (result.opened) {
      result.socket.ws.terminate();
      throw new Error('a bad token opened a socket');
    }
    return [result.status, result.body?.error];
  };

  it('one client\'s bad tokens throttle that client only', async () => {
    for (let i = 0; i < FAILURES; i++) expect(await badToken(CLIENT_A)).toEqual([401, 'session_invalid']);
    expect(await badToken(CLIENT_A)).toEqual([429, 'too_many_upgrades']);
    // A forged X-Forwarded-For does not help: HAProxy appends the real peer after it, and the
    // replicas take the right-most address that is not HAProxy's.
    expect(await badToken(CLIENT_A, { 'X-Forwarded-For': '198.51.100.7' })).toEqual([429, 'too_many_upgrades']);
    // Another client behind the same HAProxy keeps its own count.
    expect(await badToken(CLIENT_B)).toEqual([401, 'session_invalid']);
  });

  it('security logs carry the client\'s address, not HAProxy\'s or a forged one', async () => {
    const ips = () => {
      const seen = new Set<string>();
      for (const name of cluster.replicaNames()) {
        for (const line of readFileSync(cluster.logFile(name), 'utf8').split('\n')) {
          if (!line.includes('"security.session_invalid"')) continue;
          seen.add(String((JSON.parse(line) as { ip?: unknown }).ip));
        }
      }
      return [...seen].sort();
    };
    // A replica's log line may reach its file a moment after the refusal reached the client.
    await waitUntil(() => ips().length >= 2).catch(() => undefined);
    expect(ips()).toEqual([CLIENT_A, CLIENT_B]);
  });

  it('HAProxy logs each upgrade without its query string, where browsers send the session token', async () => {
    const token = 'not-a-jwt-but-secret-all-the-same';
    const result = await openSocket(cluster.wsUrl(token), { localAddress: '127.0.0.4' });
    expect(result.opened).toBe(false);
    const haproxyLog = join(cluster.logDir, 'haproxy.log');
    const upgrades = () => readFileSync(haproxyLog, 'utf8').split('\n').filter((l) => l.includes('/api/ws/agent'));
    await waitUntil(() => upgrades().some((l) => l.startsWith('127.0.0.4:')));
    // Before: `option httplog` logged `"GET /api/ws/agent?session_token=<token> HTTP/1.1"`.
    expect(upgrades().find((l) => l.startsWith('127.0.0.4:'))).toContain('"GET /api/ws/agent HTTP/1.1"');
    for (const line of upgrades()) expect(line).not.toContain('session_token');
  });
});

async function waitUntil(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
