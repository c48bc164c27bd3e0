import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback between a gateway and its Redis, for fault tests: it can cut a link
 * right after a command went through (so the command runs but its reply is lost), or swallow
 * everything (Redis unreachable with the TCP port still open).
 */
export class TcpProxy {
  private readonly links = new Set<{ client: Socket; upstream: Socket }>();
  private blackholed = false;
  private cutNext: (() => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
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
    const entry = { client, upstream };
    this.links.add(entry);
    let cutting = false;
    client.on('data', (chunk: Buffer) => {
      if (this.blackholed) return;
      upstream.write(chunk);
      if (this.cutNext && !cutting) {
        cutting = true;
        this.cutNext();
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.blackholed || cutting) return;
      client.write(chunk);
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
