import { MessageErrorCode } from './codes.js';

/** A client's message, after validation (CONTRACT §5). */
export interface ClientMessage {
  agent_type: string;
  message: string;
  conversation_id?: string;
  id?: string;
  pillar?: string;
}

export type ParseResult =
  | { ok: true; value: ClientMessage }
  | { ok: false; reason: string; id?: string };

/** Agent types become Redis Stream key parts and metric attributes: keep them tame. */
const AGENT_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const MAX_ID_LENGTH = 256;
const OPTIONAL_STRINGS = ['conversation_id', 'id', 'pillar'] as const;

/**
 * Parses one text frame. Never throws: any input, however hostile, yields a value.
 * When the frame is an object with a usable string `id`, a failure still carries it so the
 * error can name the message it answers.
 */
export function parseClientMessage(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'frame is not valid JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: 'frame must be a JSON object' };
  }
  const obj = raw as Record<string, unknown>;
  const id = typeof obj['id'] === 'string' && obj['id'].length <= MAX_ID_LENGTH ? obj['id'] : undefined;
  const fail = (reason: string): ParseResult => (id === undefined ? { ok: false, reason } : { ok: false, reason, id });

  const agentType = obj['agent_type'];
  if (typeof agentType !== 'string') return fail('agent_type must be a string');
  if (!AGENT_TYPE.test(agentType)) {
    return fail('agent_type must be 1-64 characters of letters, digits, _ . : -');
  }
  if (typeof obj['message'] !== 'string') return fail('message must be a string');
  for (const field of OPTIONAL_STRINGS) {
    const v = obj[field];
    if (v !== undefined && v !== null && typeof v !== 'string') return fail(`${field} must be a string`);
    if (typeof v === 'string' && v.length > MAX_ID_LENGTH) {
      return fail(`${field} must be at most ${MAX_ID_LENGTH} characters`);
    }
  }
  const value: ClientMessage = { agent_type: agentType, message: obj['message'] };
  for (const field of OPTIONAL_STRINGS) {
    const v = obj[field];
    if (typeof v === 'string') value[field] = v;
  }
  return { ok: true, value };
}

/** What a reply frame is about: enough to address it to the client's message. */
export interface ReplyAddress {
  agentType: string;
  conversationId?: string | undefined;
  clientId?: string | undefined;
}

/** `{"type": "response" | "chunk", ...}`: an agent's reply as the client sees it. */
export function replyFrame(
  kind: 'response' | 'chunk',
  to: ReplyAddress,
  message: unknown,
  done?: boolean,
): string {
  const frame: Record<string, unknown> = { type: kind, agent_type: to.agentType };
  if (to.conversationId !== undefined) frame['conversation_id'] = to.conversationId;
  frame['in_reply_to'] = to.clientId ?? null;
  frame['message'] = message;
  if (kind === 'chunk') frame['done'] = done === true;
  return JSON.stringify(frame);
}

/** `{"type": "error", ...}`: the one frame for every failed outcome of a message. */
export function errorFrame(
  code: MessageErrorCode,
  message: string,
  inReplyTo: string | undefined,
  extra?: { retry_after_ms?: number },
): string {
  const frame: Record<string, unknown> = {
    type: 'error',
    code,
    message,
    in_reply_to: inReplyTo ?? null,
  };
  if (extra?.retry_after_ms !== undefined) frame['retry_after_ms'] = extra.retry_after_ms;
  return JSON.stringify(frame);
}
