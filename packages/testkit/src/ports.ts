import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports the kernel gives outgoing connections their local end from (Linux; its default elsewhere).
 * A port picked in this range can be taken by any process's connect() in the moment between the
 * check and the listen of the server it is for: that server then fails to start.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low as number, high as number];
  } catch {
    // Not Linux: the usual default.
  }
  return [32768, 60999];
}

/** Below the ephemeral range: above the well-known and registered ports most services use. */
const LOWEST = 20000;
const handedOut = new Set<number>();

/**
 * A loopback TCP port nothing listens on right now, not handed out before by this process (servers
 * start side by side), and below the ephemeral range, so no outgoing connection takes it before
 * the server it is for listens. Where that range leaves too little room below it, any free port.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralRange()[0] - 1;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = top - LOWEST >= 1000 ? LOWEST + Math.floor(Math.random() * (top - LOWEST + 1)) : await anyFreePort();
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free TCP port on 127.0.0.1 after 100 tries');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
