export * from './server.js';
export * from './load.js';
export * from './client-address.js';
