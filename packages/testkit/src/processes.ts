import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_OPTIONS } from '@wsgw/gateway/runtime';
import { dieWithParent, registerChild } from './redis.js';

/** Built entry point: tests that spawn replicas need `npm run build` first. */
export const GATEWAY_MAIN = fileURLToPath(new URL('../../gateway/dist/main.js', import.meta.url));

export interface GatewayProcess {
  readonly pid: number;
  readonly port: number;
  /** `ws://127.0.0.1:{port}/api/ws/agent?session_token=...` */
  wsUrl(token: string, path?: string): string;
  httpUrl(path: string): string;
  /** stdout so far, parsed as pino JSON lines (others skipped). */
  logs(): Array<Record<string, unknown>>;
  stderr(): string;
  /** Resolves when a log line matching `match` has been written. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal by PID (SIGTERM, SIGKILL, SIGSTOP, SIGCONT). */
  signal(sig: NodeJS.Signals): void;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnGatewayOptions {
  /** Wait for /readyz 200 and, with REDIS_URL, for Redis to be reached (default); or only for listening. */
  waitReady?: boolean;
  /** Generous by default: the machine running the suite may be busy with other work. */
  readyTimeoutMs?: number;
}

/**
 * Starts `node packages/gateway/dist/main.js` as a real process on a free port with `env`
 * (on top of a small test default), and waits until it listens and /readyz answers 200.
 */
export async function spawnGateway(env: Record<string, string>, options: SpawnGatewayOptions = {}): Promise<GatewayProcess> {
  const fullEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '/tmp',
    ENVIRONMENT: 'development',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    OTEL_SDK_DISABLED: 'true',
    SHUTDOWN_DRAIN_SECONDS: '1',
    // The V8 options the image ships with.
    NODE_OPTIONS: GATEWAY_NODE_OPTIONS,
    ...env,
  };
  const child: ChildProcess = spawn(...dieWithParent(process.execPath, [GATEWAY_MAIN]), {
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  registerChild(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the gateway');

  let stdout = '';
  let stderr = '';
  const lines: Array<Record<string, unknown>> = [];
  const watchers: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const text = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of [...watchers]) {
        if (w.match(line)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.splice(watchers.indexOf(entry), 1);
        reject(new Error(`gateway ${pid}: no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-500)}`));
      }, timeoutMs);
      const entry = {
        match,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      watchers.push(entry);
      void exited.then(() => {
        if (watchers.includes(entry)) {
          clearTimeout(timer);
          watchers.splice(watchers.indexOf(entry), 1);
          reject(new Error(`gateway ${pid} exited; stderr: ${stderr.slice(-800)}`));
        }
      });
    });
  };

  const listening = await waitForLog((l) => l['msg'] === 'gateway listening', options.readyTimeoutMs ?? 30_000);
  const port = Number(listening['port']);
  const handle: GatewayProcess = {
    pid,
    port,
    wsUrl: (token, path = '/api/ws') => `ws://127.0.0.1:${port}${path}/agent?session_token=${encodeURIComponent(token)}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    logs: () => lines,
    stderr: () => stderr,
    waitForLog,
    signal: (sig) => {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    },
    exited,
    stop: async (graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      handle.signal('SIGCONT');
      handle.signal('SIGTERM');
      const timer = setTimeout(() => handle.signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  if (options.waitReady !== false) {
    await waitReady(handle, options.readyTimeoutMs ?? 30_000);
    // In `local` failure mode /readyz is 200 even while Redis is not reached yet: wait until the
    // limits are on Redis, so a test never starts on a replica that is deciding from memory.
    if (fullEnv['REDIS_URL']) {
      await waitForLog(
        (l) => l['msg'] === 'connected to redis' || l['msg'] === 'redis answers again: shared limits apply',
        options.readyTimeoutMs ?? 30_000,
      );
    }
  }
  return handle;
}

/** Polls /readyz until it answers 200. */
export async function waitReady(gateway: Pick<GatewayProcess, 'httpUrl'>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await readyStatus(gateway)) === 200) return;
    if (Date.now() > deadline) throw new Error(`gateway not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The /readyz status, or 0 when nothing answers within a second. */
export async function readyStatus(gateway: Pick<GatewayProcess, 'httpUrl'>): Promise<number> {
  try {
    const res = await fetch(gateway.httpUrl('/readyz'), { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** A gateway process as launched, before anything is known about it (it may exit at once). */
export interface LaunchedGateway {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stdout so far, parsed as pino JSON lines (others skipped). */
  lines(): Array<Record<string, unknown>>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the port once it logs "gateway listening"; kills it and fails after `timeoutMs`. */
  listening(timeoutMs?: number): Promise<number>;
}

/**
 * `node packages/gateway/dist/main.js` exactly as operators start it, configured only by `env`
 * (on 127.0.0.1, port 0), without waiting for anything: for tests of start-up failures, signals
 * and exit codes. `spawnGateway` is the one to use for a replica that must be up and ready.
 */
export function launchGateway(env: Record<string, string>): LaunchedGateway {
  const child = spawn(...dieWithParent(process.execPath, [GATEWAY_MAIN]), {
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', NODE_OPTIONS: GATEWAY_NODE_OPTIONS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  registerChild(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const listening = async (timeoutMs = 15_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = lines().find((l) => l['msg'] === 'gateway listening');
      if (line) return line['port'] as number;
      await new Promise((res) => setTimeout(res, 25));
    }
    child.kill('SIGKILL');
    throw new Error(`gateway did not start: ${err}`);
  };
  return { child, stdout: () => out, stderr: () => err, lines, exit, listening };
}

/** Log levels worth showing when a test fails (the gateway writes pino's labels). */
const NOISY_LEVELS = new Set(['warn', 'error', 'fatal']);

/**
 * What the gateways said, for the message of a failed test: each one's warnings and errors (the
 * last `max`) and the end of its stderr. A test that waits on real replicas
 * and fails otherwise only tells what it waited for, not what the replicas saw meanwhile.
 */
export function gatewayReport(gateways: readonly GatewayProcess[], max = 20): string {
  return gateways
    .map((g) => {
      const noisy = g.logs().filter((l) => NOISY_LEVELS.has(String(l['level'])));
      const shown = noisy.slice(-max).map((l) => JSON.stringify(l));
      const stderr = g.stderr().trim();
      return [
        `gateway ${g.pid}: ${noisy.length} warning/error lines${noisy.length > max ? ` (last ${max})` : ''}`,
        ...shown,
        ...(stderr === '' ? [] : [`stderr: ${stderr.slice(-800)}`]),
      ].join('\n');
    })
    .join('\n');
}

/** Runs `work`; if it fails, the error says what the gateways logged meanwhile (gatewayReport). */
export async function withGatewayReport<T>(gateways: readonly GatewayProcess[], work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n${gatewayReport(gateways)}`, { cause: err });
  }
}
