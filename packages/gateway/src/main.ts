#!/usr/bin/env node
import { loadConfig } from '@wsgw/config';
import { createLogger } from '@wsgw/telemetry';
import { startGateway } from './app.js';

const loaded = loadConfig(process.env);
if (!loaded.ok) {
  for (const line of loaded.errors) process.stderr.write(`config error: ${line}\n`);
  process.exit(2);
}
const { config } = loaded;
const log = createLogger({ level: config.logLevel, replicaId: config.replicaId });

process.on('unhandledRejection', (err) => {
  log.error({ err }, 'unhandled rejection');
});

try {
  const gateway = await startGateway(config, { log });
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals++;
    log.info({ signal }, signals === 1 ? 'shutting down' : 'shutdown already in progress');
    gateway
      .shutdown()
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
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (err) {
  log.fatal({ err }, 'gateway failed to start');
  log.flush();
  process.exit(1);
}
