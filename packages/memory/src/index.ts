export * from './leases.js';
export * from './rate.js';
export * from './bus.js';
export * from './throttle.js';

