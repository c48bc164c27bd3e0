export * from './logger.js';
export * from './sdk.js';
export * from './metrics.js';
export * from './attributes.js';
export * from './redis.js';
export * from './sampler.js';
export * from './context.js';
