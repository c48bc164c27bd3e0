import type { Connection } from './connection.js';

/** What one more rate-limited frame means for its socket. */
export interface Denial {
  /** The socket's first denial in the last 60 s: worth a security log line. */
  first: boolean;
  /** Past WEBSOCKET_MAX_MESSAGES_PER_MINUTE denials in the last 60 s: close it with 1008. */
  exceeded: boolean;
}

/**
 * CONTRACT §5: a socket that keeps sending past its rate limit is closed with 1008 once it has
 * had more than WEBSOCKET_MAX_MESSAGES_PER_MINUTE denials in the last 60 s. The times of each
 * socket's denials are kept only for sockets that had one (most never do, and an idle socket
 * should cost nothing here), and go with the socket.
 */
export class FloodWatch {
  private readonly denials = new WeakMap<Connection, number[]>();

  constructor(private readonly maxDenialsPerMinute: number) {}

  /** Records a rate-limited frame of this socket at `now` (ms, core's clock). */
  denied(connection: Connection, now: number): Denial {
    let times = this.denials.get(connection);
    if (times === undefined) {
      times = [];
      this.denials.set(connection, times);
    }
    const horizon = now - 60_000;
    while (times.length > 0 && (times[0] as number) <= horizon) times.shift();
    times.push(now);
    return { first: times.length === 1, exceeded: times.length > this.maxDenialsPerMinute };
  }
}
