// Child processes the bench owns, and what /proc says about them.
import { spawn, execFile } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
// Ports below the ephemeral range, none handed out twice (servers start side by side).
import { freePort } from '@wsgw/testkit/ports';

export { freePort };
export { rssBytes } from './rss.mjs';

const CLK_TCK = 100; // USER_HZ on Linux; /proc/<pid>/stat counts CPU in these ticks
const owned = new Map(); // pid -> ChildProcess

/** Every process the bench started, stopped by PID on exit, error or Ctrl-C. */
export function killAllOwned(signal = 'SIGKILL') {
  for (const [pid, child] of owned) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, signal);
      } catch {}
    }
  }
}
process.on('exit', () => killAllOwned('SIGKILL'));

export function track(child) {
  if (child.pid !== undefined) {
    owned.set(child.pid, child);
    child.once('exit', () => owned.delete(child.pid));
  }
  return child;
}

/** Stops one owned process: SIGTERM, then SIGKILL after `graceMs`. Resolves with its exit code. */
export function stopProcess(child, graceMs = 5000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }, graceMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {}
  });
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

/** Open sockets of a process (its descriptors that are sockets: TCP, Unix), from /proc. */
export function socketCount(pid) {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // Closed between the listing and the read.
    }
  }
  return n;
}

/** Machine-wide busy and total jiffies, to tell how loaded the box was during a window. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function loadAverage() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

export function workDir(tag) {
  return mkdtempSync(path.join(os.tmpdir(), `wsgw-bench-${tag}-`));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Spawns an owned process with stdout/stderr to files in `dir` (a pipe nobody reads would
 * stall a chatty child). Returns the child and a function giving the tail of its stderr.
 */
export function spawnOwned(cmd, args, { env, dir, name }) {
  const out = createWriteStream(path.join(dir, `${name}.out`));
  const err = createWriteStream(path.join(dir, `${name}.err`));
  const child = track(spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  // A binary that is not there arrives as an event, not a throw: keep it for the caller's checks.
  child.on('error', (err) => {
    child.spawnError = err;
  });
  child.stdout.pipe(out);
  child.stderr.pipe(err);
  const tail = () => {
    try {
      return readFileSync(path.join(dir, `${name}.err`), 'utf8').slice(-2000) + readFileSync(path.join(dir, `${name}.out`), 'utf8').slice(-1000);
    } catch {
      return '';
    }
  };
  return { child, tail };
}

export async function waitForHttp(url, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${url} answered`);
    const status = await new Promise((resolve) => {
      const req = http.get(url, { timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last ${status})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// --- Redis -----------------------------------------------------------------------------------

export async function startRedis(dir) {
  const port = await freePort();
  const { child, tail } = spawnOwned(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
    { env: process.env, dir, name: 'redis' },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await redisCli(port, ['PING'])).trim() === 'PONG') break;
    } catch {}
    if (child.spawnError) throw new Error(`cannot run redis-server (${child.spawnError.message}): install Redis 7 or put redis-server on the PATH`);
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start: ${tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, child, url: `redis://127.0.0.1:${port}` };
}

export function redisCli(port, args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

/** `INFO commandstats` as {command: calls}; Redis' own time per command as {command: usec} in `.usec`. */
export async function commandCalls(port) {
  const text = await redisCli(port, ['INFO', 'commandstats']);
  const calls = {};
  const usec = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    calls[m[1]] = Number(m[2]);
    usec[m[1]] = Number(m[3]);
  }
  Object.defineProperty(calls, 'usec', { value: usec, enumerable: false });
  return calls;
}

export async function redisUsedMemory(port) {
  const m = /^used_memory:(\d+)/m.exec(await redisCli(port, ['INFO', 'memory']));
  return m ? Number(m[1]) : 0;
}

/** Calls made between two `commandCalls` snapshots, minus the bench's own INFO calls. */
export function diffCalls(before, after) {
  const out = {};
  for (const [cmd, n] of Object.entries(after)) {
    if (cmd === 'info') continue;
    const d = n - (before[cmd] ?? 0);
    if (d > 0) out[cmd] = d;
  }
  return out;
}

/**
 * Samples MONITOR for `ms`: which commands clients sent (each one at most one round trip) and
 * which ran inside Lua scripts (MONITOR tags those `[db lua]`). INFO commandstats counts both
 * alike, so this split is what turns its totals into round trips. MONITOR slows Redis down, so
 * it runs after the measured window, never during it.
 */
export function monitorSample(port, ms) {
  return new Promise((resolve, reject) => {
    const child = track(spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const topLevel = {};
    const inScripts = {};
    let rest = '';
    const line = /^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        const m = line.exec(l);
        if (!m) continue;
        const cmd = m[2].toLowerCase();
        if (cmd === 'monitor' || cmd === 'info') continue;
        const into = m[1] === 'lua' ? inScripts : topLevel;
        into[cmd] = (into[cmd] ?? 0) + 1;
      }
    });
    child.once('error', reject);
    setTimeout(() => {
      child.once('exit', () => resolve({ topLevel, inScripts }));
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        resolve({ topLevel, inScripts });
      }
    }, ms);
  });
}
