import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GATEWAY_NODE_OPTIONS, gatewayNodeOptions } from '../src/runtime.js';

const dockerfile = readFileSync(new URL('../../../Dockerfile', import.meta.url), 'utf8');

/** Churns short-lived objects, then prints the young generation's size (both semi-spaces). */
const CHURN = `
const v8 = require('node:v8');
let keep = [];
for (let i = 0; i < 3e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 200000) keep = []; }
console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
`;

function youngGenerationAfterChurn(nodeOptions: string): number {
  const run = spawnSync(process.execPath, ['-e', CHURN], { env: { PATH: process.env['PATH'], NODE_OPTIONS: nodeOptions }, encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return Number(run.stdout.trim());
}

describe('the V8 options the gateway ships with', () => {
  it('are the operator NODE_OPTIONS when set (even empty), else the shipped ones', () => {
    expect(gatewayNodeOptions({})).toBe(GATEWAY_NODE_OPTIONS);
    expect(gatewayNodeOptions({ NODE_OPTIONS: '' })).toBe('');
    expect(gatewayNodeOptions({ NODE_OPTIONS: '--max-old-space-size=512' })).toBe('--max-old-space-size=512');
  });

  it('are what the image sets', () => {
    const set = /NODE_OPTIONS=(\S+)/.exec(dockerfile)?.[1];
    expect(set).toBe(GATEWAY_NODE_OPTIONS);
  });

  it('keep the young generation at two 8 MiB semi-spaces, where Node grows it to 16 MiB each', () => {
    const MiB = 1024 * 1024;
    expect(youngGenerationAfterChurn(GATEWAY_NODE_OPTIONS)).toBeLessThanOrEqual(16 * MiB);
    expect(youngGenerationAfterChurn('')).toBeGreaterThan(16 * MiB);
  });
});
