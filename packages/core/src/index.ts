export * from './ports.js';
export * from './origin.js';
export * from './fingerprint.js';
export * from './metrics.js';
export * from './admission.js';
export * from './upgrade-throttle.js';
export * from './connection.js';
export * from './hub.js';
export * from './lifecycle.js';
export * from './builtin-agents.js';
export * from './agent-runner.js';
export * from './tracing.js';
export * from './ids.js';
// Agent workers (agent-sdk) check their agent type by the rule clients' messages are checked by.
export { AGENT_TYPE_RULE, isAgentType } from '@wsgw/protocol';
