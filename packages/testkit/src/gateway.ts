import { PassThrough } from 'node:stream';
import { loadConfig } from '@wsgw/config';
import type { AgentHandler } from '@wsgw/core';
import { startGateway, type GatewayHandle } from '@wsgw/gateway';
import { createLogger } from '@wsgw/telemetry';

export interface TestGateway {
  handle: GatewayHandle;
  port: number;
  /** `ws://127.0.0.1:{port}{path}/agent?session_token=...` */
  wsUrl(token?: string, path?: string): string;
  httpUrl(path: string): string;
  /** Log lines written so far, parsed. */
  logs(): Array<Record<string, unknown>>;
  /** Raw log text, for "this never appears" checks. */
  rawLogs(): string;
  stop(): Promise<void>;
}

/**
 * A real gateway (real uWS server on a free port) in this process, configured like the
 * process would be from `env`. Logs are captured for assertions.
 */
export async function startTestGateway(
  env: Record<string, string> = {},
  agents: Readonly<Record<string, AgentHandler>> = {},
): Promise<TestGateway> {
  const loaded = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'debug', ...env });
  if (!loaded.ok) throw new Error(`bad test config: ${loaded.errors.join('; ')}`);
  const stream = new PassThrough();
  let raw = '';
  stream.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  const log = createLogger({ level: loaded.config.logLevel, replicaId: loaded.config.replicaId, destination: stream });
  const handle = await startGateway(loaded.config, { log, agents });
  const port = handle.port;
  await waitFor(() => handle.lifecycle.isReady(), 5000);
  return {
    handle,
    port,
    wsUrl: (token = 'test123', path = '/api/ws') =>
      `ws://127.0.0.1:${port}${path}/agent${token === '' ? '' : `?session_token=${encodeURIComponent(token)}`}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    logs: () =>
      raw
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    rawLogs: () => raw,
    stop: () => handle.shutdown(),
  };
}

/** Polls `check` until it holds (for state with no event to await). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
