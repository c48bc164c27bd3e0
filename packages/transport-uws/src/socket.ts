import type { WebSocket } from 'uWebSockets.js';
import type { AdmissionTicket, ClientSocket, Connection, SendStatus } from '@wsgw/core';

/** What a uWS socket carries from upgrade to close. */
export interface SocketData {
  ticket: AdmissionTicket;
  connection?: Connection;
  socket?: UwsClientSocket;
  /** uWS sockets must not be touched after close: this guards every call. */
  closed: boolean;
}

/**
 * Frames queued during one job (say, a batch of agent replies read from Redis) and written when
 * it ends, under one cork per socket: one write syscall per socket per batch, not one per frame.
 */
export class Outbox {
  private dirty: UwsClientSocket[] = [];
  private scheduled = false;

  constructor(private readonly onDropped: (socket: UwsClientSocket) => void) {}

  mark(socket: UwsClientSocket): void {
    this.dirty.push(socket);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flushAll());
    }
  }

  private flushAll(): void {
    this.scheduled = false;
    const sockets = this.dirty;
    this.dirty = [];
    for (const socket of sockets) {
      if (!socket.flush()) this.onDropped(socket);
    }
  }
}

/** core's ClientSocket on a uWS WebSocket. */
export class UwsClientSocket implements ClientSocket {
  private queued: string[] | null = null;

  constructor(
    private readonly ws: WebSocket<SocketData>,
    readonly data: SocketData,
    private readonly outbox: Outbox,
    private readonly maxBackpressure: number,
  ) {}

  send(text: string): SendStatus {
    if (this.data.closed) return 'dropped';
    if (this.queued === null) {
      // Already over the limit with earlier frames still unread: the client is not reading.
      if (this.ws.getBufferedAmount() > this.maxBackpressure) return 'dropped';
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
    this.queued = null;
    if (frames === null || this.data.closed) return true;
    let ok = true;
    this.ws.cork(() => {
      for (const frame of frames) {
        if (this.ws.send(frame, false, false) === 2) {
          ok = false;
          return;
        }
      }
    });
    return ok;
  }

  close(code: number, reason: string): void {
    if (this.data.closed) return;
    // Frames sent just before closing (the error that explains a 1008) go out first.
    this.flush();
    this.data.closed = true;
    this.ws.end(code, reason);
  }
}
