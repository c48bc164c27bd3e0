/**
 * The V8 options the gateway ships with, set through NODE_OPTIONS wherever it is started: the
 * Dockerfile, `npm start`, the benchmark (which measures the gateway as shipped), the local cluster
 * and the test suite's gateway processes (`@wsgw/gateway/runtime`, which loads nothing else). An
 * operator's own NODE_OPTIONS replaces them.
 *
 * `--max-semi-space-size=8` caps V8's young generation at two 8 MiB semi-spaces instead of Node 20's
 * 16 MiB. A burst of upgrades allocates a few KB each, and with the default cap the young generation
 * keeps growing with it: up to ~16 MiB more resident memory per process that the benchmark reads
 * as 2-3 KB per idle socket at 5,000 sockets. With 8 MiB, measured warm: 0.9 KB per idle socket
 * against 2.6-4.1 KB, for ~3-5% more CPU per message under the throughput load (more frequent
 * scavenges); docs/BENCHMARKS.md, "Memory per idle socket".
 */
export const GATEWAY_NODE_OPTIONS = '--max-semi-space-size=8';

/** NODE_OPTIONS for a gateway process: the operator's if set (even empty), else the shipped ones. */
export function gatewayNodeOptions(env: NodeJS.ProcessEnv = process.env): string {
  return env['NODE_OPTIONS'] ?? GATEWAY_NODE_OPTIONS;
}

/**
 * glibc malloc's arena limit the gateway ships with (MALLOC_ARENA_MAX), set wherever NODE_OPTIONS
 * is. By default glibc gives each thread that allocates its own arena, up to 8 per core; V8's
 * garbage-collection helpers allocate in theirs, and what they free stays resident in arenas the
 * main thread never reuses. Measured: after a full collection a Redis-mode replica held ~1.7 KB of
 * native memory per further idle socket in most readings (bare uWS: ~0.55 KB); with 2 arenas,
 * 0.3-0.55 KB (docs/BENCHMARKS.md, "Memory per idle socket", 2026-12-06 evening). The main thread
 * does nearly all of the gateway's allocation, so two arenas cost it no contention worth measuring.
 * glibc reads it once at start: it must be in the environment the process starts with.
 */
export const GATEWAY_MALLOC_ARENA_MAX = '2';

/**
 * The environment a gateway process starts with, on top of its configuration: the operator's
 * NODE_OPTIONS and MALLOC_ARENA_MAX where set (even empty), else the shipped ones.
 */
export function gatewayProcessEnv(env: NodeJS.ProcessEnv = process.env): { NODE_OPTIONS: string; MALLOC_ARENA_MAX: string } {
  return { NODE_OPTIONS: gatewayNodeOptions(env), MALLOC_ARENA_MAX: env['MALLOC_ARENA_MAX'] ?? GATEWAY_MALLOC_ARENA_MAX };
}
