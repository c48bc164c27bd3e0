// Top functions of a V8 .cpuprofile by self time (and inclusive time), without DevTools.
// Usage: node scripts/bench/cpuprofile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * @returns {{name: string, where: string, selfPct: number, totalPct: number}[]} percentages of
 *   the non-idle samples: self = in the function itself (native calls it makes count as its own),
 *   total = anywhere below it on the stack
 */
export function topFunctions(profile, n = 25) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfHits = new Map();
  for (const id of profile.samples) selfHits.set(id, (selfHits.get(id) ?? 0) + 1);
  // Percentages are of the samples where the process was doing something: (idle) is dropped.
  const idleIds = new Set(profile.nodes.filter((node) => node.callFrame.functionName === '(idle)').map((node) => node.id));
  let total = 0;
  for (const id of profile.samples) if (!idleIds.has(id)) total++;
  total ||= 1;

  const keyOf = (node) => {
    const f = node.callFrame;
    const file = f.url ? f.url.replace(/^file:\/\//, '').replace(/.*\/(packages|node_modules)\//, '$1/') : '';
    return `${f.functionName || '(anonymous)'}\u0000${file ? `${file}:${f.lineNumber + 1}` : ''}`;
  };
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map();
  const inclusive = new Map();
  for (const [id, hits] of selfHits) {
    const node = nodes.get(id);
    if (!node || idleIds.has(id)) continue;
    self.set(keyOf(node), (self.get(keyOf(node)) ?? 0) + hits);
    // Count each function once per stack for inclusive time, even when it recurses.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const key = keyOf(nodes.get(cur));
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + hits);
    }
  }
  return [...self.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([key, hits]) => {
      const [name, where] = key.split('\u0000');
      return { name, where, selfPct: pct(hits, total), totalPct: pct(inclusive.get(key) ?? 0, total) };
    });
}

const pct = (x, total) => Math.round((x / total) * 1000) / 10;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const profile = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  for (const f of topFunctions(profile, Number(process.argv[3] ?? 30))) {
    process.stdout.write(`${String(f.selfPct).padStart(5)}% self ${String(f.totalPct).padStart(5)}% total  ${f.name}  ${f.where}\n`);
  }
}
