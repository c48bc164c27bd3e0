export * from './app.js';
export * from './stores.js';
export * from './sessions.js';
