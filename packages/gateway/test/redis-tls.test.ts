import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestCertificates,
  open,
  readyStatus,
  spawnAgentWorker,
  spawnGateway,
  startRedisCluster,
  uniquePrefix,
  type GatewayProcess,
  type RedisClusterProcess,
  type TestCertificates,
  type WorkerProcess,
} from '@wsgw/testkit';

/**
 * `REDIS_URL=rediss://...` as an operator sets it: gateway and agent worker processes
 * (`npm run build` first) trusting the private CA of their Redis through NODE_EXTRA_CA_CERTS, its
 * certificate issued for the name `localhost` only (docs/REDIS.md, "TLS").
 */
describe('gateway and agent worker over rediss:// (TLS, private CA)', () => {
  let certs: TestCertificates;
  let cluster: RedisClusterProcess;
  const processes: Array<GatewayProcess | WorkerProcess> = [];

  beforeAll(async () => {
    certs = createTestCertificates({ dnsNames: ['localhost'] });
    cluster = await startRedisCluster({ masters: 3, tls: certs });
  }, 60_000);
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await cluster?.stop();
    certs?.remove();
  });

  it('Redis Cluster (rediss://localhost:port?cluster=1): upgrade, limits in Redis, a message answered by a remote worker', async () => {
    const prefix = uniquePrefix('tls-cluster');
    const env = {
      REDIS_URL: `rediss://localhost:${cluster.ports[0]}?cluster=1`,
      REDIS_KEY_PREFIX: prefix,
      NODE_EXTRA_CA_CERTS: certs.caFile,
    };
    const worker = await spawnAgentWorker({ ...env, AGENT_TYPE: 'remote' });
    processes.push(worker);
    const gateway = await spawnGateway({ ...env, WEBSOCKET_LIMITS_FAILURE_MODE: 'closed' });
    processes.push(gateway);

    const client = await open(gateway.wsUrl('alice'));
    client.send({ agent_type: 'remote', message: 'over TLS', id: 'm1' });
    expect(await client.next()).toMatchObject({ type: 'response', message: 'over TLS', in_reply_to: 'm1' });
    // The slot is in the cluster, not in this replica's memory.
    const slots = `${prefix}{slots}:all`;
    expect(await cluster.nodeAdmin(await cluster.masterOf(slots)).zcard(slots)).toBe(1);
    await client.close();
    expect(gateway.logs().some((l) => String(l['msg']).startsWith('redis unreachable'))).toBe(false);
  }, 90_000);

  it('nodes whose certificate is not from a CA it trusts: no crash, 503 in closed mode, the reason logged', async () => {
    const gateway = await spawnGateway(
      {
        REDIS_URL: `rediss://localhost:${cluster.ports[0]}?cluster=1`,
        REDIS_KEY_PREFIX: uniquePrefix('tls-wrong-ca'),
        NODE_EXTRA_CA_CERTS: certs.otherCaFile,
        WEBSOCKET_LIMITS_FAILURE_MODE: 'closed',
      },
      { waitReady: false },
    );
    processes.push(gateway);
    const why = await gateway.waitForLog((l) => l['msg'] === 'redis: why the first connection failed');
    expect(String((why['err'] as { message?: string } | undefined)?.message)).toMatch(/certificate/i);
    expect(await readyStatus(gateway)).toBe(503);
    // Still running, still refusing: it keeps trying in the background.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await readyStatus(gateway)).toBe(503);
    expect(gateway.stderr()).toBe('');
  }, 60_000);
});
