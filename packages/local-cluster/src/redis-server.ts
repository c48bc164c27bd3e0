import { createConnection } from 'node:net';
import { join } from 'node:path';
import { freePort, pollUntil, spawnManaged, stopManaged, type ManagedProcess } from './processes.js';

export interface LocalRedis {
  url: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free loopback port: nothing on disk, stopped by its PID. */
export async function startRedisServer(options: { logDir: string; cwd: string }): Promise<LocalRedis> {
  const port = await freePort();
  const child = spawnManaged(
    'redis',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', options.logDir],
    { cwd: options.cwd, env: process.env, logFile: join(options.logDir, 'redis.log') },
  );
  await pollUntil(`redis-server on ${port}`, () => ping(port), { timeoutMs: 10_000, alive: () => child.running() });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    stop: async () => {
      await stopManaged(child, 'SIGTERM', 5000);
    },
  };
}

/** A raw RESP PING: no client library needed to know that the server answers. */
export function ping(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}
