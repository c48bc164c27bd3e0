export * from './keys.js';
export * from './client.js';
export * from './bus/index.js';
