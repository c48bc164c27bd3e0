import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  launchGateway as run,
  open,
  OtlpReceiver,
  type LaunchedGateway,
  type OpenClient,
  type ReceivedSpan,
} from '@wsgw/testkit';

/**
 * Telemetry end to end: `node packages/gateway/dist/main.js` configured only by OTEL_* variables,
 * pushing OTLP/HTTP to a real receiver started here. Needs `npx turbo run build` first.
 */
const PATH = '/api/ws/agent';
const ALLOWED = 'http://allowed.example';

/** Frames until one matches, failing after `max` frames or a frame timeout. */
async function nextMatching(client: OpenClient, match: (f: Record<string, unknown>) => boolean, max = 20) {
  for (let i = 0; i < max; i++) {
    const frame = await client.next();
    if (match(frame)) return frame;
  }
  throw new Error('no matching frame');
}

describe('telemetry over OTLP/HTTP (http/json) from a gateway process', () => {
  const token = `secret-token-${randomBytes(8).toString('hex')}`;
  const parentTraceId = randomBytes(16).toString('hex');
  const parentSpanId = randomBytes(8).toString('hex');
  const quietTraceId = randomBytes(16).toString('hex');
  let receiver: OtlpReceiver;
  let gw: LaunchedGateway;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    gw = run({
      ...receiver.exportEnv({
        OTEL_SERVICE_NAME: 'wsgw-telemetry-test',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
        // Every trace, not the default 1 % of new ones: the refused upgrades below have no traceparent.
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      }),
      CORS_ORIGINS: ALLOWED,
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '3',
      LOG_LEVEL: 'info',
    });
    const port = await gw.listening();
    const url = (t: string) => `ws://127.0.0.1:${port}${PATH}?session_token=${t}`;

    // One client with a traceparent and an allowed origin: a reply, an invalid frame, a flood.
    const client = await open(url(token), {
      origin: ALLOWED,
      headers: { traceparent: `00-${parentTraceId}-${parentSpanId}-01` },
    });
    client.send({ agent_type: 'echo', message: 'Hello', id: 'm1', pillar: 'p1' });
    expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: 'm1' });
    client.send('not json');
    expect(await client.next()).toMatchObject({ type: 'error', code: 'invalid_message' });
    for (let i = 0; i < 6; i++) client.send({ agent_type: 'echo', message: `flood ${i}` });
    await nextMatching(client, (f) => f['code'] === 'rate_limited');
    await client.close();

    // A client whose traceparent says "not sampled": its upgrade is not sampled (parent-based), so
    // neither is anything of its connection: its messages start no span, here or in the agent.
    const quiet = await open(url(`${token}-quiet`), {
      origin: ALLOWED,
      headers: { traceparent: `00-${quietTraceId}-${randomBytes(8).toString('hex')}-00` },
    });
    for (let i = 0; i < 3; i++) {
      quiet.send({ agent_type: 'echo', message: `quiet ${i}`, id: `q${i}` });
      expect(await quiet.next()).toMatchObject({ type: 'response', in_reply_to: `q${i}` });
    }
    await quiet.close();

    // Refused upgrades, a client with no Origin, and one that vanishes without a close frame.
    const badOrigin = await connect(url(token), { origin: 'http://evil.example' });
    expect(badOrigin.opened).toBe(false);
    const noToken = await connect(`ws://127.0.0.1:${port}${PATH}`);
    expect(noToken.opened).toBe(false);
    const plain = await open(url(`${token}-2`));
    await plain.close();
    const vanishing = await open(url(`${token}-3`));
    vanishing.ws.terminate();

    await receiver.waitFor(
      () => {
        const names = new Set(receiver.metrics().map((p) => p.metric));
        const closes = receiver
          .metrics()
          .filter((p) => p.metric === 'websocket.connection.closed')
          .reduce((n, p) => n + p.value, 0);
        const errors = receiver.metrics().some((p) => p.metric === 'websocket.connection.error');
        return names.has('websocket.message.received') && closes >= 3 && errors;
      },
      20_000,
      'the metrics of the scenario',
    );
    await receiver.waitFor(
      () => receiver.spans().some((s) => s.name.startsWith('agent.handle')),
      20_000,
      'the agent span',
    );
  });

  afterAll(async () => {
    if (gw && gw.child.exitCode === null) {
      gw.child.kill('SIGTERM');
      await gw.exit;
    }
    await receiver?.close();
  });

  /** The latest cumulative value of a counter for the points matching `attrs`. */
  function latest(metric: string, attrs: Record<string, unknown> = {}): number {
    const points = receiver
      .metrics()
      .filter((p) => p.metric === metric && Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
    const bySeries = new Map<string, number>();
    for (const p of points) bySeries.set(JSON.stringify(p.attributes), p.value);
    return [...bySeries.values()].reduce((a, b) => a + b, 0);
  }

  it('delivers the five metrics of CONTRACT §7 with their attributes', () => {
    expect(latest('websocket.connection.accepted', { path: PATH })).toBeGreaterThanOrEqual(3);
    expect(latest('websocket.message.received', { agent_type: 'echo', pillar: 'p1' })).toBe(1);
    expect(latest('websocket.message.received', { agent_type: 'echo', pillar: 'none' })).toBeGreaterThanOrEqual(1);
    expect(latest('websocket.rate_limit.exceeded')).toBeGreaterThanOrEqual(1);
    // Closes carry path, origin (a configured origin by name, a missing one as `none`),
    // close code and the lifetime class as `duration`.
    const closes = receiver.metrics().filter((p) => p.metric === 'websocket.connection.closed');
    expect(closes.some((p) => p.attributes['origin'] === ALLOWED)).toBe(true);
    expect(closes.some((p) => p.attributes['origin'] === 'none')).toBe(true);
    for (const p of closes) {
      expect(p.attributes).toMatchObject({ path: PATH });
      expect(p.attributes['duration']).toMatch(/^(lt_1s|lt_10s|lt_1m|lt_10m|lt_1h|ge_1h)$/);
      expect(typeof p.attributes['code']).toBe('string');
    }
    expect(latest('websocket.connection.error', { path: PATH, reason: 'abnormal_closure' })).toBeGreaterThanOrEqual(1);
  });

  it('delivers the operator metrics: rejections by reason, latency and duration histograms, gauges', () => {
    expect(latest('websocket.upgrade.rejected', { path: PATH, reason: 'origin_not_allowed' })).toBe(1);
    expect(latest('websocket.upgrade.rejected', { path: PATH, reason: 'session_invalid' })).toBe(1);
    expect(latest('websocket.message.rejected', { reason: 'invalid' })).toBe(1);

    const latency = receiver.metrics().filter((p) => p.metric === 'websocket.message.reply_latency');
    expect(latency.length).toBeGreaterThan(0);
    expect(latency.every((p) => p.kind === 'histogram' && p.unit === 's')).toBe(true);
    expect(latency.some((p) => p.attributes['agent_type'] === 'echo' && p.value >= 1)).toBe(true);

    const durations = receiver.metrics().filter((p) => p.metric === 'websocket.connection.duration');
    expect(durations.some((p) => p.kind === 'histogram' && p.value >= 3)).toBe(true);

    const active = receiver.metrics().filter((p) => p.metric === 'websocket.connection.active');
    expect(active.length).toBeGreaterThan(0);
    expect(active.every((p) => p.kind === 'gauge')).toBe(true);
    expect(receiver.metrics().some((p) => p.metric === 'websocket.requests.pending')).toBe(true);
  });

  it('names the service and the replica on the resource, from OTEL_* and the config', () => {
    const listeningLine = gw.lines().find((l) => l['msg'] === 'gateway listening')!;
    const resource = receiver.metrics()[0]!.resource;
    expect(resource['service.name']).toBe('wsgw-telemetry-test');
    expect(resource['deployment.environment.name']).toBe('test');
    expect(resource['service.instance.id']).toBe(listeningLine['replica']);
  });

  it('puts no token, user id or connection id on any metric', () => {
    const raw = receiver.rawBodies('/v1/metrics');
    expect(raw.length).toBeGreaterThan(0);
    // Identifiers the gateway itself logged for this scenario (security events carry them).
    const ids = new Set<string>();
    for (const line of gw.lines()) {
      for (const key of ['user_id', 'connection_id', 'token_hash']) {
        if (typeof line[key] === 'string') ids.add(line[key] as string);
      }
    }
    expect([...ids].some((id) => id.length > 0)).toBe(true);
    expect(raw).not.toContain(token);
    for (const id of ids) expect(raw).not.toContain(id);

    // And attribute keys come only from the low-cardinality set the docs list.
    const allowed = new Set([
      'path',
      'origin',
      'code',
      'duration',
      'reason',
      'agent_type',
      'pillar',
      'store',
      'decision',
      'db.system.name',
      'db.operation.name',
      'error.type',
    ]);
    for (const p of receiver.metrics()) {
      for (const key of Object.keys(p.attributes)) expect(allowed, `${p.metric} has ${key}`).toContain(key);
    }
  });

  it('traces the upgrade as a child of the client traceparent, with its checks visible', () => {
    const spans = receiver.spans();
    const upgrade = spans.find((s) => s.name === 'ws.upgrade' && s.traceId === parentTraceId);
    expect(upgrade).toBeDefined();
    expect(upgrade!.parentSpanId).toBe(parentSpanId);
    expect(upgrade!.attributes).toMatchObject({ 'wsgw.path': PATH, 'wsgw.origin': ALLOWED, 'wsgw.outcome': 'admitted' });
    expect(typeof upgrade!.attributes['enduser.id']).toBe('string');
    expect(upgrade!.events.map((e) => e.name)).toContain('origin.checked');
    const children = spans.filter((s) => s.parentSpanId === upgrade!.spanId).map((s) => s.name);
    expect(children).toEqual(expect.arrayContaining(['session.validate', 'leases.acquire']));

    const refused = spans.find((s) => s.name === 'ws.upgrade' && s.attributes['wsgw.outcome'] === 'origin_not_allowed');
    expect(refused).toBeDefined();
  });

  it('traces each message, linked to its upgrade, continued by the agent that answered it', () => {
    const spans = receiver.spans();
    const upgrade = spans.find((s) => s.name === 'ws.upgrade' && s.traceId === parentTraceId)!;
    const message = spans.find(
      (s) => s.name === 'ws.message' && s.attributes['wsgw.pillar'] === 'p1',
    ) as ReceivedSpan;
    expect(message).toBeDefined();
    expect(message.attributes).toMatchObject({ 'wsgw.agent_type': 'echo', 'wsgw.outcome': 'replied' });
    expect(message.links).toEqual([{ traceId: upgrade.traceId, spanId: upgrade.spanId }]);
    const agent = spans.find((s) => s.name === 'agent.handle echo' && s.parentSpanId === message.spanId);
    expect(agent).toBeDefined();
    expect(agent!.traceId).toBe(message.traceId);

    const limited = spans.filter((s) => s.name === 'ws.message' && s.attributes['wsgw.outcome'] === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(receiver.rawBodies('/v1/traces')).not.toContain(token);
  });

  it('decides sampling once per connection: an unsampled upgrade traces none of its messages', () => {
    const spans = receiver.spans();
    expect(spans.some((s) => s.traceId === quietTraceId)).toBe(false);
    // Every message span belongs to a sampled connection, and so does every agent span.
    const sampledConnections = new Set(
      spans.filter((s) => s.name === 'ws.upgrade' && s.attributes['wsgw.outcome'] === 'admitted').map((s) => s.attributes['wsgw.connection_id']),
    );
    const messages = spans.filter((s) => s.name === 'ws.message');
    expect(messages.length).toBeGreaterThanOrEqual(8);
    for (const m of messages) expect(sampledConnections.has(m.attributes['wsgw.connection_id'])).toBe(true);
    const messageTraces = new Set(messages.map((m) => m.traceId));
    for (const a of spans.filter((s) => s.name.startsWith('agent.handle'))) expect(messageTraces.has(a.traceId)).toBe(true);
    expect(messages.some((m) => m.attributes['wsgw.agent_type'] === 'echo' && m.attributes['wsgw.outcome'] === 'replied')).toBe(true);
  });

  it('joins log lines to spans: trace_id and span_id inside a span', () => {
    const spans = receiver.spans();
    const limitedLog = gw.lines().find((l) => l['event'] === 'security.rate_limited');
    expect(limitedLog).toBeDefined();
    expect(limitedLog!['trace_id']).toMatch(/^[0-9a-f]{32}$/);
    const span = spans.find((s) => s.traceId === limitedLog!['trace_id'] && s.spanId === limitedLog!['span_id']);
    expect(span?.name).toBe('ws.message');

    const originLog = gw.lines().find((l) => l['event'] === 'security.origin_rejected');
    const upgrade = spans.find((s) => s.spanId === originLog?.['span_id']);
    expect(upgrade?.name).toBe('ws.upgrade');

    const listeningLine = gw.lines().find((l) => l['msg'] === 'gateway listening')!;
    expect(listeningLine['trace_id']).toBeUndefined();
  });

  it('exports its last counts on SIGTERM and exits 0', async () => {
    const before = receiver.requests.length;
    gw.child.kill('SIGTERM');
    expect(await gw.exit).toEqual({ code: 0, signal: null });
    expect(receiver.requests.length).toBeGreaterThan(before);
  });
});

