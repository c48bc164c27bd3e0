import { isIP } from 'node:net';

/** An IP address or CIDR range as a span of numbers, so ranges can be compared. */
export interface AddressRange {
  text: string;
  family: 4 | 6;
  first: bigint;
  last: bigint;
}

function toBigInt(address: string, family: 4 | 6): bigint {
  if (family === 4) return address.split('.').reduce((n, octet) => (n << 8n) | BigInt(Number(octet)), 0n);
  // An embedded IPv4 tail (::ffff:10.0.0.1) is two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  let text = address;
  if (v4) {
    const n = toBigInt(v4[1] as string, 4);
    text = `${address.slice(0, -(v4[1] as string).length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** `10.0.0.7`, `10.0.0.0/8`, `fd00::/8` as a range; null when it is neither an address nor a range. */
export function parseRange(entry: string): AddressRange | null {
  const text = entry.trim();
  const [address = '', prefix, extra] = text.split('/');
  const family = isIP(address);
  if ((family !== 4 && family !== 6) || extra !== undefined) return null;
  const bits = family === 4 ? 32 : 128;
  if (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits)) return null;
  const length = BigInt(prefix === undefined ? bits : Number(prefix));
  const host = (1n << (BigInt(bits) - length)) - 1n;
  const first = toBigInt(address, family) & ~host & ((1n << BigInt(bits)) - 1n);
  return { text, family, first, last: first | host };
}

/** Whether every address of `inner` is in `outer`. */
export function rangeWithin(inner: AddressRange, outer: AddressRange): boolean {
  return inner.family === outer.family && inner.first >= outer.first && inner.last <= outer.last;
}

/**
 * Address space that never reaches a cluster from the internet: where proxies in front of the
 * gateway (ingress controller pods, a compose network) live. A trusted range outside it would let
 * clients on the internet name their own address.
 */
export const INTERNAL_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', 'fc00::/7', '::1/128'].map(
  (r) => parseRange(r) as AddressRange,
);

/**
 * Problems with a WEBSOCKET_TRUSTED_PROXIES value meant for proxies inside a private network:
 * empty, not an address or range, or reaching outside private address space (0.0.0.0/0, public).
 */
export function trustedProxyProblems(where: string, value: string | undefined): string[] {
  const entries = (value ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) {
    return [`${where}: WEBSOCKET_TRUSTED_PROXIES is empty behind a proxy: every client would share the proxy's address (one client's bad tokens lock everyone out)`];
  }
  const problems: string[] = [];
  for (const entry of entries) {
    const range = parseRange(entry);
    if (!range) problems.push(`${where}: WEBSOCKET_TRUSTED_PROXIES entry ${JSON.stringify(entry)} is not an IP address or CIDR range`);
    else if (!INTERNAL_RANGES.some((r) => rangeWithin(range, r))) {
      problems.push(`${where}: WEBSOCKET_TRUSTED_PROXIES entry ${entry} reaches outside private address space: clients there could forge X-Forwarded-For`);
    }
  }
  return problems;
}
