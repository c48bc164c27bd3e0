export * from './cluster.js';
export * from './haproxy.js';
export * from './processes.js';
export * from './redis-server.js';
