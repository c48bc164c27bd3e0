export * from './dev.js';
export * from './jwt.js';
export * from './http.js';
export * from './redis.js';
