// Targets of issues 3 and 5, judged from one run's figures, and the printed report.

const get = (report, target, scenario) => report.targets[target]?.scenarios?.[scenario];
const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const ratio = (b, a) => (num(b) !== null && num(a) !== null && a !== 0 ? Math.round((b / a) * 1000) / 1000 : null);

/** One row per target: value, goal, PASS/FAIL (null when it could not be measured). */
export function evaluateTargets(report) {
  const a = (s) => get(report, 'bare', s);
  const b = (s) => get(report, 'redis', s);
  const rows = [];
  const check = (id, what, value, goal, pass, note) => rows.push({ id, what, value, goal, pass: value === null ? null : pass(value), note });

  check('throughput', 'messages/s, gateway (b) / bare uWS (a)', ratio(b('throughput')?.msgsPerSec, a('throughput')?.msgsPerSec), '>= 0.6', (v) => v >= 0.6);
  check(
    'cpu-efficiency',
    'messages per CPU-second (gateway + Redis) b/a',
    ratio(b('throughput')?.msgsPerCpuSecond, a('throughput')?.msgsPerCpuSecond),
    '>= 0.4',
    (v) => v >= 0.4,
  );
  const bt = b('throughput');
  check(
    'redis-per-msg',
    'Redis round trips per accepted message under load (commands the gateway sent, at most one round trip each)',
    num(bt?.redisRoundTripsPerMsg),
    '<= 0.1',
    (v) => v <= 0.1,
    bt
      ? `sent: ${JSON.stringify(bt.redisRoundTripsByCommand)}; every command incl. those inside scripts: ${bt.redisCallsPerMsg}/msg; EVAL/EVALSHA: ${bt.redisLimitCallsPerMsg}/msg`
      : undefined,
  );
  const limited = get(report, 'limited', 'limited');
  check(
    'redis-when-limited',
    'Redis commands per message from a user already over its limit',
    num(limited?.redisCallsPerLimitedMsg),
    '~0 (<= 0.01: background heartbeats and the few accepted messages only)',
    (v) => v <= 0.01,
    limited ? `${limited.rateLimited} rate-limited + ${limited.accepted} accepted messages, Redis commands ${JSON.stringify(limited.redisCalls)}` : undefined,
  );
  check('upgrades', 'upgrades/s with Redis admission b/a', ratio(b('storm')?.upgradesPerSec, a('storm')?.upgradesPerSec), '>= 0.5', (v) => v >= 0.5);
  const bi = b('idle');
  const ai = a('idle');
  // RSS can fall during the measured batch (a full GC returning pages): a figure of 0 or less
  // measured that, not the sockets, and must not pass the target.
  const warmUsable = num(bi?.warmBytesPerConn) > 0 && num(ai?.warmBytesPerConn) > 0;
  check(
    'idle-memory',
    'memory per idle connection b/a, warm (past the high-water mark of a first burst, closed and reopened; read after a full GC)',
    warmUsable ? ratio(bi.warmBytesPerConn, ai.warmBytesPerConn) : null,
    '<= 2',
    (v) => v <= 2,
    bi && ai
      ? `warm: b ${bi.warmBytesPerConn} B, a ${ai.warmBytesPerConn} B per socket` +
          (warmUsable ? '' : ' (not usable: RSS fell during the measured batch; run again)') +
          `; before the batch's collection (its upgrades' garbage included): b ${bi.warmUncollectedBytesPerConn} B, a ${ai.warmUncollectedBytesPerConn} B` +
          `; first burst on a fresh process: b/a ${ratio(bi.bytesPerConn, ai.bytesPerConn)}` +
          ` (b ${bi.bytesPerConn} B, a ${ai.bytesPerConn} B per socket)`
      : undefined,
  );
  const added = num(b('latency')?.p99Ms) !== null && num(a('latency')?.p99Ms) !== null ? Math.round((b('latency').p99Ms - a('latency').p99Ms) * 1000) / 1000 : null;
  const addedP50 = num(b('latency')?.p50Ms) !== null && num(a('latency')?.p50Ms) !== null ? Math.round((b('latency').p50Ms - a('latency').p50Ms) * 1000) / 1000 : null;
  check('light-latency', 'p99 latency added by the gateway at 10 connections x 1 in flight (ms)', added, '<= 1 ms', (v) => v <= 1, `p50 added: ${addedP50} ms`);
  check(
    'telemetry-cost',
    'messages/s with telemetry on (OTLP to a local sink, default 1% trace sampling) / telemetry off',
    ratio(get(report, 'otel', 'throughput')?.msgsPerSec, b('throughput')?.msgsPerSec),
    '>= 0.9',
    (v) => v >= 0.9,
    (() => {
      const on = get(report, 'otel', 'throughput');
      const off = b('throughput');
      const cpu = on && off ? `gateway CPU per message ${on.serverCpuUsPerMsg} us on vs ${off.serverCpuUsPerMsg} us off (ratio ${ratio(on.serverCpuUsPerMsg, off.serverCpuUsPerMsg)})` : '';
      const sink = report.targets.otel?.otlpReceived ? `sink received ${JSON.stringify(report.targets.otel.otlpReceived)}` : 'sink received nothing';
      return `${cpu}; ${sink}`;
    })(),
  );
  return rows;
}

