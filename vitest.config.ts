import { readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
const packages = readdirSync(`${root}packages`).filter((name) => existsSync(`${root}packages/${name}/package.json`));

/**
 * Tests import packages by name and run against their sources: no build needed for unit tests.
 * A package's subpath export (`@wsgw/gateway/runtime`) maps to the source file of the same name.
 */
const alias = packages.flatMap((name) => [
  { find: new RegExp(`^@wsgw/${name}$`), replacement: `${root}packages/${name}/src/index.ts` },
  { find: new RegExp(`^@wsgw/${name}/([a-z-]+)$`), replacement: `${root}packages/${name}/src/$1.ts` },
]);

export default defineConfig({
  resolve: { alias },
  test: {
    // Real sockets and child processes: generous per-test time, never retries.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    retry: 0,
    pool: 'forks',
    projects: packages
      .filter((name) => existsSync(`${root}packages/${name}/test`))
      .map((name) => ({
        extends: true,
        test: { name, include: [`packages/${name}/test/**/*.test.ts`] },
      })),
  },
});
