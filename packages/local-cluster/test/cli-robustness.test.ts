// Review findings on scripts/local-cluster (the built CLI). Each test fails before the fix.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(repo, 'packages', 'local-cluster', 'dist', 'cli.js');

function which(cmd: string): string {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of `pid` (from /proc), to find what the CLI left behind. */
function childrenOf(pid: number): number[] {
  const out = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
}

function startCli(state: string, extraEnv: Record<string, string> = {}) {
  const env = { ...process.env, WSGW_LOCAL_CLUSTER_STATE: state, ...extraEnv };
  const child = spawn(process.execPath, [cli, 'start', '--replicas', '1', '--env', 'LOG_LEVEL=warn'], { cwd: repo, env });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const printed = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      if (out.includes('\n')) resolve(out.split('\n')[0] as string);
    });
    child.once('exit', (code) => reject(new Error(`local-cluster exited ${code} before printing its state: ${err}`)));
  });
  printed.catch(() => undefined);
  return { child, exited, printed, stderr: () => err };
}

describe('scripts/local-cluster when things are not as expected (missing haproxy, stale state, a second start, a signal while starting)', () => {
  it('haproxy missing from PATH: one clear stderr line and exit 1, not an unhandled spawn ENOENT stack', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'wsgw-lc-nohaproxy-'));
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(which('redis-server'), join(bin, 'redis-server'));
    const state = join(mkdtempSync(join(tmpdir(), 'wsgw-lc-rv-')), 'state.json');
    const run = startCli(state, { PATH: bin });
    const code = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr()).toMatch(/haproxy.*(installed|PATH)/);
    expect(run.stderr()).not.toContain("Unhandled 'error' event");
  }, 60_000);

  it('stop with a stale state file (the start process is gone) says so and removes the file, exit 0 or a clear line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsgw-lc-rv-'));
    const state = join(dir, 'state.json');
    // A PID that is certainly not running: a finished child's.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(state, JSON.stringify({ pid: Number(gone.stdout) }));
    const stop = spawnSync(process.execPath, [cli, 'stop'], {
      cwd: repo,
      env: { ...process.env, WSGW_LOCAL_CLUSTER_STATE: state },
      encoding: 'utf8',
    });
    expect(stop.stderr).not.toMatch(/ESRCH/);
    expect(existsSync(state)).toBe(false);
  }, 30_000);

  it('a second start while one runs refuses (exit non-zero) and leaves the first one stoppable', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'wsgw-lc-rv-')), 'state.json');
    const first = startCli(state);
    let second: ReturnType<typeof startCli> | undefined;
    try {
      await first.printed;
      second = startCli(state);
      const raced = await Promise.race([second.exited, second.printed.then(() => 'started' as const)]);
      expect(raced).not.toBe('started');
      expect(raced).not.toBe(0);
      expect((JSON.parse(readFileSync(state, 'utf8')) as { pid: number }).pid).toBe(first.child.pid);
    } finally {
      if (second && second.child.exitCode === null) second.child.kill('SIGTERM');
      if (first.child.exitCode === null) first.child.kill('SIGTERM');
      await Promise.all([first.exited, second?.exited]);
    }
  }, 90_000);

  it('SIGTERM to the CLI while it is still starting leaves no redis-server or replica behind', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'wsgw-lc-rv-')), 'state.json');
    const run = startCli(state);
    // Wait until it has started children (redis-server, then the replica), but before it printed its state.
    const deadline = Date.now() + 20_000;
    let kids: number[] = [];
    while (Date.now() < deadline) {
      kids = childrenOf(run.child.pid as number);
      if (kids.length >= 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(kids.length).toBeGreaterThanOrEqual(2);
    run.child.kill('SIGTERM');
    await run.exited;
    const stopBy = Date.now() + 40_000;
    while (Date.now() < stopBy && kids.some(alive)) await new Promise((r) => setTimeout(r, 200));
    const left = kids.filter(alive);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    expect(left).toEqual([]);
  }, 90_000);
});
