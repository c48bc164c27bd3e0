export * from './wire.js';
export * from './agent-streams.js';
export * from './redis-agent-bus.js';
