import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One data point of one metric as it arrived, attributes flattened to plain values. */
export interface ReceivedPoint {
  metric: string;
  unit: string | undefined;
  kind: 'sum' | 'gauge' | 'histogram' | 'other';
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  /** Sum and gauge points: the value; histograms: the count. */
  value: number;
  /** Histograms: the sum of the recorded values. */
  sum?: number;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  events: Array<{ name: string; attributes: Record<string, unknown> }>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code?: number; message?: string } | undefined;
}

export interface ReceivedRequest {
  path: string;
  contentType: string;
  /** The decoded body text (http/json only; empty for protobuf). */
  text: string;
}

/**
 * A real OTLP/HTTP receiver on a free loopback port, the collector's stand-in in tests: it accepts
 * `POST /v1/metrics`, `/v1/traces` and `/v1/logs`, answers 200 like a collector, and decodes the
 * http/json encoding. http/protobuf requests are recorded (path, content type) but not decoded.
 */
export class OtlpReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly points: ReceivedPoint[] = [];
  private readonly spanList: ReceivedSpan[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /**
   * What a gateway's environment needs to push here, soon and often: OTLP/HTTP JSON, metrics every
   * 300 ms, spans batched for 100 ms. `extra` adds to it or overrides it.
   */
  exportEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      OTEL_EXPORTER_OTLP_ENDPOINT: this.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_METRIC_EXPORT_TIMEOUT: '300',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      ...extra,
    };
  }

  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined;
    const server = createServer((req, res) => {
      readBody(req)
        .then((body) => {
          receiver?.record(req.url ?? '', String(req.headers['content-type'] ?? ''), body);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        })
        .catch(() => res.writeHead(400).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new OtlpReceiver(server, `http://127.0.0.1:${port}`);
    return receiver;
  }

  metrics(): ReceivedPoint[] {
    return [...this.points];
  }

  /** The latest point of `metric` whose attributes include `attributes` (exports repeat cumulative points). */
  lastPoint(metric: string, attributes: Record<string, unknown> = {}): ReceivedPoint | undefined {
    for (let i = this.points.length - 1; i >= 0; i--) {
      const point = this.points[i] as ReceivedPoint;
      if (point.metric === metric && Object.entries(attributes).every(([k, v]) => point.attributes[k] === v)) return point;
    }
    return undefined;
  }

  spans(): ReceivedSpan[] {
    return [...this.spanList];
  }

  /** Every http/json body received on `path` (e.g. `/v1/metrics`), as text. */
  rawBodies(path: string): string {
    return this.requests
      .filter((r) => r.path === path)
      .map((r) => r.text)
      .join('\n');
  }

  /** Resolves once `check` holds on what has arrived; checked on every request. */
  waitFor(check: () => boolean, timeoutMs = 15_000, what = 'telemetry'): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${what} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(path: string, contentType: string, body: Buffer): void {
    const json = contentType.includes('json');
    const text = json ? body.toString('utf8') : '';
    this.requests.push({ path, contentType, text });
    if (json && text !== '') {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      if (path === '/v1/metrics') this.points.push(...decodeMetrics(parsed));
      if (path === '/v1/traces') this.spanList.push(...decodeSpans(parsed));
    }
    for (const waiter of [...this.waiters]) waiter();
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
}

// ------------------------------------------------------------------ OTLP JSON decoding

type Json = Record<string, unknown>;

function list(value: unknown): Json[] {
  return Array.isArray(value) ? (value as Json[]) : [];
}

function anyValue(v: Json | undefined): unknown {
  if (!v) return undefined;
  if ('stringValue' in v) return v['stringValue'];
  if ('intValue' in v) return Number(v['intValue']);
  if ('doubleValue' in v) return Number(v['doubleValue']);
  if ('boolValue' in v) return v['boolValue'];
  if ('arrayValue' in v) return list((v['arrayValue'] as Json)['values']).map((x) => anyValue(x));
  return undefined;
}

export function attributesOf(value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list(value)) out[String(kv['key'])] = anyValue(kv['value'] as Json | undefined);
  return out;
}

function numberOf(point: Json): number {
  if ('asInt' in point) return Number(point['asInt']);
  if ('asDouble' in point) return Number(point['asDouble']);
  return Number(point['count'] ?? 0);
}

function decodeMetrics(body: Json): ReceivedPoint[] {
  const out: ReceivedPoint[] = [];
  for (const rm of list(body['resourceMetrics'])) {
    const resource = attributesOf((rm['resource'] as Json | undefined)?.['attributes']);
    for (const sm of list(rm['scopeMetrics'])) {
      for (const m of list(sm['metrics'])) {
        const kind = 'sum' in m ? 'sum' : 'gauge' in m ? 'gauge' : 'histogram' in m ? 'histogram' : 'other';
        const data = (m[kind] as Json | undefined) ?? {};
        for (const p of list(data['dataPoints'])) {
          const point: ReceivedPoint = {
            metric: String(m['name']),
            unit: m['unit'] as string | undefined,
            kind,
            attributes: attributesOf(p['attributes']),
            resource,
            value: numberOf(p),
          };
          if (kind === 'histogram' && p['sum'] !== undefined) point.sum = Number(p['sum']);
          out.push(point);
        }
      }
    }
  }
  return out;
}

function decodeSpans(body: Json): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of list(body['resourceSpans'])) {
    const resource = attributesOf((rs['resource'] as Json | undefined)?.['attributes']);
    for (const ss of list(rs['scopeSpans'])) {
      for (const s of list(ss['spans'])) {
        const parent = s['parentSpanId'] as string | undefined;
        out.push({
          traceId: String(s['traceId']),
          spanId: String(s['spanId']),
          parentSpanId: parent === undefined || parent === '' ? undefined : parent,
          name: String(s['name']),
          kind: Number(s['kind'] ?? 0),
          attributes: attributesOf(s['attributes']),
          resource,
          events: list(s['events']).map((e) => ({ name: String(e['name']), attributes: attributesOf(e['attributes']) })),
          links: list(s['links']).map((l) => ({ traceId: String(l['traceId']), spanId: String(l['spanId']) })),
          status: s['status'] as ReceivedSpan['status'],
        });
      }
    }
  }
  return out;
}
