import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { statusLine } from '@wsgw/protocol';
import type { ConnectionHub, Lifecycle, Logger, OriginPolicy, UpgradeAdmission } from '@wsgw/core';
import { ClientAddresses } from './client-address.js';
import { preflight, sendJson } from './http.js';
import { Outbox, UwsConnection, type SocketData } from './socket.js';
import { loadUws, type Uws } from './load.js';

/**
 * Text frames to strings: what `Buffer.from(ab).toString('utf8')` gives (a byte order mark is
 * kept), in half the time and without a Buffer per frame. A text frame that is not UTF-8 never
 * gets here: uWS drops its connection itself, without a close frame (the client sees 1006).
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
  /** Peers (IPs, CIDR ranges) whose `X-Forwarded-For` names the client; empty = none. */
  trustedProxies: readonly string[];
}

/** The address and port could not be bound (not an address of this host, a name that does not resolve, in use). */
export class ListenError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}`);
    this.name = 'ListenError';
  }
}

/**
 * uWS' listen(host, port, options, cb), which the native module has but its type declarations lack
 * (as they lack the LIBUS_LISTEN_EXCLUSIVE_PORT constant it exports). Exclusive because uWS binds
 * with SO_REUSEPORT otherwise: a second gateway on a port in use would start "fine" and take half
 * of the first one's connections.
 */
type ListenWithOptions = (
  host: string,
  port: number,
  options: number,
  cb: (socket: us_listen_socket | false) => void,
) => TemplatedApp;

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
  private readonly clients: ClientAddresses;

  constructor(
    private readonly options: UwsServerOptions,
    private readonly deps: UwsServerDeps,
  ) {
    this.outbox = new Outbox(options.maxBackpressureBytes, (connection) => deps.hub.slowReader(connection));
    this.clients = new ClientAddresses(options.trustedProxies);
    this.uws = loadUws();
    this.app = this.uws.App();
    this.routes();
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const { host, port } = this.options;
      const listen = this.app.listen.bind(this.app) as unknown as ListenWithOptions;
      const { LIBUS_LISTEN_EXCLUSIVE_PORT } = this.uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number };
      listen(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
        if (!socket) {
          reject(new ListenError(host, port));
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

    // HEAD answers what GET would, without the body (RFC 9110 §9.3.2): probes and proxies use it.
    for (const method of ['get', 'head'] as const) {
      const head = method === 'head';
      app[method]('/healthz', (res, req) => {
        sendJson(res, '200 OK', { status: 'ok' }, { policy: cors, origin: req.getHeader('origin'), head });
      });
      app[method]('/readyz', (res, req) => {
        const ready = deps.lifecycle.isReady();
        sendJson(
          res,
          ready ? '200 OK' : '503 Service Unavailable',
          { status: ready ? 'ready' : 'not_ready', phase: deps.lifecycle.current },
          { policy: cors, origin: req.getHeader('origin'), head },
        );
      });
    }
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
        head: req.getMethod() === 'head',
      });
    });
  }

  private upgrade(
    res: HttpResponse,
    req: HttpRequest,
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
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
    const remoteAddress = this.clients.resolve(peer, () => forwardedFor(req));
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
            res.upgrade<SocketData>({ connection: new UwsConnection(ticket, this.outbox, peer) }, key, protocol, extensions, context);
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

/**
 * Every `X-Forwarded-For` line, in order, as one list. HAProxy's `option forwardfor` adds its own
 * line after any the client sent; `getHeader` would return only the first, the client's own.
 */
function forwardedFor(req: HttpRequest): string {
  let joined = '';
  req.forEach((name, value) => {
    if (name === 'x-forwarded-for') joined = joined === '' ? value : `${joined},${value}`;
  });
  return joined;
}

function bearerToken(header: string): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
