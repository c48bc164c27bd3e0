#!/usr/bin/env node
/**
 * The gateway process (`node packages/gateway/dist/main.js`). Only the signal handlers come before
 * the rest is loaded (the OpenTelemetry SDK, uWS, ioredis: most of a second on a busy node): a
 * SIGTERM for a pod that is still starting then ends it with exit 0 like any other (CONTRACT §1),
 * not by the signal's default action.
 */
let requested: NodeJS.Signals | undefined;
let handler: ((signal: NodeJS.Signals) => void) | undefined;
const onSignal = (signal: NodeJS.Signals): void => {
  if (handler) handler(signal);
  else requested ??= signal;
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

const { runGateway } = await import('./run.js');
await runGateway({
  requested: () => requested,
  onStop(stop) {
    handler = stop;
    if (requested !== undefined) stop(requested);
  },
});