export function printReport(report, out) {
  const w = (s = '') => out.write(`${s}\n`);
  const m = report.meta;
  w();
  w(`wsgw benchmark ${m.date}${m.quick ? ' (--quick: smoke figures, not measurements)' : ''}`);
  w(`machine: ${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.redisVersion ?? ''}`);
  w(`commit ${m.commit}; client: ${m.workers} load-generator processes, ${m.client}`);
  if (m.gatewayNodeOptions !== undefined) w(`gateway NODE_OPTIONS: ${m.gatewayNodeOptions === '' ? "(none: Node's defaults)" : m.gatewayNodeOptions}`);
  if (m.baseline) w(`baseline: ${m.baseline}`);
  w(`window ${m.durationS} s after ${m.warmupS} s warm-up; load average at start ${m.loadAverageStart.join(' ')}, end ${m.loadAverageEnd?.join(' ')}`);
  w(`raw files: ${m.outDir}`);
  const peak = Math.max(...m.loadAverageStart, ...(m.loadAverageEnd ?? []));
  if (peak > m.cpus) {
    w(
      `NOTE: the machine was oversubscribed (load average up to ${peak} on ${m.cpus} cores): messages/s and latencies reflect the CPU share` +
        ' each process got; CPU per message (msgs per CPU-second) is the comparable figure.',
    );
  }

  if (report.profile) {
    w();
    const { allocation } = report.profile;
    w(`${allocation ? 'Allocation' : 'CPU'} profile (${report.profile.label ?? 'gateway'}) under the throughput load: ${report.profile.file ?? report.profile.error}`);
    const t = report.profile.throughput;
    if (t) w(`  (under the profiler: ${t.msgsPerSec} msgs/s, p50 ${t.p50Ms} ms, server CPU ${t.serverCpuUtil} of a core, Redis commands/msg ${t.redisCallsPerMsg})`);
    if (allocation) {
      // Sampled in the measured window, per reply the clients counted in it.
      for (const line of allocation) w(`  ${line}`);
      return;
    }
    w('  self%   total%  function (percent of non-idle samples, whole process life)');
    for (const f of report.profile.top ?? []) w(`  ${pad(`${f.selfPct}%`, 7)} ${pad(`${f.totalPct}%`, 7)}  ${f.name}  ${f.where}`);
    return;
  }

  const rows = [];
  for (const [key, t] of Object.entries(report.targets)) {
    if (t.error) {
      rows.push([t.label, 'FAILED', t.error.split('\n')[0]]);
      continue;
    }
    const s = t.scenarios;
    for (const name of ['throughput', 'latency', 'limited']) {
      const r = s[name];
      if (!r) continue;
      if (r.error) {
        rows.push([t.label, name, `error: ${r.error}`]);
        continue;
      }
      rows.push([
        t.label,
        `${name} ${r.conns}x${r.inflight}`,
        `${fmt(r.msgsPerSec)} msgs/s  p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  server CPU ${r.serverCpuS} s (${r.serverCpuUtil} core, ${r.serverCpuUsPerMsg} us/msg)` +
          `  Redis CPU ${r.redisCpuS} s${r.redisCpuUsPerMsg ? ` (${r.redisCpuUsPerMsg} us/msg)` : ''}  ${fmt(r.msgsPerCpuSecond)} msgs/CPU-s  client ${r.clientCpuUsPerMsg} us/msg` +
          (r.redisCallsPerMsg !== null ? `  Redis round trips/msg ${r.redisRoundTripsPerMsg} (commands incl. in scripts ${r.redisCallsPerMsg})` : '') +
          (r.redisUsecPerMsgByCommand
            ? `  Redis us/msg by command ${Object.entries(r.redisUsecPerMsgByCommand)
                .slice(0, 3)
                .map(([c, us]) => `${c} ${us}`)
                .join(', ')}`
            : '') +
          (Object.keys(r.errors).length ? `  errors ${JSON.stringify(r.errors)}` : '') +
          `  machine busy ${Math.round(r.machineBusy * 100)}%  load ${r.loadAverage.join(' ')}` +
          rounds(r, name === 'latency' ? 'p99 ms' : 'msgs/s'),
      ]);
    }
    if (s.storm) {
      const r = s.storm;
      rows.push([
        t.label,
        `upgrade storm x${r.concurrency ?? '?'}`,
        r.error
          ? `error: ${r.error}`
          : `${fmt(r.upgradesPerSec)} upgrades/s  p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  server CPU ${r.serverCpuS} s (${r.serverCpuUtil} core)  Redis CPU ${r.redisCpuS} s` +
            (r.redisCallsPerUpgrade !== null ? `  Redis round trips/upgrade ${r.redisRoundTripsPerUpgrade} (commands incl. in scripts ${r.redisCallsPerUpgrade})` : '') +
            (Object.keys(r.rejected).length ? `  refused ${JSON.stringify(r.rejected)}` : '') +
            `  machine busy ${Math.round(r.machineBusy * 100)}%` +
            rounds(r, 'upgrades/s'),
      ]);
    }
    if (s.idle) {
      const r = s.idle;
      if (r.error) rows.push([t.label, 'idle sockets', `error: ${r.error}`]);
      else {
        rows.push([
          t.label,
          'idle, first burst',
          `${r.conns} sockets on a fresh process: RSS ${r.rssBeforeMiB} -> ${r.rssAfterMiB} MiB = ${fmt(r.bytesPerConn)} B/socket` +
            ` (marginal ${fmt(r.marginalBytesPerConn)} B/socket over the second half)` +
            (r.redisBytesPerConn !== null ? `  Redis ${fmt(r.redisBytesPerConn)} B/socket` : '') +
            `  (connected in ${r.connectS} s)`,
        ]);
        rows.push([
          t.label,
          'idle, warm',
          `${r.conns} more past the first burst's high-water mark, after a full GC: RSS ${r.rssReopenMiB} -> ${r.rssWarmMiB} MiB = ${fmt(r.warmBytesPerConn)} B/socket` +
            ` (before the GC: ${r.rssWarmUncollectedMiB} MiB = ${fmt(r.warmUncollectedBytesPerConn)} B/socket)` +
            (r.allRounds ? ` [median of ${r.medianOf} fresh processes: ${r.allRounds.map((b) => fmt(b)).join(', ')}]` : '') +
            `  (first burst closed: RSS ${r.rssClosedMiB} MiB, ${r.settled ? 'settled in' : 'NOT settled within'} ${r.settleS} s;` +
            ` ${r.conns} reopened: +${fmt(r.reopenBytesPerConn)} B/socket)`,
        ]);
      }
    }
    if (t.otlpReceived) rows.push([t.label, 'OTLP sink', JSON.stringify(t.otlpReceived)]);
  }
  w();
  for (const [label, what, text] of rows) w(`${pad(label, 40)} ${pad(what, 22)} ${text}`);

  w();
  w('Targets (issue 3, issue 5 item 6):');
  for (const c of report.checks) {
    const verdict = c.pass === null ? 'N/A ' : c.pass ? 'PASS' : 'FAIL';
    w(`  ${verdict}  ${c.what}: ${c.value ?? 'not measured'} (target ${c.goal})${c.note ? `; ${c.note}` : ''}`);
  }
  const sampled = get(report, 'otel-full', 'throughput');
  const off = get(report, 'redis', 'throughput');
  if (sampled && off && !sampled.error) {
    w(
      `  info  telemetry on with every trace sampled (OTEL_TRACES_SAMPLER=parentbased_always_on) / off: messages/s ${ratio(sampled.msgsPerSec, off.msgsPerSec)},` +
        ` gateway CPU per message ${sampled.serverCpuUsPerMsg} us vs ${off.serverCpuUsPerMsg} us (ratio ${ratio(sampled.serverCpuUsPerMsg, off.serverCpuUsPerMsg)})`,
    );
  }
  const base = report.targets.baseline?.scenarios;
  const head = report.targets.redis?.scenarios;
  if (report.targets.baseline?.error) w(`  info  (b) / baseline: the baseline gateway failed: ${report.targets.baseline.error.split('\n')[0]}`);
  if (base?.throughput && head?.throughput && !base.throughput.error && !head.throughput.error) {
    w(
      `  info  (b) / baseline, same rounds: messages/s ${ratio(head.throughput.msgsPerSec, base.throughput.msgsPerSec)},` +
        ` messages per CPU-second ${ratio(head.throughput.msgsPerCpuSecond, base.throughput.msgsPerCpuSecond)};` +
        ` per message: gateway ${head.throughput.serverCpuUsPerMsg} vs ${base.throughput.serverCpuUsPerMsg} us, Redis ${head.throughput.redisCpuUsPerMsg ?? '-'} vs ${base.throughput.redisCpuUsPerMsg ?? '-'} us;` +
        ` light-load p99 ${head.latency?.p99Ms ?? '-'} vs ${base.latency?.p99Ms ?? '-'} ms; upgrades/s ${ratio(head.storm?.upgradesPerSec, base.storm?.upgradesPerSec)}`,
    );
  }
  if (base?.idle && head?.idle && !base.idle.error && !head.idle.error) {
    const warm = (t) => (report.targets[t].rounds?.idle ?? []).map((r) => r.warmBytesPerConn).join(' / ');
    w(`  info  (b) / baseline, same rounds: idle memory warm ${head.idle.warmBytesPerConn} vs ${base.idle.warmBytesPerConn} B per socket (rounds ${warm('redis')} vs ${warm('baseline')})`);
  }
  const bt = report.targets.bare?.scenarios?.throughput;
  const gt = report.targets.redis?.scenarios?.throughput;
  if (bt && !bt.error) {
    w('Is the client the bottleneck?');
    w(
      `  client: ${bt.clientCpuUsPerMsg} us CPU per message against the bare server (${gt?.clientCpuUsPerMsg ?? '-'} us against the gateway);` +
        ` bare server ${bt.serverCpuUsPerMsg} us/msg, gateway ${gt?.serverCpuUsPerMsg ?? '-'} us/msg.`,
    );
    w(
      `  bare server busy ${bt.serverCpuUtil} of a core, gateway ${gt?.serverCpuUtil ?? '-'} of a core, machine ${Math.round(bt.machineBusy * 100)}% busy during (a).` +
        (bt.serverCpuUtil < 0.9
          ? ' The bare server was NOT saturated: (a) is bounded by the client and the other processes sharing the cores, so it understates bare uWS and the b/a message ratios flatter the gateway; messages per CPU-second is the fairer comparison.'
          : ' The bare server was saturated: (a) is its capacity on this box.'),
    );
  }
  const e = report.targets.embedded?.scenarios;
  const a = report.targets.bare?.scenarios;
  if (e && a) {
    w('Reference, embedded mode / bare uWS:');
    w(
      `  messages/s ${ratio(e.throughput?.msgsPerSec, a.throughput?.msgsPerSec)}, msgs per CPU-s ${ratio(e.throughput?.msgsPerCpuSecond, a.throughput?.msgsPerCpuSecond)},` +
        ` upgrades/s ${ratio(e.storm?.upgradesPerSec, a.storm?.upgradesPerSec)},` +
        ` idle memory warm ${ratio(e.idle?.warmBytesPerConn, a.idle?.warmBytesPerConn)} (first burst ${ratio(e.idle?.bytesPerConn, a.idle?.bytesPerConn)}),` +
        ` light-load p99 added ${num(e.latency?.p99Ms) !== null && num(a.latency?.p99Ms) !== null ? Math.round((e.latency.p99Ms - a.latency.p99Ms) * 1000) / 1000 : '-'} ms`,
    );
  }
}

/** Which round the figure is, when there were several. */
function rounds(r, unit) {
  return r.medianOf ? `  [median of ${r.medianOf} rounds by ${unit}: ${r.allRounds.join(', ')}]` : '';
}

function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function fmt(x) {
  return x === null || x === undefined ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: 0 });
}
