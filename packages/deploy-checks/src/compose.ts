import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { renderHaproxyConfig } from '@wsgw/local-cluster';
import { parse } from 'yaml';
import { parseRange, rangeWithin, trustedProxyProblems, type AddressRange } from './addresses.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const HAPROXY_CONFIG = 'infra/haproxy/haproxy.cfg';
export const COMPOSE_FILE = 'infra/compose.yaml';

/** What the load balancer must do for WebSockets behind round robin (issue 6). */
export function checkHaproxyConfig(repo: string): string[] {
  const problems: string[] = [];
  const text = readFileSync(join(repo, HAPROXY_CONFIG), 'utf8');
  const lines = text.split('\n').map((l) => l.replace(/#.*$/, '').trim());
  const has = (re: RegExp) => lines.some((l) => re.test(l));
  if (!has(/^timeout tunnel\s+\S+/)) problems.push(`${HAPROXY_CONFIG}: no 'timeout tunnel' (upgraded sockets would die at 'timeout client')`);
  if (!has(/^balance roundrobin$/)) problems.push(`${HAPROXY_CONFIG}: not 'balance roundrobin'`);
  if (!has(/^http-check send .*uri \/readyz\b/) && !has(/^option httpchk .*\/readyz\b/)) problems.push(`${HAPROXY_CONFIG}: health checks do not hit /readyz`);
  if (has(/^(cookie|stick|stick-table|hash-type)\b/) || has(/^balance (source|uri|hdr|url_param)/)) {
    problems.push(`${HAPROXY_CONFIG}: stickiness configured; replicas share limits through Redis and need none`);
  }
  if (!has(/^default-server .*\bcheck\b/) && !has(/^server .*\bcheck\b/)) problems.push(`${HAPROXY_CONFIG}: servers are not health-checked`);
  // The gateways' WEBSOCKET_TRUSTED_PROXIES relies on it; `if-none` would pass a client's own header on.
  if (!has(/^option forwardfor\b/)) problems.push(`${HAPROXY_CONFIG}: no 'option forwardfor': the gateway cannot tell clients apart (X-Forwarded-For)`);
  else if (has(/^option forwardfor\b.*\bif-none\b/)) problems.push(`${HAPROXY_CONFIG}: 'option forwardfor if-none' forwards a client's own X-Forwarded-For unchecked`);
  // Browsers send the session token in the upgrade's query string (CONTRACT §7: never in a log).
  if (has(/^option httplog\b/) || has(/^log-format\b.*%(\{[^}]*\})?(r|HU|HQ)\b/)) {
    problems.push(`${HAPROXY_CONFIG}: the access log has the request's query string, where browsers send the session token (log %HM %HP %HV, not %r/%HU/%HQ or 'option httplog')`);
  }

  // The config HAProxy would run, checked by HAProxy itself where it is installed.
  const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (probe.status === 0) {
    const dir = mkdtempSync(join(tmpdir(), 'wsgw-haproxy-check-'));
    try {
      const rendered = renderHaproxyConfig(text, {
        bind: '127.0.0.1:65000', // checked, never bound
        adminSocket: join(dir, 'admin.sock'),
        servers: [{ name: 'replica-1', address: '127.0.0.1:1' }],
      });
      writeFileSync(join(dir, 'haproxy.cfg'), rendered);
      const check = spawnSync('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
      if (check.status !== 0) problems.push(`${HAPROXY_CONFIG}: haproxy -c: ${(check.stderr || check.stdout).trim()}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return problems;
}

/** infra/compose.yaml: Redis, the Collector, three replicas built from the Dockerfile, HAProxy in front. */
export function checkCompose(repo: string): string[] {
  const problems: string[] = [];
  const file = join(repo, COMPOSE_FILE);
  const base = dirname(file);
  const doc = parse(readFileSync(file, 'utf8'), { merge: true }) as Json;
  const services: Json = doc.services ?? {};
  for (const name of ['redis', 'otel-collector', 'haproxy']) {
    if (!services[name]) problems.push(`${COMPOSE_FILE}: no ${name} service`);
  }
  const gateways = Object.entries(services).filter(([, s]) => s?.build);
  if (gateways.length < 3) problems.push(`${COMPOSE_FILE}: fewer than three gateway replicas`);
  for (const [name, s] of gateways) {
    const context = resolve(base, s.build.context ?? '.');
    if (!existsSync(join(context, s.build.dockerfile ?? 'Dockerfile'))) problems.push(`${COMPOSE_FILE}: ${name} builds from a missing Dockerfile`);
    if (!/^redis:\/\/redis:6379/.test(s.environment?.REDIS_URL ?? '')) problems.push(`${COMPOSE_FILE}: ${name} does not use the redis service`);
    if (s.ports) problems.push(`${COMPOSE_FILE}: ${name} publishes ports; traffic must go through HAProxy`);
  }
  problems.push(...checkComposeProxyTrust(services, doc.networks ?? {}, gateways));
  const mounts = (service: string): string[] => (services[service]?.volumes ?? []).map((v: string) => String(v).split(':')[0] ?? '');
  for (const [service, path] of [
    ['haproxy', HAPROXY_CONFIG],
    ['otel-collector', 'infra/otel-collector.yaml'],
  ] as const) {
    if (!mounts(service).some((m) => resolve(base, m) === join(repo, path))) problems.push(`${COMPOSE_FILE}: ${service} does not mount ${path}`);
  }
  // Every file or folder a service mounts from the repository exists.
  for (const [name, s] of Object.entries(services)) {
    for (const volume of (s?.volumes ?? []) as unknown[]) {
      const source = String(volume).split(':')[0] ?? '';
      if (/^\.\.?\//.test(source) && !existsSync(resolve(base, source))) problems.push(`${COMPOSE_FILE}: ${name} mounts missing ${source}`);
    }
  }
  // HAProxy's servers are exactly the compose replicas.
  const cfg = readFileSync(join(repo, HAPROXY_CONFIG), 'utf8');
  const servers = [...cfg.matchAll(/^\s*server\s+\S+\s+([\w.-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`).sort();
  const expected = gateways.map(([name, s]) => `${name}:${s.environment?.PORT ?? '8000'}`).sort();
  if (JSON.stringify(servers) !== JSON.stringify(expected)) {
    problems.push(`${HAPROXY_CONFIG}: servers ${servers.join(', ')} are not the compose replicas ${expected.join(', ')}`);
  }
  return problems;
}

/**
 * The replicas believe X-Forwarded-For from HAProxy and from nothing else: HAProxy has a fixed
 * address on its network, outside the range Docker hands out to other containers, and each
 * replica's WEBSOCKET_TRUSTED_PROXIES lists only such fixed proxy addresses.
 */
function checkComposeProxyTrust(services: Json, networks: Json, gateways: Array<[string, Json]>): string[] {
  const problems: string[] = [];
  const proxies: AddressRange[] = [];
  const attached: Json = services.haproxy?.networks ?? {};
  for (const [network, settings] of Object.entries<Json>(Array.isArray(attached) ? {} : attached)) {
    const address = String(settings?.ipv4_address ?? settings?.ipv6_address ?? '');
    if (address === '') continue;
    const here = parseRange(address);
    const pools = ((networks[network]?.ipam?.config ?? []) as Json[]).map((c) => ({
      subnet: parseRange(String(c.subnet ?? '')),
      handedOut: parseRange(String(c.ip_range ?? c.subnet ?? '')),
    }));
    const pool = pools.find((p) => here && p.subnet && rangeWithin(here, p.subnet));
    if (!here || !pool) {
      problems.push(`${COMPOSE_FILE}: haproxy's address ${address} is not in a subnet declared for network ${network}`);
      continue;
    }
    if (pool.handedOut && rangeWithin(here, pool.handedOut)) {
      problems.push(`${COMPOSE_FILE}: haproxy's address ${address} is inside the range Docker hands out (ip_range): another container could get it`);
    }
    proxies.push(here);
  }
  const named = proxies.map((p) => p.text).join(', ');
  if (proxies.length === 0) problems.push(`${COMPOSE_FILE}: haproxy has no fixed address, so the replicas cannot trust its X-Forwarded-For and only it`);
  for (const [name, s] of gateways) {
    const value = s.environment?.WEBSOCKET_TRUSTED_PROXIES as string | undefined;
    const own = trustedProxyProblems(`${COMPOSE_FILE}: ${name}`, value);
    problems.push(...own);
    if (own.length > 0) continue;
    const entries = String(value)
      .split(',')
      .flatMap((e) => parseRange(e) ?? []);
    for (const entry of entries) {
      if (!proxies.some((p) => rangeWithin(entry, p))) {
        problems.push(`${COMPOSE_FILE}: ${name} trusts X-Forwarded-For from ${entry.text}, which is more than haproxy's address (${named})`);
      }
    }
    if (!proxies.every((p) => entries.some((e) => rangeWithin(p, e)))) {
      problems.push(`${COMPOSE_FILE}: ${name}'s WEBSOCKET_TRUSTED_PROXIES does not cover haproxy (${named})`);
    }
  }
  return problems;
}