describe('telemetry switches', () => {
  it('OTEL_SDK_DISABLED=true sends nothing', async () => {
    const receiver = await OtlpReceiver.start();
    const gw = run({ ...receiver.exportEnv(), OTEL_SDK_DISABLED: 'true' });
    try {
      const port = await gw.listening();
      const client = await open(`ws://127.0.0.1:${port}${PATH}?session_token=t`);
      client.send({ agent_type: 'echo', message: 'Hello' });
      await client.next();
      await client.close();
      gw.child.kill('SIGTERM');
      expect((await gw.exit).code).toBe(0);
      // The SDK flushes on shutdown when it runs: an exit with nothing received means it never ran.
      expect(receiver.requests).toEqual([]);
    } finally {
      if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
      await receiver.close();
    }
  });

  it('OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (the default) pushes protobuf to the same endpoint', async () => {
    const receiver = await OtlpReceiver.start();
    const gw = run({
      ...receiver.exportEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_TRACES_SAMPLER: 'always_on' }),
    });
    try {
      const port = await gw.listening();
      const client = await open(`ws://127.0.0.1:${port}${PATH}?session_token=t`);
      client.send({ agent_type: 'echo', message: 'Hello' });
      await client.next();
      await client.close();
      await receiver.waitFor(
        () =>
          ['/v1/metrics', '/v1/traces'].every((path) =>
            receiver.requests.some((r) => r.path === path && r.contentType === 'application/x-protobuf'),
          ),
        20_000,
        'protobuf metrics and traces',
      );
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exit;
      await receiver.close();
    }
  });
});

