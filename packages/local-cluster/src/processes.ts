import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process this module started: it is stopped by its PID, never by name. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** True until the process has exited. */
  running(): boolean;
}

/** Every child still running, so a crashing test run does not leave replicas behind. */
const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export interface SpawnOptions {
  env: Record<string, string | undefined>;
  cwd: string;
  /** stdout and stderr are appended to this file (a pipe nobody reads would stall the child). */
  logFile: string;
}

export function spawnManaged(name: string, command: string, args: readonly string[], options: SpawnOptions): ManagedProcess {
  installExitHook();
  const fd = openSync(options.logFile, 'a');
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  // A command that is not there fails with an 'error' event a tick later: without a listener from
  // the start, that event would kill this process while the caller cleans up after the throw below.
  child.once('error', () => {});
  if (child.pid === undefined) {
    throw new Error(`${name}: could not start ${command} (is it installed and on PATH?)`);
  }
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(managed);
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      live.delete(managed);
      resolve({ code: null, signal: null });
    });
  });
  const managed: ManagedProcess = { name, pid: child.pid, exited, running: () => !done };
  live.add(managed);
  return managed;
}

/**
 * Sends `signal` and waits for the exit; a process still there after `timeoutMs` gets SIGKILL
 * (and the caller sees `signal: 'SIGKILL'`, so a hung shutdown is visible, not hidden).
 */
export async function stopManaged(child: ManagedProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<Exit> {
  if (!child.running()) return child.exited;
  try {
    process.kill(child.pid, signal);
  } catch {
    return child.exited;
  }
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
      resolve();
    }, timeoutMs);
  });
  await Promise.race([child.exited, killed]);
  clearTimeout(timer);
  return child.exited;
}

/** A port that was free on `host` a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` until it returns true; fails early when `alive` says the process it waits for
 * has died (a crashed replica should fail the test at once with its log path, not time out).
 */
export async function pollUntil(
  what: string,
  check: () => Promise<boolean>,
  options: { timeoutMs: number; stepMs?: number; alive?: () => boolean },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (options.alive && !options.alive()) throw new Error(`${what}: the process exited`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${options.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, options.stepMs ?? 50));
  }
}

/** GET `url` and return its status, or 0 when nothing answered. */
export async function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}
