export * from './client.js';
export * from './gateway.js';
