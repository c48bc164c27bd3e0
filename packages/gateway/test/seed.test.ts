import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, startTestGateway, type TestGateway } from '@wsgw/testkit';

describe('the seed test: echo in embedded mode', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw.stop();
  });

  it('answers the seed message with the echo agent', async () => {
    const client = await open(gw.wsUrl('test123'));
    client.send({ agent_type: 'echo', message: 'Hello', conversation_id: 'c1' });
    expect(await client.next()).toEqual({
      type: 'response',
      agent_type: 'echo',
      conversation_id: 'c1',
      in_reply_to: null,
      message: 'Hello',
    });
    await client.close();
  });
});
