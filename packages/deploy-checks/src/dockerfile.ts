import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GATEWAY_NODE_OPTIONS } from '@wsgw/local-cluster';

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (pending !== '' && line.trim().startsWith('#')) return; // comment inside a continuation
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m) out.push({ keyword: (m[1] ?? '').toUpperCase(), args: m[2] ?? '', line: start });
  });
  return out;
}

/** Distro families whose Node images ship glibc >= 2.27 (what the uWS binaries link against). */
const GLIBC_BASES = [/-bookworm(-slim)?$/, /-bullseye(-slim)?$/, /-trixie(-slim)?$/, /-noble$/, /-jammy$/, /-focal$/];

/**
 * The Dockerfile is checked statically (no Docker engine here): what the issue requires of the
 * image, and that every COPY source exists in the build context and is not excluded by
 * .dockerignore (the usual way an image build breaks without anyone noticing in CI).
 */
export function checkDockerfile(repo: string): string[] {
  const problems: string[] = [];
  const instructions = parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
  const args = new Map<string, string>();
  for (const i of instructions) {
    if (i.keyword !== 'ARG') continue;
    const [name, value] = i.args.split('=');
    if (name && value !== undefined) args.set(name.trim(), value.trim());
  }
  const expand = (s: string) => s.replace(/\$\{?(\w+)\}?/g, (_, n: string) => args.get(n) ?? '');

  const stages = instructions.filter((i) => i.keyword === 'FROM');
  if (stages.length < 2) problems.push('Dockerfile: not multi-stage');
  const stageNames = new Set(stages.map((s) => /\bAS\s+(\S+)/i.exec(s.args)?.[1]).filter((n): n is string => !!n));
  for (const s of stages) {
    const image = expand(s.args.split(/\s+/)[0] ?? '');
    if (stageNames.has(image)) continue;
    if (!/^node:20[.\d]*-/.test(image)) problems.push(`Dockerfile:${s.line}: base ${image} is not a Node.js 20 image (uWS binaries are per Node ABI)`);
    if (/alpine/.test(image) || !GLIBC_BASES.some((re) => re.test(image))) {
      problems.push(`Dockerfile:${s.line}: base ${image} is not a glibc >= 2.27 distribution (uWS cannot load on musl)`);
    }
  }

  const last = stages.at(-1);
  const final = instructions.filter((i) => last && i.line >= last.line);
  const user = final.filter((i) => i.keyword === 'USER').at(-1);
  if (!user) problems.push('Dockerfile: the runtime stage has no USER (it would run as root)');
  else if (/^(root|0)(:|$)/.test(user.args.trim())) problems.push(`Dockerfile:${user.line}: USER is root`);
  const health = final.find((i) => i.keyword === 'HEALTHCHECK');
  if (!health || !health.args.includes('/healthz')) problems.push('Dockerfile: no HEALTHCHECK on /healthz in the runtime stage');
  const cmd = final.find((i) => i.keyword === 'CMD' || i.keyword === 'ENTRYPOINT');
  if (!cmd || !cmd.args.includes('packages/gateway/dist/main.js')) problems.push('Dockerfile: the image does not start packages/gateway/dist/main.js');
  if (!final.some((i) => i.keyword === 'EXPOSE')) problems.push('Dockerfile: the runtime stage exposes no port');
  // The V8 options the gateway is measured and shipped with (packages/gateway/src/runtime.ts).
  const env = new Map(final.filter((i) => i.keyword === 'ENV').flatMap((i) => envPairs(i.args)));
  if (env.get('NODE_OPTIONS') !== GATEWAY_NODE_OPTIONS) {
    problems.push(`Dockerfile: the runtime stage's NODE_OPTIONS is ${JSON.stringify(env.get('NODE_OPTIONS') ?? '')}, not the gateway's ${JSON.stringify(GATEWAY_NODE_OPTIONS)} (packages/gateway/src/runtime.ts)`);
  }
  if (final.some((i) => i.keyword === 'COPY' && !/--from=/.test(i.args))) {
    problems.push('Dockerfile: the runtime stage copies from the build context (sources, not build output)');
  }

  const ignore = readDockerignore(repo);
  for (const i of instructions) {
    if (i.keyword !== 'COPY' && i.keyword !== 'ADD') continue;
    if (/--from=/.test(i.args)) continue;
    const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) {
      if (!existsSync(join(repo, src))) problems.push(`Dockerfile:${i.line}: COPY source ${src} does not exist`);
      else if (ignore.some((re) => re.test(src))) problems.push(`Dockerfile:${i.line}: COPY source ${src} is excluded by .dockerignore`);
    }
  }
  const needed = ['node_modules', 'packages/gateway/node_modules', 'packages/gateway/dist', '.git'];
  for (const path of needed) {
    if (!ignore.some((re) => re.test(path))) problems.push(`.dockerignore: does not exclude ${path}`);
  }
  return problems;
}

/** `ENV A=1 B="x y"` (or the legacy `ENV A 1`) as name/value pairs. */
export function envPairs(args: string): Array<[string, string]> {
  const text = args.trim();
  if (!/^[\w.-]+=/.test(text)) {
    const m = /^(\S+)\s+(.*)$/s.exec(text);
    return m ? [[m[1] as string, (m[2] as string).trim()]] : [];
  }
  return [...text.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)].map(([, name, value]) => [
    name as string,
    /^["']/.test(value as string) ? (value as string).slice(1, -1) : (value as string),
  ]);
}

/** .dockerignore patterns as regexes (no `!` re-includes needed for the paths checked). */
function readDockerignore(repo: string): RegExp[] {
  const path = join(repo, '.dockerignore');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!'))
    .map((pattern) => {
      const body = pattern
        .replace(/\/$/, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '\u0001')
        .replace(/\*\*/g, '\u0002')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0001/g, '(?:.*/)?')
        .replace(/\u0002/g, '.*');
      return new RegExp(`^${body}(?:/.*)?$`);
    });
}
