// V8's sampling heap profiler with garbage included: what a piece of work allocates, by function.
// Shared by hub-path.mjs, heap-per-socket.mjs and run.mjs' --alloc-prof (through alloc-probe.mjs).

/** HeapProfiler.startSampling parameters; survivorsOnly keeps only what outlived a scavenge. */
export function samplingParams({ intervalBytes = 256, survivorsOnly = false } = {}) {
  return {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: !survivorsOnly,
  };
}

/**
 * A sampled allocation profile as rows `{ bytes, where }`, biggest first: self bytes by function,
 * with its two callers (`f file:line < caller < caller's caller`), and the total.
 */
export function allocationSites(profile) {
  const bySite = new Map();
  let total = 0;
  const where = (f) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(packages|node_modules)\//, '')}:${f.lineNumber + 1}`;
  const visit = (node, callers) => {
    if (node.selfSize > 0) {
      total += node.selfSize;
      const key = [where(node.callFrame), ...callers.slice(-2).reverse()].join(' < ');
      bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) visit(child, [...callers, node.callFrame.functionName || '(anonymous)']);
  };
  visit(profile.head, []);
  const rows = [...bySite].map(([site, bytes]) => ({ bytes, where: site })).sort((a, b) => b.bytes - a.bytes);
  return { total, rows };
}

/**
 * Lines of `allocationSites` per unit of work (`per` units: messages, upgrades), top `top`; `what`
 * says what the bytes are (for a survivors-only profile: what outlived a scavenge).
 */
export function formatAllocation({ total, rows }, per, unit, { top = 25, what = 'allocated per UNIT (sampled, garbage included)' } = {}) {
  const lines = [`${Math.round(total / per).toLocaleString('en-US')} B ${what.replace('UNIT', unit)}`];
  lines.push(`  B/${unit}  allocated in < called by < ...`);
  for (const r of rows.slice(0, top)) lines.push(`${(r.bytes / per).toFixed(0).padStart(11)}  ${r.where}`);
  return lines;
}
