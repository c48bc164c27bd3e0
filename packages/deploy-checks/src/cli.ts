#!/usr/bin/env node
// scripts/check-deploy: static checks of the Dockerfile, compose + HAProxy, and both k8s
// overlays (rendered, validated offline against the Kubernetes schemas, and against the
// deployment rules). Exit 1 with one line per problem. `--sync` first re-embeds
// infra/otel-collector.yaml into k8s/.
import { checkDeploy } from './run.js';
import { syncCollectorCopy } from './collector.js';
import { findRepoRoot } from '@wsgw/local-cluster';

const repo = findRepoRoot();
if (process.argv.includes('--sync')) syncCollectorCopy(repo);
const report = await checkDeploy(repo);
const counts = Object.entries(report.rendered).map(([overlay, objects]) => `${overlay}: ${objects.length} objects`);
if (report.problems.length > 0) {
  for (const problem of report.problems) process.stderr.write(`check-deploy: ${problem}\n`);
  process.stderr.write(`check-deploy: ${report.problems.length} problem(s) (rendered with ${report.renderer}; ${counts.join(', ')})\n`);
  process.exit(1);
}
process.stdout.write(`check-deploy: ok (rendered with ${report.renderer}; ${counts.join(', ')})\n`);
