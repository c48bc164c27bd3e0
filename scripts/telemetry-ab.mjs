#!/usr/bin/env node
// Telemetry cost, A/B: two gateway processes on one redis-server (started here, on a free port),
// one with OTEL_SDK_DISABLED=true and one exporting OTLP to a local sink, loaded in alternating
// rounds by the same ws clients, so machine load hits both alike. Prints messages/s and server CPU
// per message (from /proc) per round and in total. Loopback only; bounded (ROUNDS x 2 x 3 s);
// stops every process it started, by PID. Needs `npm run build` and redis-server on the PATH.
//
//   node scripts/telemetry-ab.mjs [ROUNDS=6]      (docs/OBSERVABILITY.md, "Cost")
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const MAIN = fileURLToPath(new URL('../packages/gateway/dist/main.js', import.meta.url));

const free = () => new Promise((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const procs = [];
const stopAll = () => { for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM'); };
process.on('SIGINT', () => { stopAll(); process.exit(130); });
const redisPort = await free();
const redis = spawn('redis-server', ['--port', String(redisPort), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }); procs.push(redis);
await sleep(300);
let sinkBytes = 0;
const sink = createServer((req, res) => { req.on('data', (c) => (sinkBytes += c.length)); req.on('end', () => res.end('{}')); });
await new Promise((r) => sink.listen(0, '127.0.0.1', r));
async function gateway(name, extra) {
  const port = await free();
  const env = { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: `ab:${name}:`,
    WEBSOCKET_BUILTIN_AGENTS: 'echo', WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1000', WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000000000', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '1000000000',
    AGENT_MAX_QUEUE: '1000000', LOG_LEVEL: 'warn', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}`, ...extra };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'ignore', 'inherit'] }); procs.push(child);
  for (let i = 0; i < 100; i++) { try { const r = await fetch(`http://127.0.0.1:${port}/readyz`); if (r.status === 200) break; } catch {} await sleep(100); }
  return { name, child, port };
}
const A = await gateway('off', { OTEL_SDK_DISABLED: 'true' });
const B = await gateway('on', { OTEL_SDK_DISABLED: 'false' });
async function connectAll(g, n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/api/ws/agent?session_token=u${i}`);
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    socks.push(ws);
  }
  return socks;
}
const frame = JSON.stringify({ agent_type: 'echo', message: 'hello world', id: 'x' });
async function round(g, socks, ms) {
  let count = 0; let running = true;
  const handlers = socks.map((ws) => { const h = () => { count++; if (running) ws.send(frame); }; ws.on('message', h); for (let k = 0; k < 4; k++) ws.send(frame); return h; });
  const c0 = cpu(g.child.pid); const t0 = Date.now(); const n0 = count;
  await sleep(ms);
  const c1 = cpu(g.child.pid); const t1 = Date.now(); const n1 = count;
  running = false; await sleep(300);
  socks.forEach((ws, i) => ws.off('message', handlers[i]));
  return { msgs: n1 - n0, cpu: c1 - c0, secs: (t1 - t0) / 1000 };
}
const sa = await connectAll(A, 40); const sb = await connectAll(B, 40);
const tot = { off: { msgs: 0, cpu: 0, secs: 0 }, on: { msgs: 0, cpu: 0, secs: 0 } };
await round(A, sa, 1500); await round(B, sb, 1500); // warm-up
for (let r = 0; r < Number(process.argv[2] ?? 6); r++) {
  for (const [g, s] of r % 2 ? [[B, sb], [A, sa]] : [[A, sa], [B, sb]]) {
    const x = await round(g, s, 3000);
    tot[g.name].msgs += x.msgs; tot[g.name].cpu += x.cpu; tot[g.name].secs += x.secs;
    console.log(g.name, 'round', r, Math.round(x.msgs / x.secs), 'msg/s', ((x.cpu * 1e6) / x.msgs).toFixed(1), 'us/msg');
  }
}
for (const k of ['off', 'on']) console.log(k, 'TOTAL', Math.round(tot[k].msgs / tot[k].secs), 'msg/s', ((tot[k].cpu * 1e6) / tot[k].msgs).toFixed(1), 'us/msg');
console.log('ratio msgs/s on/off', (tot.on.msgs / tot.on.secs / (tot.off.msgs / tot.off.secs)).toFixed(3), 'cpu/msg on/off', ((tot.on.cpu / tot.on.msgs) / (tot.off.cpu / tot.off.msgs)).toFixed(3), 'sink bytes', sinkBytes);
for (const ws of [...sa, ...sb]) ws.terminate();
stopAll();
sink.close();
await sleep(500);
process.exit(0);
