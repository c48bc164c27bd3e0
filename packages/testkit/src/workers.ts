import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dieWithParent, registerChild } from './redis.js';

/** Built example workers of packages/agent-sdk: tests that spawn them need `npm run build` first. */
export const AGENT_EXAMPLES = {
  echo: fileURLToPath(new URL('../../agent-sdk/dist/examples/echo.js', import.meta.url)),
  words: fileURLToPath(new URL('../../agent-sdk/dist/examples/words.js', import.meta.url)),
} as const;

export interface WorkerProcess {
  readonly pid: number;
  /** stdout so far, parsed as pino JSON lines. */
  logs(): Array<Record<string, unknown>>;
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal by PID (SIGTERM, SIGKILL, SIGSTOP, SIGCONT). */
  signal(sig: NodeJS.Signals): void;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGCONT + SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts an example agent worker (`node packages/agent-sdk/dist/examples/<name>.js`, CONTRACT §6)
 * and waits until it serves (registered as live).
 */
export async function spawnAgentWorker(
  env: Record<string, string>,
  example: keyof typeof AGENT_EXAMPLES = 'echo',
): Promise<WorkerProcess> {
  const child: ChildProcess = spawn(...dieWithParent(process.execPath, [AGENT_EXAMPLES[example]]), {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', OTEL_SDK_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  registerChild(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the agent worker');
  const lines: Array<Record<string, unknown>> = [];
  const watchers: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let buffered = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const w of [...watchers]) {
          if (w.match(line)) {
            watchers.splice(watchers.indexOf(w), 1);
            w.resolve(line);
          }
        }
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const entry = {
        match,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        watchers.splice(watchers.indexOf(entry), 1);
        reject(new Error(`worker ${pid}: no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-500)}`));
      }, timeoutMs);
      watchers.push(entry);
    });
  };
  const handle: WorkerProcess = {
    pid,
    logs: () => lines,
    waitForLog,
    signal,
    exited,
    stop: async (graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      signal('SIGCONT');
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  await Promise.race([
    waitForLog((l) => l['msg'] === 'agent worker serving', 15_000),
    exited.then(({ code }) => {
      throw new Error(`agent worker exited with ${code} before serving: ${stderr.slice(-800)}`);
    }),
  ]);
  return handle;
}
