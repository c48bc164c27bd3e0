export * from './server.js';
export * from './load.js';
