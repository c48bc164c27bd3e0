import { loadConfig } from '@wsgw/config';
import { createGatewayMetrics, createLogger, startTelemetry } from '@wsgw/telemetry';
import { ListenError } from '@wsgw/transport-uws';
import { startGateway } from './app.js';

/** How main.ts hands over SIGTERM / SIGINT, caught from before the modules were loaded. */
export interface StopSignals {
  /** The first signal that came before a handler was set, if any. */
  requested(): NodeJS.Signals | undefined;
  /** Every signal from now on goes to `handler`; one that came already is handed over at once. */
  onStop(handler: (signal: NodeJS.Signals) => void): void;
}

/** The gateway process: config, telemetry, the gateway, and its shutdown on a signal (CONTRACT §1). */
export async function runGateway(signals: StopSignals): Promise<void> {
  const loaded = loadConfig(process.env);
  if (!loaded.ok) {
    for (const line of loaded.errors) process.stderr.write(`config error: ${line}\n`);
    process.exit(2);
  }
  const { config } = loaded;
  // OpenTelemetry first, before anything makes a meter or a span (it needs the replica id, so it
  // comes right after the config check, which is pure and does no I/O).
  const telemetry = startTelemetry({
    env: process.env,
    replicaId: config.replicaId,
    defaultServiceName: 'ws-gateway',
    // No async hooks on the message path: core passes spans explicitly (packages/telemetry/src/context.ts).
    contextPropagation: 'synchronous',
  });
  const log = createLogger({ level: config.logLevel, replicaId: config.replicaId });
  const metrics = createGatewayMetrics(telemetry.meter('@wsgw/gateway'), config.corsOrigins);

  process.on('unhandledRejection', (err) => {
    log.error({ err }, 'unhandled rejection');
  });

  const early = signals.requested();
  if (early !== undefined) {
    // Stopped while loading: nothing listens or holds a slot yet.
    log.info({ signal: early }, 'stopped before starting');
    await telemetry.shutdown();
    log.flush();
    process.exit(0);
  }

  try {
    const gateway = await startGateway(config, { log, metrics });
    let received = 0;
    const stop = (signal: NodeJS.Signals) => {
      received++;
      log.info({ signal }, received === 1 ? 'shutting down' : 'shutdown already in progress');
      gateway
        .shutdown()
        // The last metrics and spans (this replica's final counts) go out before exit, in bounded time.
        .then(() => telemetry.shutdown())
        .then(() => {
          log.flush();
          process.exit(0);
        })
        .catch((err: unknown) => {
          log.error({ err }, 'shutdown failed');
          log.flush();
          process.exit(1);
        });
    };
    // A signal that came while it was starting stops it now, like one that comes later.
    signals.onStop(stop);
  } catch (err) {
    // stderr as for a bad configuration (CONTRACT §1): an address it cannot listen on is one too,
    // found only when binding. The fatal line on stdout keeps the stack for the log pipeline.
    const problem =
      err instanceof ListenError
        ? `HOST/PORT: ${err.message} (not an address of this host, a name that does not resolve, or in use)`
        : `gateway failed to start: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`${problem}\n`);
    log.fatal({ err }, 'gateway failed to start');
    await telemetry.shutdown();
    log.flush();
    process.exit(1);
  }
}
