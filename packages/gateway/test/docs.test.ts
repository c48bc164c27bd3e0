import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OTEL_SAMPLERS, VARIABLES } from '@wsgw/config';
import { CloseCode, MessageErrorCode, UpgradeRejections } from '@wsgw/protocol';
import { MetricNames, SAMPLER_NAMES } from '@wsgw/telemetry';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

/** The docs are part of the contract with users: these keep them from drifting from the code. */
describe('README stays in sync with the code', () => {
  it('documents every upgrade rejection with its status', () => {
    for (const [code, { status }] of Object.entries(UpgradeRejections)) {
      const row = readme.split('\n').find((line) => line.includes(`| \`${code}\` |`));
      expect(row, `README row for ${code}`).toBeDefined();
      expect(row).toContain(`| ${status}`);
    }
  });

  it('config accepts exactly the OTEL_TRACES_SAMPLER values telemetry builds', () => {
    expect([...OTEL_SAMPLERS].sort()).toEqual([...SAMPLER_NAMES].sort());
  });

  it('documents every configuration variable', () => {
    for (const variable of VARIABLES) expect(readme, variable).toContain(`\`${variable}\``);
  });

  it('keeps the Quick start at two commands', () => {
    const section = readme.split('## Quick start')[1]!.split('```')[1]!;
    const commands = section.split('\n').filter((l) => l.trim() !== '' && l.trim() !== 'sh');
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/^npm ci && npm start/);
    expect(commands[1]).toMatch(/^npm test/);
  });
});

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const observability = read('docs/OBSERVABILITY.md');
const agentsDoc = read('docs/AGENTS.md');
const deployment = read('docs/DEPLOYMENT.md');
const benchmarks = read('docs/BENCHMARKS.md');

/** The rows of the first markdown table after `heading`, as arrays of trimmed cells. */
function tableAfter(doc: string, heading: string): string[][] {
  const start = doc.indexOf(heading);
  expect(start, `heading ${heading}`).toBeGreaterThanOrEqual(0);
  const lines = doc.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(2); // header and separator
}

const backticked = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);

describe('docs/OBSERVABILITY.md stays in sync with the code', () => {
  const rows = tableAfter(observability, '## Metrics');
  const documented = rows.map((r) => backticked(r[0] ?? '')[0]);

  it('lists exactly the metrics the gateway exports (MetricNames)', () => {
    expect([...documented].sort()).toEqual([...Object.values(MetricNames)].sort());
  });

  it('lists every upgrade rejection as a reason of websocket.upgrade.rejected', () => {
    const row = rows.find((r) => r[0] === `\`${MetricNames.upgradeRejected}\``);
    const reasons = backticked(row?.[3] ?? '').filter((v) => v !== 'path' && v !== 'reason');
    expect(reasons.sort()).toEqual(Object.keys(UpgradeRejections).sort());
  });
});

describe('every doc names what the code does', () => {
  const coreSources = readdirSync(new URL('packages/core/src/', root))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(`packages/core/src/${f}`))
    .join('\n');
  const logged = new Set([...coreSources.matchAll(/event: '(security\.[a-z_]+)'/g)].map((m) => m[1]));

  it('documents exactly the security events core logs', () => {
    expect(logged.size).toBeGreaterThan(0);
    for (const [name, doc] of [
      ['README.md', readme],
      ['docs/OBSERVABILITY.md', observability],
    ] as const) {
      const named = new Set([...doc.matchAll(/`(security\.[a-z_]+)`/g)].map((m) => m[1]));
      expect([...named].sort(), name).toEqual([...logged].sort());
    }
  });

  it('documents every message error code in the README', () => {
    const rows = tableAfter(readme, '### Messages');
    expect(rows.map((r) => backticked(r[0] ?? '')[0]).sort()).toEqual(Object.values(MessageErrorCode).sort());
  });

  it('names every close code the gateway sends in the README', () => {
    for (const code of Object.values(CloseCode)) {
      if (code !== CloseCode.normal) expect(readme, String(code)).toContain(`**${code}**`);
    }
  });

  it('documents exactly the variables an agent worker reads (docs/AGENTS.md, Worker settings)', () => {
    const sdk = ['packages/agent-sdk/src/serve.ts', 'packages/agent-sdk/src/examples/echo.ts', 'packages/agent-sdk/src/examples/words.ts']
      .map(read)
      .join('\n');
    const read_ = new Set([...sdk.matchAll(/env\['([A-Z_]+)'\]/g)].map((m) => m[1]));
    const documented = tableAfter(agentsDoc, '## Worker settings')
      .map((r) => backticked(r[0] ?? '')[0] as string)
      .filter((v) => !v.endsWith('*'));
    expect(documented.sort()).toEqual([...read_].sort());
  });

  it('uses only npm scripts that exist', () => {
    const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
    for (const [name, doc] of [
      ['README.md', readme],
      ['docs/AGENTS.md', agentsDoc],
      ['docs/DEPLOYMENT.md', deployment],
      ['docs/OBSERVABILITY.md', observability],
      ['docs/BENCHMARKS.md', benchmarks],
    ] as const) {
      for (const [, script] of doc.matchAll(/npm run ([a-z:-]+)/g)) expect(scripts, `${name}: npm run ${script}`).toContain(script);
    }
  });

  it('uses only flags scripts/local-cluster and scripts/bench/run.mjs take', () => {
    const cli = read('packages/local-cluster/src/cli.ts');
    for (const doc of [readme, deployment]) {
      for (const line of doc.split('\n').filter((l) => l.includes('scripts/local-cluster start'))) {
        for (const [, flag] of line.matchAll(/--([a-z-]+)/g)) expect(cli, `local-cluster --${flag}`).toMatch(new RegExp(`\\s'?${flag}'?: \\{ type`));
      }
    }
    const bench = read('scripts/bench/run.mjs');
    const running = benchmarks.split('## Running it')[1]!.split('\n## ')[0]!;
    for (const doc of [readme, running]) {
      for (const line of doc.split('\n').filter((l) => l.includes('scripts/bench/run.mjs'))) {
        for (const [, flag] of line.replace(/#.*/, '').matchAll(/--([a-z-]+)/g)) {
          expect(bench, `run.mjs --${flag}`).toMatch(new RegExp(`args(\\.${flag}\\b|\\['${flag}'\\])`));
        }
      }
    }
  });
});
