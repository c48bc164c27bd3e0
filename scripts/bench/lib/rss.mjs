// RSS of a process as /proc/<pid>/status says (VmRSS): read by the bench from outside and by
// gc-probe.mjs inside each measured server, so both read the same figure. No side effects on import:
// the probe loads it into the servers under measurement.
import { readFileSync } from 'node:fs';

/** VmRSS of `pid` in bytes (0 if /proc does not say). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
