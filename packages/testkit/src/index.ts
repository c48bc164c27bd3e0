export * from './client.js';
export * from './gateway.js';
export * from './redis.js';
export * from './redis-cluster.js';
export * from './processes.js';
export * from './otlp.js';
export * from './workers.js';
export * from './proxy.js';
