import { describe, expect, it } from 'vitest';
import { ClientAddresses, canonicalAddress } from '@wsgw/transport-uws';
import { Outbox, UwsConnection } from '@wsgw/transport-uws/socket';

const header = (value: string) => () => value;
const never = () => {
  throw new Error('X-Forwarded-For read for a peer that is not a trusted proxy');
};

describe('ClientAddresses: which address an upgrade is counted and logged under', () => {
  it('trusts no header by default: the TCP peer is the client', () => {
    const clients = new ClientAddresses([]);
    expect(clients.resolve('10.0.0.5', never)).toBe('10.0.0.5');
  });

  it('ignores the header of a peer that is not a trusted proxy (and does not read it)', () => {
    const clients = new ClientAddresses(['10.0.0.0/8']);
    expect(clients.resolve('203.0.113.9', never)).toBe('203.0.113.9');
  });

  it('a trusted proxy names its client in the right-most entry', () => {
    const clients = new ClientAddresses(['10.0.0.5']);
    expect(clients.resolve('10.0.0.5', header('198.51.100.7'))).toBe('198.51.100.7');
  });

  it('a trusted peer without the header is the client itself', () => {
    const clients = new ClientAddresses(['10.0.0.5']);
    expect(clients.resolve('10.0.0.5', header(''))).toBe('10.0.0.5');
    expect(clients.resolve('10.0.0.5', header('  '))).toBe('10.0.0.5');
  });

  it('walks back over every trusted hop (CIDR ranges, several proxies)', () => {
    const clients = new ClientAddresses(['10.0.0.0/8', '192.168.1.0/24']);
    expect(clients.resolve('10.0.0.5', header('198.51.100.7, 192.168.1.20, 10.1.2.3'))).toBe('198.51.100.7');
  });

  it('never reads entries left of the first untrusted one: a client cannot spoof its way out', () => {
    const clients = new ClientAddresses(['10.0.0.5']);
    // The client sent "X-Forwarded-For: 1.2.3.4, 10.0.0.5"; the proxy appended the real address.
    expect(clients.resolve('10.0.0.5', header('1.2.3.4, 10.0.0.5, 203.0.113.66'))).toBe('203.0.113.66');
    expect(clients.resolve('10.0.0.5', header('garbage, 203.0.113.66'))).toBe('203.0.113.66');
  });

  it('a trusted hop the client forged on the left is walked over to the proxy-written entry only', () => {
    const clients = new ClientAddresses(['10.0.0.0/8']);
    // 10.9.9.9 is in the trusted range but left of an untrusted hop: never reached.
    expect(clients.resolve('10.0.0.5', header('10.9.9.9, 203.0.113.66'))).toBe('203.0.113.66');
  });

  it('when every hop is a trusted proxy, the furthest one is the source', () => {
    const clients = new ClientAddresses(['10.0.0.0/8']);
    expect(clients.resolve('10.0.0.5', header('10.2.0.1, 10.3.0.1'))).toBe('10.2.0.1');
  });

  it('falls back to the peer when the entry it would use is malformed', () => {
    const clients = new ClientAddresses(['10.0.0.5']);
    for (const bad of ['unknown', 'example.com', '999.1.1.1', '198.51.100.7,', '198.51.100.7, , 10.0.0.5', 'fe80::1%eth0', '01.2.3.4']) {
      expect(clients.resolve('10.0.0.5', header(bad)), bad).toBe('10.0.0.5');
    }
  });

  it('accepts entries with a port, as some balancers write them', () => {
    const clients = new ClientAddresses(['10.0.0.5']);
    expect(clients.resolve('10.0.0.5', header('198.51.100.7:41234'))).toBe('198.51.100.7');
    expect(clients.resolve('10.0.0.5', header('[2001:db8::7]:41234'))).toBe('2001:db8::7');
    expect(clients.resolve('10.0.0.5', header('[2001:db8::7]'))).toBe('2001:db8::7');
  });

  it('IPv6 proxies, ranges and clients, in any spelling', () => {
    const clients = new ClientAddresses(['fd00::/8', '2001:db8::1']);
    expect(clients.resolve('fd00::1', header('2001:DB8:0:0:0:0:0:7'))).toBe('2001:db8::7');
    expect(clients.resolve('2001:db8:0000::0001', header('198.51.100.7'))).toBe('198.51.100.7');
    expect(clients.resolve('fd12::9', header('2001:db8::7, fd00::2, 2001:db8::1'))).toBe('2001:db8::7');
    expect(clients.resolve('2001:db8::2', never)).toBe('2001:db8::2');
  });

  it('IPv4-mapped IPv6 peers (what uWS reports for IPv4 clients of a dual-stack socket) match IPv4 entries', () => {
    const clients = new ClientAddresses(['127.0.0.1']);
    expect(clients.resolve('::ffff:127.0.0.1', header('198.51.100.7'))).toBe('198.51.100.7');
    expect(clients.resolve('0000:0000:0000:0000:0000:ffff:7f00:0001', header('198.51.100.7'))).toBe('198.51.100.7');
    expect(clients.resolve('::ffff:127.0.0.1', header('::ffff:198.51.100.7'))).toBe('198.51.100.7');
    // A mapped client that is not a proxy is named the IPv4 way, as the throttle and logs should key it.
    expect(clients.resolve('0000:0000:0000:0000:0000:ffff:c633:6407', never)).toBe('198.51.100.7');
  });

  it('IPv4-mapped ranges match IPv4 peers', () => {
    const clients = new ClientAddresses(['::ffff:10.0.0.0/104']);
    expect(clients.resolve('10.2.3.4', header('198.51.100.7'))).toBe('198.51.100.7');
  });
});

describe('canonicalAddress', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['0000:0000:0000:0000:0000:ffff:7f00:0001', '127.0.0.1'],
    ['::FFFF:127.0.0.1', '127.0.0.1'],
    ['2001:DB8::0:7', '2001:db8::7'],
  ])('%s -> %s', (text, expected) => {
    expect(canonicalAddress(text)).toBe(expected);
  });

  it.each(['', 'localhost', '1.2.3', '256.0.0.1', 'fe80::1%eth0', '::ffff:999.0.0.1'])('%j is no address', (text) => {
    expect(canonicalAddress(text)).toBeNull();
  });
});

describe('UwsConnection.ip: the address security log lines of an open socket name', () => {
  const ticket = (remoteAddress: string) => ({ connectionId: 'c1', userId: 'u1', path: '/api/ws/agent', origin: undefined, tokenHash: 'abc', remoteAddress });
  const outbox = new Outbox(1024, () => {});

  it('is the client a trusted proxy forwarded, kept from the upgrade', () => {
    expect(new UwsConnection(ticket('198.51.100.7'), outbox, '127.0.0.1').ip).toBe('198.51.100.7');
  });

  it('is not kept for a direct client (read from the socket when asked; none once it is gone)', () => {
    // No socket attached: nothing to read, and nothing stored per socket.
    expect(new UwsConnection(ticket('203.0.113.9'), outbox, '203.0.113.9').ip).toBeUndefined();
    expect(new UwsConnection(ticket('127.0.0.1'), outbox, '::ffff:127.0.0.1').ip).toBeUndefined();
  });
});
