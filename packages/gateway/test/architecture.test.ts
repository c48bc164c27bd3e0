import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packagesDir = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(pkg: string): Array<{ file: string; spec: string }> {
  const dir = join(packagesDir, pkg, 'src');
  return sources(dir).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/(?:from|import|require)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => ({
      file,
      spec: m[1]!,
    })),
  );
}

const packages = readdirSync(packagesDir).filter((p) => {
  try {
    return statSync(join(packagesDir, p, 'src')).isDirectory();
  } catch {
    return false;
  }
});

/** The layout is the architecture (STYLE.md): these keep adapters out of the core. */
describe('package boundaries', () => {
  it('only transport-uws imports uWebSockets.js', () => {
    const offenders = packages
      .filter((p) => p !== 'transport-uws')
      .flatMap((p) => importsOf(p).filter((i) => i.spec === 'uWebSockets.js'));
    expect(offenders).toEqual([]);
  });

  it('core and protocol do no I/O: no uWS, ioredis, pino, http or fs', () => {
    const forbidden = /^(uWebSockets\.js|ioredis|pino|node:(http|https|net|fs|child_process)|@wsgw\/(redis|memory|transport-uws|gateway|telemetry))$/;
    for (const pkg of ['core', 'protocol']) {
      expect(importsOf(pkg).filter((i) => forbidden.test(i.spec))).toEqual([]);
    }
  });

  it('protocol depends on nothing', () => {
    expect(importsOf('protocol').filter((i) => !i.spec.startsWith('.'))).toEqual([]);
  });
});
