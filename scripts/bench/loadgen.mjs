// One load-generator process, driven by run.mjs over IPC.
//
// Protocol (parent -> worker): {cmd: 'prepare', ...scenario} -> {ev: 'ready'}; then 'go' (start
// sending), 'mark' (start of the measured window: counters reset), 'stop' (end of the window:
// -> {ev: 'stats'}, then sockets are closed -> {ev: 'done'}), 'exit'.
import { performance } from 'node:perf_hooks';
import { connectRaw, RawWebSocket } from './lib/rawws.mjs';
import { connectWs } from './lib/wsclient.mjs';
import { Histogram } from './lib/hist.mjs';

const IN_REPLY_TO = Buffer.from('"in_reply_to":"');
const ID = Buffer.from('"id":"');
const TYPE_PREFIX = Buffer.from('{"type":"');
const TYPE_ERROR = Buffer.from('"type":"error"');
const ID_DIGITS = 10; // fixed width, so every frame comes from one template
const QUOTE = 0x22;
const CONNECT_CONCURRENCY = 64;

/** @type {ReturnType<typeof makeScenario> | null} */
let current = null;

process.on('message', (msg) => {
  handle(msg).catch((err) => {
    send({ ev: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  });
});
process.on('disconnect', () => process.exit(0));

function send(msg) {
  if (process.connected) process.send(msg);
}

async function handle(msg) {
  switch (msg.cmd) {
    case 'prepare':
      if (msg.append && current) {
        // More idle sockets on top of the ones already open (memory is measured at two sizes).
        await current.openMore(msg.conns, msg.tokenPrefix);
        send({ ev: 'ready', ...current.readyInfo() });
        break;
      }
      current = makeScenario(msg);
      await current.prepare();
      send({ ev: 'ready', ...current.readyInfo() });
      break;
    case 'go':
      current?.go();
      break;
    case 'mark':
      current?.mark();
      break;
    case 'stop':
      if (current) {
        send({ ev: 'stats', ...current.stop() });
        await current.close();
        current = null;
      }
      send({ ev: 'done' });
      break;
    case 'exit':
      process.exit(0);
  }
}

function url(spec, token) {
  return `${spec.path}${spec.path.includes('?') ? '&' : '?'}session_token=${encodeURIComponent(token)}`;
}

/** The gateway writes `type` first; anything else is searched for the slow way. */
function isError(payload) {
  if (payload.length > 14 && payload.compare(TYPE_PREFIX, 0, TYPE_PREFIX.length, 0, TYPE_PREFIX.length) === 0) {
    return payload[9] === 0x65 && payload[10] === 0x72 && payload[14] === QUOTE; // e r ... "
  }
  return payload.indexOf(TYPE_ERROR) >= 0;
}

/** Reads the decimal id after `"in_reply_to":"` (gateway replies) or `"id":"` (bare echo). */
function replyId(payload) {
  let at = payload.indexOf(IN_REPLY_TO);
  if (at >= 0) at += IN_REPLY_TO.length;
  else {
    at = payload.indexOf(ID);
    if (at < 0) return -1;
    at += ID.length;
  }
  let n = 0;
  for (let i = at; i < payload.length; i++) {
    const c = payload[i];
    if (c === QUOTE) return n;
    n = n * 10 + (c - 48);
  }
  return -1;
}

function makeScenario(spec) {
  const connect = spec.client === 'ws' ? connectWs : connectRaw;
  const counters = () => ({ ok: 0, errors: {}, closes: {}, upgrades: 0, rejected: {}, sent: 0 });
  let c = counters();
  const hist = new Histogram();
  let measuring = false;
  let running = false;
  let cpuAtMark = process.cpuUsage();
  let tMark = performance.now();
  const sockets = [];
  const failures = {};
  const stormLoops = [];
  const template = RawWebSocket.textFrame(
    `{"agent_type":"echo","message":"${spec.body}","conversation_id":"bench","id":"${'0'.repeat(ID_DIGITS)}"}`,
  );
  const idOffset = template.indexOf(`"id":"${'0'.repeat(ID_DIGITS)}"`) + 6;
  /** A copy of the template with `id` written into its fixed-width id field. */
  const frameFor = (id) => {
    const frame = Buffer.allocUnsafe(template.length);
    template.copy(frame);
    for (let i = idOffset + ID_DIGITS - 1, n = id; i >= idOffset; i--, n = Math.floor(n / 10)) frame[i] = 48 + (n % 10);
    return frame;
  };

  const openOne = async (token) => {
    try {
      return await connect({ host: spec.host, port: spec.port, path: url(spec, token), headers: spec.headers });
    } catch (err) {
      const key = `${err.status ?? 0}`;
      failures[key] = (failures[key] ?? 0) + 1;
      if (!failures.sample) failures.sample = String(err.message).slice(0, 300);
      return null;
    }
  };

  const openMany = async (n, tokenPrefix = spec.tokenPrefix) => {
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const i = next++;
        const ws = await openOne(`${tokenPrefix}-${i}`);
        if (ws) sockets.push(ws);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, lane));
  };

  const attachEcho = (ws) => {
    const sentAt = new Map();
    let seq = 0;
    const fire = (now) => {
      const id = seq++;
      sentAt.set(id, now);
      c.sent++;
      ws.sendFrame(frameFor(id));
    };
    ws.onmessage = (payload) => {
      const id = replyId(payload);
      const t0 = sentAt.get(id);
      if (t0 === undefined) return; // a second reply for one id, or a frame we did not ask for
      sentAt.delete(id);
      const now = ws.receivedAt;
      if (isError(payload)) {
        let code = 'unknown';
        try {
          code = JSON.parse(payload.toString('utf8')).code ?? code;
        } catch {}
        c.errors[code] = (c.errors[code] ?? 0) + 1;
      } else {
        c.ok++;
        if (measuring) hist.record((now - t0) * 1000);
      }
      if (running) fire(now);
    };
    ws.onclose = (code) => {
      c.closes[code] = (c.closes[code] ?? 0) + 1;
    };
    ws.inflight = () => sentAt.size;
    ws.fire = fire;
  };

  const stormPhase = [];
  const stormState = () => JSON.stringify(stormPhase);
  const stormLoop = async (slot) => {
    const token = `${spec.tokenPrefix}-${slot}`;
    while (running) {
      stormPhase[slot] = 'connect';
      const t0 = performance.now();
      try {
        const ws = await connect({ host: spec.host, port: spec.port, path: url(spec, token), headers: spec.headers });
        c.upgrades++;
        if (measuring) hist.record((performance.now() - t0) * 1000);
        ws.close(1000);
      } catch (err) {
        const key = `${err.status ?? 0}`;
        c.rejected[key] = (c.rejected[key] ?? 0) + 1;
        if (!failures.sample) failures.sample = String(err.message).slice(0, 300);
        stormPhase[slot] = 'backoff';
        await new Promise((r) => setTimeout(r, 5));
      }
      stormPhase[slot] = 'next';
    }
    stormPhase[slot] = 'out';
  };

  return {
    async prepare() {
      if (spec.kind === 'echo' || spec.kind === 'idle') {
        await openMany(spec.conns);
        if (spec.kind === 'echo') for (const ws of sockets) attachEcho(ws);
        else for (const ws of sockets) ws.onclose = (code) => (c.closes[code] = (c.closes[code] ?? 0) + 1);
      }
    },
    async openMore(n, tokenPrefix) {
      const before = sockets.length;
      await openMany(n, tokenPrefix);
      for (const ws of sockets.slice(before)) ws.onclose = (code) => (c.closes[code] = (c.closes[code] ?? 0) + 1);
    },
    readyInfo() {
      return { opened: sockets.length, failures };
    },
    go() {
      running = true;
      if (spec.kind === 'echo') {
        for (const ws of sockets) for (let i = 0; i < spec.inflight; i++) ws.fire(performance.now());
      } else if (spec.kind === 'storm') {
        for (let i = 0; i < spec.concurrency; i++) stormLoops.push(stormLoop(i));
      }
    },
    mark() {
      c = counters();
      hist.reset();
      measuring = true;
      cpuAtMark = process.cpuUsage();
      tMark = performance.now();
    },
    stop() {
      const elapsedMs = performance.now() - tMark;
      const cpu = process.cpuUsage(cpuAtMark);
      measuring = false;
      running = false;
      return { ...c, failures, elapsedMs, cpuUs: cpu.user + cpu.system, hist: hist.toJSON() };
    },
    async close() {
      if (stormLoops.length > 0) {
        const t0 = performance.now();
        const settled = await Promise.race([Promise.all(stormLoops).then(() => true), new Promise((r) => setTimeout(() => r(false), 15_000))]);
        if (!settled) process.stderr.write(`loadgen: storm loops still connecting after ${Math.round(performance.now() - t0)} ms (${stormState()})\n`);
      }
      if (spec.kind === 'echo') {
        // Let in-flight replies arrive (bounded), so the server is quiet before the next scenario.
        const deadline = performance.now() + 2000;
        while (performance.now() < deadline && sockets.some((ws) => !ws.closed && ws.inflight() > 0)) {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      const closed = sockets.map(
        (ws) =>
          new Promise((resolve) => {
            if (ws.closed) return resolve();
            const prev = ws.onclose;
            ws.onclose = (code) => {
              prev(code);
              resolve();
            };
            ws.close(1000);
          }),
      );
      await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 3000))]);
      for (const ws of sockets) ws.destroy();
    },
  };
}
