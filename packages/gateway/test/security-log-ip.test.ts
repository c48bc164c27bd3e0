import { afterAll, describe, expect, it } from 'vitest';
import { connect, open, spawnGateway, waitFor, type GatewayProcess } from '@wsgw/testkit';

/**
 * README "Security logging": security events carry "the origin, path, client address (`ip`: the TCP
 * peer, or the client a proxy in WEBSOCKET_TRUSTED_PROXIES forwards), reason, user id where known,
 * and `token_hash`". `security.connection_limit` and `security.rate_limited` used to lack `ip`, so
 * an operator could not tell which address held the slots or flooded (the events most useful for
 * blocking an address).
 */
describe('security events carry the client address (ip)', () => {
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    await gw?.stop();
  });

  it('connection_limit and rate_limited name the ip like origin_rejected and session_invalid do', async () => {
    gw = await spawnGateway({
      CORS_ORIGINS: 'http://ok.example',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100',
    });
    const url = gw.wsUrl('the-token');
    expect((await connect(url, { origin: 'http://evil.example' })).opened).toBe(false);
    expect((await connect(`ws://127.0.0.1:${gw.port}/api/ws/agent`)).opened).toBe(false);
    const first = await open(url, { origin: 'http://ok.example' });
    expect((await connect(url, { origin: 'http://ok.example' })).opened).toBe(false);
    first.send({ agent_type: 'echo', message: 'a', id: 'a' });
    first.send({ agent_type: 'echo', message: 'b', id: 'b' });
    await first.next();
    await first.next();
    await first.close();
    const events = ['security.origin_rejected', 'security.session_invalid', 'security.connection_limit', 'security.rate_limited'];
    await waitFor(() => events.every((e) => gw!.logs().some((l) => l['event'] === e)), 5000);
    const ips = Object.fromEntries(events.map((e) => [e, gw!.logs().find((l) => l['event'] === e)!['ip']]));
    expect(ips).toEqual({
      'security.origin_rejected': '127.0.0.1',
      'security.session_invalid': '127.0.0.1',
      'security.connection_limit': '127.0.0.1',
      'security.rate_limited': '127.0.0.1',
    });
  }, 30_000);
});
