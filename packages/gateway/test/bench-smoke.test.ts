import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `npm run bench --quick` end to end with tiny durations: every target starts, every scenario
 * produces figures, every target of the issues is judged, and every process the bench started
 * is gone afterwards. The figures themselves are not checked: speed belongs to the benchmark.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgw-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts/bench/run.mjs'), ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Scenario {
  error?: string;
  [k: string]: unknown;
}
interface Report {
  meta: { node: string; cpus: number; loadAverageStart: number[]; loadAverageEnd: number[] };
  targets: Record<string, { label: string; pid?: number; error?: string; scenarios: Record<string, Scenario>; otlpReceived?: object }>;
  checks: Array<{ id: string; value: number | null; pass: boolean | null }>;
}

describe('benchmark smoke run (--quick)', () => {
  it('runs every target and scenario and writes a well-formed report', { timeout: 180_000 }, async () => {
    const json = path.join(dir, 'report.json');
    const run = await runBench(['--quick', '--duration', '0.5', '--warmup', '0.2', '--idle', '40', '--json', json, '--out', dir]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('Targets (issue 3, issue 5 item 6):');

    const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
    expect(report.meta.node).toBe(process.version);
    expect(report.meta.loadAverageEnd).toHaveLength(3);
    expect(Object.keys(report.targets).sort()).toEqual(['bare', 'embedded', 'limited', 'otel', 'otel-full', 'redis']);

    for (const [key, target] of Object.entries(report.targets)) {
      expect(target.error, `${key}: ${target.error}`).toBeUndefined();
      for (const [name, s] of Object.entries(target.scenarios)) {
        expect(s.error, `${key}/${name}: ${s.error}`).toBeUndefined();
        if (name === 'throughput' || name === 'latency') {
          expect(s['msgsPerSec'] as number, `${key}/${name}`).toBeGreaterThan(0);
          expect(s['p50Ms'] as number).toBeLessThanOrEqual(s['p99Ms'] as number);
          expect(s['errors']).toEqual({});
        }
        if (name === 'storm') expect(s['upgradesPerSec'] as number, key).toBeGreaterThan(0);
        if (name === 'idle') {
          expect(s['conns']).toBe(40);
          // First burst on a fresh process, and warm: past its high-water mark once it was closed,
          // read after a full collection (gc-probe.mjs answered) and before it.
          for (const k of ['bytesPerConn', 'reopenBytesPerConn', 'warmBytesPerConn', 'warmUncollectedBytesPerConn', 'warmHeapTotalBytesPerConn', 'warmNativeBytesPerConn', 'settleS']) {
            expect(s[k], `${key}/idle ${k}`).toEqual(expect.any(Number));
          }
          expect(s['settled']).toEqual(expect.any(Boolean));
        }
        if (name === 'limited') expect(s['rateLimited'] as number).toBeGreaterThan(0);
      }
      // Stopped by PID at the end of its target.
      if (target.pid !== undefined) expect(alive(target.pid), `${key} pid ${target.pid}`).toBe(false);
    }
    expect(Object.keys(report.targets['bare']!.scenarios).sort()).toEqual(['idle', 'latency', 'storm', 'throughput']);
    expect(report.targets['redis']!.scenarios['throughput']!['redisCallsPerMsg']).toEqual(expect.any(Number));
    // The default sampler traces ~1 % of connections, so a short run may send no spans at all;
    // metrics always arrive, and every message is traced in otel-full.
    expect(report.targets['otel']!.otlpReceived).toHaveProperty(['/v1/metrics']);
    expect(report.targets['otel-full']!.otlpReceived).toHaveProperty(['/v1/traces']);

    expect(report.checks.map((c) => c.id)).toEqual([
      'throughput',
      'cpu-efficiency',
      'redis-per-msg',
      'redis-when-limited',
      'upgrades',
      'idle-memory',
      'light-latency',
      'telemetry-cost',
    ]);
    for (const c of report.checks) {
      // With 40 idle sockets the bare server's RSS may not move at all: that ratio can be N/A.
      if (c.id !== 'idle-memory') expect(c.value, c.id).toEqual(expect.any(Number));
      expect(c.pass, c.id).toBe(c.value === null ? null : c.pass === true);
    }
  });
});
