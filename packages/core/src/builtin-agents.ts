import type { AgentHandler } from './ports.js';

/** Agents served inside the gateway process (WEBSOCKET_BUILTIN_AGENTS). */
export const builtinAgents: Readonly<Record<string, AgentHandler>> = {
  /** Replies with the message it got (a plain value: the reply goes out with no microtask). */
  echo: (request) => request.message,
};
