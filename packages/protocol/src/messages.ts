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

/** What an agent type may be (clients' messages, agent workers' settings): the same rule for both. */
export const AGENT_TYPE_RULE = '1-64 characters of letters, digits, _ . : - (starting with a letter or digit)';

/** Whether `name` can be an agent type that clients may address. */
export function isAgentType(name: string): boolean {
  return AGENT_TYPE.test(name);
}

const MAX_ID_LENGTH = 256;

/**
 * Parses one text frame. Never throws: any input, however hostile, yields a value.
 * When the frame is an object with a usable string `id`, a failure still carries it so the
 * error can name the message it answers. Runs once per frame: one pass over the known fields,
 * nothing allocated but the result.
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
  const agentType = obj['agent_type'];
  const message = obj['message'];
  const conversationId = obj['conversation_id'];
  const id = obj['id'];
  const pillar = obj['pillar'];
  const reason =
    typeof agentType !== 'string'
      ? 'agent_type must be a string'
      : !isAgentType(agentType)
        ? `agent_type must be ${AGENT_TYPE_RULE}`
        : typeof message !== 'string'
          ? 'message must be a string'
          : (optionalStringProblem('conversation_id', conversationId) ??
            optionalStringProblem('id', id) ??
            optionalStringProblem('pillar', pillar));
  if (reason !== undefined) {
    return typeof id === 'string' && id.length <= MAX_ID_LENGTH ? { ok: false, reason, id } : { ok: false, reason };
  }
  const value: ClientMessage = { agent_type: agentType as string, message: message as string };
  if (typeof conversationId === 'string') value.conversation_id = conversationId;
  if (typeof id === 'string') value.id = id;
  if (typeof pillar === 'string') value.pillar = pillar;
  return { ok: true, value };
}

/** Why an optional string field is unusable; undefined when it is absent, null or fine. */
function optionalStringProblem(field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return `${field} must be a string`;
  if (v.length > MAX_ID_LENGTH) return `${field} must be at most ${MAX_ID_LENGTH} characters`;
  return undefined;
}

/** What a reply frame is about: enough to address it to the client's message. */
export interface ReplyAddress {
  agentType: string;
  conversationId?: string | undefined;
  clientId?: string | undefined;
}

/**
 * `{"type": "response" | "chunk", ...}`: an agent's reply as the client sees it. Written out
 * field by field (the same text `JSON.stringify` of the object would give, keys in this order):
 * this runs once per reply.
 */
export function replyFrame(
  kind: 'response' | 'chunk',
  to: ReplyAddress,
  message: unknown,
  done?: boolean,
): string {
  let frame = (kind === 'chunk' ? '{"type":"chunk","agent_type":' : '{"type":"response","agent_type":') + jsonString(to.agentType);
  if (to.conversationId !== undefined) frame += ',"conversation_id":' + jsonString(to.conversationId);
  frame += to.clientId === undefined ? ',"in_reply_to":null' : ',"in_reply_to":' + jsonString(to.clientId);
  // Like JSON.stringify of an object: a value with no JSON form (undefined, a function) is left out.
  const body: string | undefined = typeof message === 'string' ? jsonString(message) : JSON.stringify(message);
  if (body !== undefined) frame += ',"message":' + body;
  if (kind === 'chunk') frame += done === true ? ',"done":true}' : ',"done":false}';
  else frame += '}';
  return frame;
}

/**
 * Strings JSON.stringify leaves as they are between its quotes: no quote, backslash, control
 * character or surrogate (it escapes lone ones; any one sends the string the slow way).
 */
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;
/** Checked with PLAIN up to this length; longer strings are not worth scanning twice. */
const PLAIN_MAX = 4096;

/**
 * `JSON.stringify(text)`, without its call for the strings replies are mostly made of (ids,
 * agent types, plain text): about a third of the cost of a reply frame.
 */
function jsonString(text: string): string {
  return text.length <= PLAIN_MAX && PLAIN.test(text) ? '"' + text + '"' : JSON.stringify(text);
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
