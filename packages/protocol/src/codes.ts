/** WebSocket close codes the gateway uses (CONTRACT §5). */
export const CloseCode = {
  normal: 1000,
  shutdown: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** `code` values of `{"type": "error"}` frames (CONTRACT §5). */
export const MessageErrorCode = {
  invalidMessage: 'invalid_message',
  rateLimited: 'rate_limited',
  agentUnavailable: 'agent_unavailable',
  agentTimeout: 'agent_timeout',
  unavailable: 'unavailable',
} as const;
export type MessageErrorCode = (typeof MessageErrorCode)[keyof typeof MessageErrorCode];
