import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(repo, 'packages', 'local-cluster', 'dist', 'cli.js');

describe('scripts/local-cluster (the built CLI)', () => {
  it('start prints where everything is and serves through HAProxy; stop drains and removes the state file', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'wsgw-lc-cli-')), 'state.json');
    const env = { ...process.env, WSGW_LOCAL_CLUSTER_STATE: state };
    const child = spawn(process.execPath, [cli, 'start', '--replicas', '1', '--env', 'LOG_LEVEL=warn'], { cwd: repo, env });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0] as string);
        });
        child.once('exit', (code) => reject(new Error(`local-cluster exited ${code} before printing its state`)));
      });
      const info = JSON.parse(line) as { http: string; replicas: Array<{ name: string }>; redisUrl: string };
      expect(info.replicas.map((r) => r.name)).toEqual(['replica-1']);
      expect(info.redisUrl).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      const ready = await fetch(`${info.http}/readyz`);
      expect(ready.status).toBe(200);
      expect(ready.headers.get('x-served-by')).toBe('replica-1');
      expect(existsSync(state)).toBe(true);

      const stop = spawn(process.execPath, [cli, 'stop'], { cwd: repo, env, stdio: 'inherit' });
      expect(await new Promise((resolve) => stop.once('exit', resolve))).toBe(0);
      expect(await exited).toBe(0);
      expect(existsSync(state)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});