describe('metric attributes a client chooses stay low-cardinality (CONTRACT §7)', () => {
  /**
   * A gateway exporting to a receiver of its own: `talk` uses one socket, then the
   * websocket.message.received points, once `exported` holds and one more export has landed.
   */
  async function receivedPoints(token: string, talk: (client: OpenClient) => Promise<void>, exported: (receiver: OtlpReceiver) => boolean) {
    const receiver = await OtlpReceiver.start();
    const gw = run({
      ...receiver.exportEnv({ OTEL_TRACES_SAMPLER: 'always_off' }),
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '10000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
    });
    try {
      const port = await gw.listening();
      const client = await open(`ws://127.0.0.1:${port}${PATH}?session_token=${token}`);
      await talk(client);
      await client.close();
      await receiver.waitFor(() => exported(receiver), 20_000, 'message.received points');
      // Let one more export land so the last counts are in.
      await new Promise((r) => setTimeout(r, 700));
      return receiver.metrics().filter((p) => p.metric === 'websocket.message.received');
    } finally {
      if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
      await gw.exit;
      await receiver.close();
    }
  }

  it('agent types no agent serves do not use up the agent_type series: echo is still reported as echo', async () => {
    const received = await receivedPoints(
      'junk-sender',
      async (client) => {
        // One unauthenticated-looking dev client invents agent types (and pillars): every one is
        // refused with agent_unavailable, no agent exists for any of them.
        for (let i = 0; i < 250; i++) {
          client.send({ agent_type: `no-such-agent-${i}`, message: 'x', id: `j${i}`, pillar: `p-${i}` });
        }
        for (let i = 0; i < 250; i++) {
          expect(await client.next()).toMatchObject({ type: 'error', code: 'agent_unavailable' });
        }
        // Then real traffic to the agent that exists.
        client.send({ agent_type: 'echo', message: 'Hello', id: 'real' });
        expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: 'real' });
      },
      (receiver) =>
        receiver
          .metrics()
          .filter((p) => p.metric === 'websocket.message.received')
          .reduce((n, p) => Math.max(n, p.value), 0) > 0 &&
        receiver.metrics().some((p) => p.metric === 'websocket.message.reply_latency'),
    );
    // The operator's dashboard ("message rate by agent_type") must still see echo's traffic.
    expect(received.some((p) => p.attributes['agent_type'] === 'echo')).toBe(true);
    // And made-up agent types never become series of their own.
    const series = new Set(received.map((p) => String(p.attributes['agent_type'])));
    expect([...series].filter((s) => s.startsWith('no-such-agent-'))).toEqual([]);
  }, 60_000);

  it('pillar strings a client invents on a real agent type do not turn that agent type into `other`', async () => {
    const received = await receivedPoints(
      'pillar-sender',
      async (client) => {
        // Any string of up to 256 characters is a valid pillar: a client can put anything there.
        for (let i = 0; i < 250; i++) client.send({ agent_type: 'echo', message: 'x', id: `p${i}`, pillar: `user-${i}@example.com` });
        for (let i = 0; i < 250; i++) expect(await client.next()).toMatchObject({ type: 'response' });
        client.send({ agent_type: 'echo', message: 'Hello', id: 'plain' });
        expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: 'plain' });
      },
      (receiver) => receiver.metrics().some((p) => p.metric === 'websocket.message.received'),
    );
    // Every one of these 251 messages went to echo: none of them may be counted as agent_type `other`.
    expect(received.filter((p) => p.attributes['agent_type'] !== 'echo').map((p) => p.attributes)).toEqual([]);
    // And the pillar attribute does not carry one series per client-chosen string.
    const pillars = new Set(received.map((p) => String(p.attributes['pillar'])));
    expect(pillars.size).toBeLessThan(50);
  }, 60_000);
});
