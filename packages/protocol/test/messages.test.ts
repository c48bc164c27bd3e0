import { describe, expect, it } from 'vitest';
import { errorFrame, parseClientMessage, replyFrame } from '@wsgw/protocol';

describe('parseClientMessage', () => {
  it('accepts the seed message and the optional fields', () => {
    expect(parseClientMessage('{"agent_type":"echo","message":"Hello","conversation_id":"c1"}')).toEqual({
      ok: true,
      value: { agent_type: 'echo', message: 'Hello', conversation_id: 'c1' },
    });
    const full = parseClientMessage('{"agent_type":"echo","message":"m","conversation_id":"c","id":"m1","pillar":"p"}');
    expect(full).toEqual({
      ok: true,
      value: { agent_type: 'echo', message: 'm', conversation_id: 'c', id: 'm1', pillar: 'p' },
    });
  });

  it('ignores unknown fields and treats null optionals as absent', () => {
    expect(parseClientMessage('{"agent_type":"echo","message":"x","id":null,"extra":[1,2]}')).toEqual({
      ok: true,
      value: { agent_type: 'echo', message: 'x' },
    });
  });

  it.each([
    ['', 'not valid JSON'],
    ['not json', 'not valid JSON'],
    ['{"agent_type":', 'not valid JSON'],
    ['null', 'JSON object'],
    ['42', 'JSON object'],
    ['"a string"', 'JSON object'],
    ['[{"agent_type":"echo","message":"x"}]', 'JSON object'],
    ['{"message":"x"}', 'agent_type must be a string'],
    ['{"agent_type":7,"message":"x"}', 'agent_type must be a string'],
    ['{"agent_type":"","message":"x"}', 'agent_type must be'],
    ['{"agent_type":"has space","message":"x"}', 'agent_type must be'],
    [`{"agent_type":"${'a'.repeat(65)}","message":"x"}`, 'agent_type must be'],
    ['{"agent_type":"echo"}', 'message must be a string'],
    ['{"agent_type":"echo","message":{"nested":true}}', 'message must be a string'],
    ['{"agent_type":"echo","message":"x","conversation_id":5}', 'conversation_id must be a string'],
    ['{"agent_type":"echo","message":"x","pillar":[]}', 'pillar must be a string'],
    ['{"agent_type":"echo","message":"x","id":true}', 'id must be a string'],
    [`{"agent_type":"echo","message":"x","id":"${'i'.repeat(300)}"}`, 'id must be at most'],
  ])('rejects %j with a reason', (text, reason) => {
    const result = parseClientMessage(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });

  it('keeps the id of an invalid message so its error can name it', () => {
    expect(parseClientMessage('{"id":"m9","agent_type":3}')).toEqual({
      ok: false,
      reason: 'agent_type must be a string',
      id: 'm9',
    });
  });

  it('survives deeply nested JSON without throwing', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(() => parseClientMessage(deep)).not.toThrow();
    expect(parseClientMessage(deep).ok).toBe(false);
    const deepObject = `{"agent_type":"echo","message":"x","extra":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`;
    expect(() => parseClientMessage(deepObject)).not.toThrow();
  });
});

describe('frames', () => {
  it('addresses replies to the client message', () => {
    const to = { agentType: 'echo', conversationId: 'c1', clientId: 'm1' };
    expect(JSON.parse(replyFrame('response', to, 'Hello'))).toEqual({
      type: 'response',
      agent_type: 'echo',
      conversation_id: 'c1',
      in_reply_to: 'm1',
      message: 'Hello',
    });
    expect(JSON.parse(replyFrame('chunk', to, 'He', false))).toMatchObject({ type: 'chunk', done: false });
    expect(JSON.parse(replyFrame('chunk', to, 'llo', true))).toMatchObject({ type: 'chunk', done: true });
  });

  it('writes reply frames exactly as JSON.stringify of the frame object would', () => {
    const reference = (kind: 'response' | 'chunk', to: { agentType: string; conversationId?: string; clientId?: string }, message: unknown, done?: boolean) => {
      const frame: Record<string, unknown> = { type: kind, agent_type: to.agentType };
      if (to.conversationId !== undefined) frame['conversation_id'] = to.conversationId;
      frame['in_reply_to'] = to.clientId ?? null;
      frame['message'] = message;
      if (kind === 'chunk') frame['done'] = done === true;
      return JSON.stringify(frame);
    };
    const addresses = [
      { agentType: 'echo' },
      { agentType: 'a.b:c-d_e', conversationId: 'c "quoted" \\ \n', clientId: 'id-\u2028-é-😀' },
      { agentType: 'echo', clientId: '' },
    ];
    const messages: unknown[] = ['', 'Hello', 'line\nbreak "q" \u0000', 0, -1.5, true, null, undefined, [1, 'x', null], { nested: { a: [1, 2] }, s: 'ü' }];
    for (const to of addresses) {
      for (const message of messages) {
        expect(replyFrame('response', to, message)).toBe(reference('response', to, message));
        for (const done of [true, false, undefined]) {
          expect(replyFrame('chunk', to, message, done)).toBe(reference('chunk', to, message, done));
        }
      }
    }
  });

  it('quotes every string as JSON.stringify does, plain or not, short or long, in every field', () => {
    const strings = [
      '', 'plain', '/', '\u007f', '\u0020', '\u001f', '\u0000', '"', '\\', 'tab\there', '\u2028\u2029',
      '\ud800', 'x\udfff', '\udbff\udc00 lone pair parts', '😀 valid pair', 'é ü ß', 'a'.repeat(4096), 'a'.repeat(4097),
      'a'.repeat(4095) + '"', 'b'.repeat(10_000) + '\n',
    ];
    for (const text of strings) {
      const frame = replyFrame('response', { agentType: 'echo', conversationId: text, clientId: text }, text);
      expect(frame).toBe(JSON.stringify({ type: 'response', agent_type: 'echo', conversation_id: text, in_reply_to: text, message: text }));
    }
  });

  it('omits conversation_id when the client gave none', () => {
    expect(JSON.parse(replyFrame('response', { agentType: 'echo' }, 'x'))).not.toHaveProperty('conversation_id');
  });

  it('builds error frames with retry_after_ms only for rate limits', () => {
    expect(JSON.parse(errorFrame('rate_limited', 'slow down', 'm1', { retry_after_ms: 250 }))).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'slow down',
      in_reply_to: 'm1',
      retry_after_ms: 250,
    });
    expect(JSON.parse(errorFrame('invalid_message', 'bad', undefined))).toEqual({
      type: 'error',
      code: 'invalid_message',
      message: 'bad',
      in_reply_to: null,
    });
  });
});
