import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MetricNames } from '@wsgw/telemetry';

/**
 * infra/ stays in sync with the code: every metric the Grafana dashboard queries is one the
 * gateway exports (in the Prometheus form the collector gives it), and the collector config has
 * the pipelines the docs describe.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));

type Kind = 'counter' | 'histogram' | 'gauge';
const kinds: Record<keyof typeof MetricNames, Kind> = {
  connectionAccepted: 'counter',
  connectionClosed: 'counter',
  connectionError: 'counter',
  messageReceived: 'counter',
  rateLimitExceeded: 'counter',
  connectionsActive: 'gauge',
  connectionDuration: 'histogram',
  upgradeRejected: 'counter',
  messageRejected: 'counter',
  replyLatency: 'histogram',
  replyDropped: 'counter',
  backpressureDropped: 'counter',
  requestsPending: 'gauge',
  agentQueueDepth: 'gauge',
  limitsFallback: 'counter',
  redisDuration: 'histogram',
};

/** The names the collector's prometheus exporter writes for one instrument. */
function prometheusNames(name: string, kind: Kind): string[] {
  const base = name.replace(/\./g, '_') + (kind === 'histogram' ? '_seconds' : '');
  if (kind === 'counter') return [`${base}_total`];
  if (kind === 'histogram') return [`${base}_bucket`, `${base}_sum`, `${base}_count`];
  return [base];
}

describe('infra/', () => {
  const dashboard = JSON.parse(readFileSync(`${root}infra/grafana/dashboards/ws-gateway.json`, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const known = new Set(
    Object.entries(MetricNames).flatMap(([key, name]) => prometheusNames(name, kinds[key as keyof typeof MetricNames])),
  );

  it('the dashboard queries only metrics the gateway exports', () => {
    expect(exprs.length).toBeGreaterThan(10);
    for (const expr of exprs) {
      const metrics = expr.match(/\b(websocket|db)_[a-z_]+(?=\{)/g) ?? [];
      expect(metrics.length, expr).toBeGreaterThan(0);
      for (const m of metrics) expect(known, `${m} in ${expr}`).toContain(m);
    }
  });

  it('the dashboard has the panels on-call looks at first', () => {
    const joined = exprs.join('\n');
    for (const metric of [
      'websocket_connection_active',
      'websocket_upgrade_rejected_total',
      'websocket_message_received_total',
      'websocket_rate_limit_exceeded_total',
      'websocket_message_reply_latency_seconds_bucket',
      'db_client_operation_duration_seconds_bucket',
      'websocket_limits_fallback_total',
    ]) {
      expect(joined).toContain(metric);
    }
    expect(joined).toMatch(/histogram_quantile\(0\.99, [^\n]*websocket_message_reply_latency_seconds_bucket/);
  });

  it('the collector takes OTLP in and sends metrics to Prometheus and traces to a trace backend', () => {
    const config = readFileSync(`${root}infra/otel-collector.yaml`, 'utf8');
    expect(config).toMatch(/receivers:\s*\n\s+otlp:\s*\n\s+protocols:\s*\n\s+grpc:[\s\S]*http:/);
    expect(config).toMatch(/metrics:\s*\n\s+receivers: \[otlp\][\s\S]*?exporters: \[prometheus\]/);
    expect(config).toMatch(/traces:\s*\n\s+receivers: \[otlp\][\s\S]*?exporters: \[otlp\/traces\]/);
  });
});
