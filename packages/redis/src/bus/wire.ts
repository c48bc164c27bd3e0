import type { AgentReply, AgentRequest } from '@wsgw/core';

/**
 * How agent requests and replies look inside Redis Streams. Requests keep one field per
 * property so `XRANGE` stays readable for an operator; a reply is one JSON field, since
 * only machines read the reply streams.
 */

/** A stream entry as ioredis returns it: `[id, [field, value, field, value, ...]]`. */
export type RawEntry = [id: string, fields: string[]];

const REQUIRED = ['request_id', 'connection_id', 'replica_id', 'user_id', 'agent_type', 'message'] as const;

/** The flat field list of XADD for one request. */
export function encodeRequest(request: AgentRequest): string[] {
  const fields = [
    'request_id',
    request.requestId,
    'connection_id',
    request.connectionId,
    'replica_id',
    request.replicaId,
    'user_id',
    request.userId,
    'agent_type',
    request.agentType,
    'message',
    request.message,
  ];
  if (request.conversationId !== undefined) fields.push('conversation_id', request.conversationId);
  if (request.clientId !== undefined) fields.push('client_id', request.clientId);
  if (request.pillar !== undefined) fields.push('pillar', request.pillar);
  if (request.trace !== undefined && Object.keys(request.trace).length > 0) {
    fields.push('trace', JSON.stringify(request.trace));
  }
  return fields;
}

/** A request read back from its stream; undefined when the entry is not one (never throws). */
export function decodeRequest(fields: readonly string[]): AgentRequest | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  for (const name of REQUIRED) if (!map.has(name)) return undefined;
  return {
    requestId: map.get('request_id') as string,
    connectionId: map.get('connection_id') as string,
    replicaId: map.get('replica_id') as string,
    userId: map.get('user_id') as string,
    agentType: map.get('agent_type') as string,
    message: map.get('message') as string,
    conversationId: map.get('conversation_id'),
    clientId: map.get('client_id'),
    pillar: map.get('pillar'),
    trace: parseTrace(map.get('trace')),
  };
}

function parseTrace(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const carrier: Record<string, string> = {};
    for (const [k, v] of Object.entries(value)) if (typeof v === 'string') carrier[k] = v;
    return carrier;
  } catch {
    return undefined;
  }
}

/**
 * A reply on the wire. `seq` numbers the replies of one delivery of a request from 0, so the
 * gateway can drop the replies a second worker repeats after taking over a request mid-stream.
 */
export interface WireReply extends AgentReply {
  seq: number;
}

/** The field of a reply-stream entry: a JSON array of the replies one worker flushed together. */
export const REPLIES_FIELD = 'replies';

/**
 * One reply-stream entry's value: the replies in the order they were produced. Every message must
 * have a JSON form: workers drop one that has none before queueing it (AgentWorker, with a log
 * line), since a batch that cannot be written would hold up every reply queued behind it.
 */
export function encodeReplies(replies: readonly WireReply[]): string {
  return JSON.stringify(
    replies.map((r) => ({
      request_id: r.requestId,
      connection_id: r.connectionId,
      kind: r.kind,
      message: r.message,
      done: r.done === true,
      seq: r.seq,
    })),
  );
}

/** The replies of one reply-stream entry; undefined when it is not one (never throws). */
export function decodeReplies(fields: readonly string[]): WireReply[] | undefined {
  const i = fields.indexOf(REPLIES_FIELD);
  const text = i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  const replies: WireReply[] = [];
  for (const item of parsed) {
    const v = item as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) continue;
    if (typeof v['request_id'] !== 'string' || typeof v['connection_id'] !== 'string') continue;
    if (v['kind'] !== 'response' && v['kind'] !== 'chunk') continue;
    replies.push({
      requestId: v['request_id'],
      connectionId: v['connection_id'],
      kind: v['kind'],
      message: v['message'],
      done: v['done'] === true,
      seq: typeof v['seq'] === 'number' ? v['seq'] : 0,
    });
  }
  return replies;
}
