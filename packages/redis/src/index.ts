export * from './keys.js';
export * from './client.js';
export * from './bus/index.js';
export * from './limits/health.js';
export * from './limits/leases.js';
export * from './limits/rate.js';
export * from './limits/failover.js';
export * from './limits/throttle.js';
