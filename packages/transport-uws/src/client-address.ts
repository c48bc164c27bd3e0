import { BlockList, SocketAddress, isIP } from 'node:net';

/**
 * Who is at the other end of an upgrade, for the per-address checks (the failed-session throttle)
 * and the `ip` of security logs. Behind a load balancer every TCP peer is the balancer: keyed on
 * it, one client's bad tokens would lock every client out. A peer listed in
 * `WEBSOCKET_TRUSTED_PROXIES` may say who its client was in `X-Forwarded-For`; nobody else may.
 */
export class ClientAddresses {
  private readonly proxies: BlockList | null;

  /** `trustedProxies`: IP addresses and CIDR ranges, as the config checked them. */
  constructor(trustedProxies: readonly string[]) {
    if (trustedProxies.length === 0) {
      this.proxies = null;
      return;
    }
    const proxies = new BlockList();
    for (const entry of trustedProxies) {
      const [address = '', prefix] = entry.split('/');
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) proxies.addAddress(address, type);
      else proxies.addSubnet(address, Number(prefix), type);
    }
    this.proxies = proxies;
  }

  /**
   * The client's address: the TCP peer, or, when the peer is a trusted proxy, the right-most
   * `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left of it were written by
   * the client or by hops nobody vouches for, so they are never read. A malformed entry on the
   * trusted part of the chain means the chain cannot be followed: the peer is the answer then.
   * `forwardedFor` is called only for a trusted peer (reading every header costs an upgrade a bit).
   */
  resolve(peer: string, forwardedFor: () => string): string {
    const from = canonicalAddress(peer) ?? peer;
    if (this.proxies === null || !this.isProxy(from)) return from;
    const header = forwardedFor();
    if (header.trim() === '') return from;
    const hops = header.split(',');
    let client = from;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = (hops[i] as string).trim();
      const address = canonicalAddress(withoutPort(hop));
      if (address === null) return from;
      client = address;
      if (!this.isProxy(address)) return address;
    }
    // Every hop is a trusted proxy: the request started inside; the furthest one is its source.
    return client;
  }

  private isProxy(address: string): boolean {
    return (this.proxies as BlockList).check(address, address.includes(':') ? 'ipv6' : 'ipv4');
  }
}

/**
 * One spelling per address: uWS writes IPv6 peers in full (`0000:...:0001`), and an IPv4 client of
 * a dual-stack socket arrives IPv4-mapped (`::ffff:127.0.0.1`); both become what a log reader and
 * the throttle key expect (`::1`, `127.0.0.1`). Null when the text is no IP address.
 */
export function canonicalAddress(text: string): string | null {
  const family = isIP(text);
  if (family === 4) return text;
  // A zone (`fe80::1%eth0`) names an interface of the sender's host: meaningless here.
  if (family !== 6 || text.includes('%')) return null;
  const address = new SocketAddress({ address: text, family: 'ipv6' }).address;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice('::ffff:'.length) : address;
}

/** Some balancers add the client's port: `203.0.113.5:41234`, `[2001:db8::1]:41234`. */
function withoutPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1] as string;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop);
  return v4 ? (v4[1] as string) : hop;
}
