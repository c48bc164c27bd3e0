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
