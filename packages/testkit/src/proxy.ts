import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback between a gateway and its Redis, for fault tests: it can cut a link
 * right after a command went through (so the command runs but its reply is lost), swallow
 * everything (Redis unreachable with the TCP port still open), leave the links open now silent
 * for good while new ones pass (half-open TCP: the peer vanished without a reset), lead new
 * links to another Redis (a failover that moved the address), or hold Redis' replies back (a
 * slow Redis).
 */
export class TcpProxy {
  private readonly links = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>();
  private blackholed = false;
  private replyDelayMs = 0;
  private cutNext: (() => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private targetPort: number,
  ) {
    server.on('connection', (client) => this.link(client));
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return new TcpProxy(server, port, targetPort);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * Arms a cut: the next bytes a client sends reach Redis, then after `afterMs` (time for Redis
   * to run the command) the link closes before the reply gets back. Resolves once cut.
   */
  cutAfterNextRequest(afterMs = 100): Promise<void> {
    return new Promise((resolve) => {
      this.cutNext = () => {
        this.cutNext = undefined;
        setTimeout(() => {
          this.dropAll();
          resolve();
        }, afterMs);
      };
    });
  }

  /** While on, nothing passes either way and nothing is closed: a silent network. */
  blackhole(on: boolean): void {
    this.blackholed = on;
  }

  /** The links open now pass nothing more, and are never closed; new links pass as usual. */
  stallOpenLinks(): void {
    for (const link of this.links) link.stalled = true;
  }

  /** Every reply from Redis reaches its client this much later (0: at once), in order. */
  delayReplies(ms: number): void {
    this.replyDelayMs = ms;
  }

  /** New links go to this port from now on (open ones stay where they are). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  /** Closes every open link (clients see the connection drop). */
  dropAll(): void {
    for (const { client, upstream } of this.links) {
      client.destroy();
      upstream.destroy();
    }
    this.links.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private link(client: Socket): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    const entry = { client, upstream, stalled: false };
    this.links.add(entry);
    let cutting = false;
    client.on('data', (chunk: Buffer) => {
      if (this.blackholed || entry.stalled) return;
      upstream.write(chunk);
      if (this.cutNext && !cutting) {
        cutting = true;
        this.cutNext();
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.blackholed || cutting || entry.stalled) return;
      if (this.replyDelayMs > 0) setTimeout(() => client.writable && client.write(chunk), this.replyDelayMs);
      else client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.links.delete(entry);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }
}
