import type { HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { statusLine } from '@wsgw/protocol';
import type { ConnectionHub, Lifecycle, Logger, OriginPolicy, UpgradeAdmission } from '@wsgw/core';
import { preflight, sendJson } from './http.js';
import { Outbox, UwsConnection, type SocketData } from './socket.js';
import { loadUws, type Uws } from './load.js';

/**
 * Text frames to strings: what `Buffer.from(ab).toString('utf8')` gives (invalid bytes become
 * U+FFFD, a byte order mark is kept), in half the time and without a Buffer per frame.
 */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

export interface UwsServerOptions {
  host: string;
  port: number;
  websocketPaths: readonly string[];
  apiCors: OriginPolicy;
  maxPayloadBytes: number;
  maxBackpressureBytes: number;
  idleTimeoutSeconds: number;
}

export interface UwsServerDeps {
  admission: UpgradeAdmission;
  hub: ConnectionHub;
  lifecycle: Lifecycle;
  log: Logger;
}

/**
 * The gateway's HTTP and WebSocket server on uWebSockets.js. Maps uWS callbacks onto core and
 * keeps every uWS type inside this package.
 */
export class UwsServer {
  private readonly uws: Uws;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  /** Replies go out once per socket per batch; a socket that stops reading is cut off. */
  private readonly outbox: Outbox;

  constructor(
    private readonly options: UwsServerOptions,
    private readonly deps: UwsServerDeps,
  ) {
    this.outbox = new Outbox(options.maxBackpressureBytes, (connection) => deps.hub.slowReader(connection));
    this.uws = loadUws();
    this.app = this.uws.App();
    this.routes();
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, this.options.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.options.host}:${this.options.port}`));
          return;
        }
        this.listenSocket = socket;
        resolve(this.uws.us_socket_local_port(socket));
      });
    });
  }

  /** Stops accepting new TCP connections. Open sockets are closed by core's shutdown. */
  stopListening(): void {
    if (this.listenSocket) {
      this.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  private routes(): void {
    const { app, deps, options } = this;
    const cors = options.apiCors;

    app.get('/healthz', (res, req) => {
      sendJson(res, '200 OK', { status: 'ok' }, { policy: cors, origin: req.getHeader('origin') });
    });
    app.get('/readyz', (res, req) => {
      const ready = deps.lifecycle.isReady();
      sendJson(
        res,
        ready ? '200 OK' : '503 Service Unavailable',
        { status: ready ? 'ready' : 'not_ready', phase: deps.lifecycle.current },
        { policy: cors, origin: req.getHeader('origin') },
      );
    });
    app.options('/*', (res, req) => preflight(res, req, cors));

    for (const base of options.websocketPaths) {
      const route = `${base}/agent`;
      app.ws<SocketData>(route, {
        // uWS drops a frame above its own limit with no close frame (1006). Letting it read a
        // little more lets us answer the contract's 1009; beyond this cap a client could make
        // us buffer arbitrary memory, so those are still cut at once.
        maxPayloadLength: uwsPayloadCap(options.maxPayloadBytes),
        maxBackpressure: options.maxBackpressureBytes,
        closeOnBackpressureLimit: 0,
        // uWS checks idle timers every 4 s, so a socket closes between (timeout - 4) and timeout
        // seconds of silence; adding 4 makes "silent for at least N seconds" hold.
        idleTimeout: options.idleTimeoutSeconds === 0 ? 0 : options.idleTimeoutSeconds + 4,
        sendPingsAutomatically: false,
        compression: this.uws.DISABLED,
        upgrade: (res, req, context) => this.upgrade(res, req, context, route),
        open: (ws) => {
          const { connection } = ws.getUserData();
          connection.attach(ws);
          deps.hub.open(connection);
        },
        message: (ws, message, isBinary) => {
          const { connection } = ws.getUserData();
          if (message.byteLength > options.maxPayloadBytes) {
            deps.hub.tooBig(connection);
            return;
          }
          // The ArrayBuffer dies with this callback: decode it before anything awaits.
          const text = isBinary ? null : utf8.decode(message);
          deps.hub.message(connection, text);
        },
        close: (ws, code) => {
          const { connection } = ws.getUserData();
          connection.gone();
          deps.hub.closed(connection, code);
        },
      });
    }

    app.any('/*', (res, req) => {
      sendJson(res, '404 Not Found', { error: 'not_found', message: 'No such endpoint' }, {
        policy: cors,
        origin: req.getHeader('origin'),
      });
    });
  }

  private upgrade(
    res: HttpResponse,
    req: import('uWebSockets.js').HttpRequest,
    context: import('uWebSockets.js').us_socket_context_t,
    route: string,
  ): void {
    const { deps } = this;
    // Everything needed from req, copied now: req is invalid once this callback returns.
    // The route's own string when they are equal: the connection keeps its path for its whole life.
    const url = req.getUrl();
    const path = url === route ? route : url;
    const origin = req.getHeader('origin') || undefined;
    const token = req.getQuery('session_token') || bearerToken(req.getHeader('authorization'));
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
    const traceparent = req.getHeader('traceparent') || undefined;
    const tracestate = req.getHeader('tracestate') || undefined;

    const abort = { aborted: false };
    res.onAborted(() => {
      abort.aborted = true;
    });

    deps.admission
      .admit({ path, origin, token, remoteAddress, traceparent, tracestate }, abort)
      .then((admission) => {
        if (admission.admitted) {
          const { ticket } = admission;
          if (abort.aborted) {
            void deps.admission.abandon(ticket);
            return;
          }
          res.cork(() => {
            res.upgrade<SocketData>({ connection: new UwsConnection(ticket, this.outbox) }, key, protocol, extensions, context);
          });
          return;
        }
        const { rejection } = admission;
        if (rejection === null || abort.aborted) return;
        const headers: Record<string, string> = {};
        if (rejection.retryAfterSeconds !== undefined) headers['Retry-After'] = String(rejection.retryAfterSeconds);
        res.cork(() => {
          res.writeStatus(statusLine(rejection.status));
          for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
          res.writeHeader('Content-Type', 'application/json');
          res.writeHeader('Connection', 'close');
          res.end(rejection.body, true);
        });
      })
      .catch((err: unknown) => {
        deps.log.error({ err, path }, 'upgrade failed');
        if (abort.aborted) return;
        res.cork(() => {
          res.writeStatus('500 Internal Server Error').end('{"error":"internal","message":"upgrade failed"}', true);
        });
      });
  }
}

function uwsPayloadCap(limit: number): number {
  return Math.min(Math.max(limit * 2, limit + 64 * 1024), 256 * 1024 * 1024);
}

function bearerToken(header: string): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
