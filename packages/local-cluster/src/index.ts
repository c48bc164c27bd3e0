export * from './cluster.js';
export * from './haproxy.js';
export * from './processes.js';
export * from './redis-server.js';
// The V8 options every gateway process ships with (the replicas here, and the image: deploy-checks
// holds the Dockerfile's NODE_OPTIONS to it).
export { GATEWAY_NODE_OPTIONS } from '@wsgw/gateway/runtime';
