import { describe, expect, it } from 'vitest';
import { tokenFingerprint } from '@wsgw/core';
import { connect, open, startTestGateway } from '@wsgw/testkit';

describe('security logging (CONTRACT §7)', () => {
  it('logs the four security events with context, and never the token itself', async () => {
    const token = 'S3CRET-token-that-must-never-be-logged-0123456789';
    const gw = await startTestGateway({
      CORS_ORIGINS: 'https://app.example',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100',
      LOG_LEVEL: 'trace',
    });
    await connect(gw.wsUrl(token), { origin: 'https://evil.example' });
    await connect(`ws://127.0.0.1:${gw.port}/api/ws/agent?session_token=`);
    const c = await open(gw.wsUrl(token), { origin: 'https://app.example' });
    await connect(`ws://127.0.0.1:${gw.port}/api/ws/agent`, { headers: { Authorization: `Bearer ${token}` } });
    c.send({ agent_type: 'echo', message: token, id: 'a' });
    c.send({ agent_type: 'echo', message: token, id: 'b' });
    await c.next();
    await c.next();
    await c.close();
    await gw.stop();

    const logs = gw.logs();
    const byEvent = (event: string) => logs.find((l) => l['event'] === event);
    expect(byEvent('security.origin_rejected')).toMatchObject({ origin: 'https://evil.example', path: '/api/ws/agent' });
    expect(byEvent('security.session_invalid')).toMatchObject({ reason: 'missing', path: '/api/ws/agent' });
    expect(byEvent('security.connection_limit')).toMatchObject({
      reason: 'user_connection_limit',
      user_id: expect.any(String),
      token_hash: tokenFingerprint(token),
    });
    expect(byEvent('security.rate_limited')).toMatchObject({ user_id: expect.any(String), token_hash: tokenFingerprint(token) });
    expect(gw.rawLogs()).not.toContain(token);
  });
});
