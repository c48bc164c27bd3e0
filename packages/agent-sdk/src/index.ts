export type { AgentHandler, AgentRequest } from '@wsgw/core';
export * from './worker.js';
export * from './serve.js';
