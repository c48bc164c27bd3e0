import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VARIABLES } from '@wsgw/config';
import { UpgradeRejections } from '@wsgw/protocol';

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
