export * from './addresses.js';
export * from './collector.js';
export * from './compose.js';
export * from './dockerfile.js';
export * from './kustomize.js';
export * from './policy.js';
export * from './schemas.js';
export * from './run.js';
