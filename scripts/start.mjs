#!/usr/bin/env node
// `npm start`: build what changed (turbo caches the rest), then run one gateway replica in the
// foreground, passing signals through so Ctrl-C drains it like SIGTERM would in Kubernetes.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const build = spawnSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// The V8 options the image ships with (packages/gateway/src/runtime.ts), unless NODE_OPTIONS is set.
const { gatewayNodeOptions } = await import('@wsgw/gateway/runtime');
const env = { ...process.env, NODE_OPTIONS: gatewayNodeOptions() };
const child = spawn(process.execPath, ['packages/gateway/dist/main.js'], { cwd: root, stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
