import type { WebSocket } from 'uWebSockets.js';
import { Connection, type AdmissionTicket, type SendStatus } from '@wsgw/core';
import { canonicalAddress } from './client-address.js';

/**
 * What a uWS socket carries from upgrade to close. uWS copies the user data's properties onto
 * its WebSocket object, so one property here is one slot on each of them: everything else lives
 * in the connection.
 */
export interface SocketData {
  connection: UwsConnection;
}

/**
 * Frames queued during one job (say, a batch of agent replies read from Redis) and written when
 * it ends, under one cork per socket: one write syscall per socket per batch, not one per frame.
 * One per server, shared by its sockets with the backpressure limit they write under.
 */
export class Outbox {
  private dirty: UwsConnection[] = [];
  private scheduled = false;

  constructor(
    /** Bytes a socket may have unread before more frames to it are dropped. */
    readonly maxBackpressure: number,
    private readonly onDropped: (connection: UwsConnection) => void,
  ) {}

  mark(connection: UwsConnection): void {
    this.dirty.push(connection);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flushAll());
    }
  }

  private flushAll(): void {
    this.scheduled = false;
    const connections = this.dirty;
    this.dirty = [];
    for (const connection of connections) {
      if (!connection.flush()) this.onDropped(connection);
    }
  }
}

/**
 * A gateway socket on uWS: core's Connection with what the transport keeps per socket. Made at
 * the upgrade from the admission ticket (the ticket is not kept), given its uWS WebSocket when the
 * socket opens, and cut from it when uWS reports the close.
 */
export class UwsConnection extends Connection {
  /** Null until open and again once closed: uWS sockets must not be touched after close. */
  private ws: WebSocket<SocketData> | null = null;
  private queued: string[] | null = null;
  /**
   * The client's address when a trusted proxy forwarded it (WEBSOCKET_TRUSTED_PROXIES); a direct
   * client's is the socket's own peer address, read from uWS when asked, not kept per socket.
   */
  private readonly forwarded: string | undefined;

  /** @param peer the TCP peer's address (the proxy's, behind one) */
  constructor(
    ticket: AdmissionTicket,
    private readonly outbox: Outbox,
    peer?: string,
  ) {
    super(ticket);
    const resolved = ticket.remoteAddress;
    // A copy: an address cut from an X-Forwarded-For header would keep the whole header alive.
    this.forwarded = resolved === undefined || resolved === direct(peer) ? undefined : Buffer.from(resolved).toString();
  }

  override get ip(): string | undefined {
    if (this.forwarded !== undefined) return this.forwarded;
    const { ws } = this;
    return ws === null ? undefined : direct(Buffer.from(ws.getRemoteAddressAsText()).toString());
  }

  /** The socket is open: from now on frames go to `ws`. */
  attach(ws: WebSocket<SocketData>): void {
    this.ws = ws;
  }

  /** uWS reported the close (either side's): nothing may touch the socket any more. */
  gone(): void {
    this.ws = null;
  }

  protected write(text: string): SendStatus {
    const { ws } = this;
    if (ws === null) return 'dropped';
    if (this.queued === null) {
      // Already over the limit with earlier frames still unread: the client is not reading.
      if (ws.getBufferedAmount() > this.outbox.maxBackpressure) return 'dropped';
      this.queued = [text];
      this.outbox.mark(this);
    } else {
      this.queued.push(text);
    }
    return 'buffered';
  }

  /** Writes the queued frames; false when uWS dropped one at the backpressure limit. */
  flush(): boolean {
    const frames = this.queued;
    const { ws } = this;
    this.queued = null;
    if (frames === null || ws === null) return true;
    let ok = true;
    ws.cork(() => {
      for (const frame of frames) {
        if (ws.send(frame, false, false) === 2) {
          ok = false;
          return;
        }
      }
    });
    return ok;
  }

  override keepAlive(): void {
    this.ws?.ping();
  }

  closeSocket(code: number, reason: string): void {
    const { ws } = this;
    if (ws === null) return;
    // Frames sent just before closing (the error that explains a 1008) go out first.
    this.flush();
    this.ws = null;
    ws.end(code, reason);
  }
}

/** A direct client's address as admission names it (ClientAddresses.resolve without a proxy). */
function direct(peer: string | undefined): string | undefined {
  return peer === undefined ? undefined : (canonicalAddress(peer) ?? peer);
}
