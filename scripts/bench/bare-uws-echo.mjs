// The baseline: a bare uWebSockets.js echo server, same library build as the gateway's transport.
// Usage: node scripts/bench/bare-uws-echo.mjs [port]  -> prints {"port": N} once listening.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const transportPkg = fileURLToPath(new URL('../../packages/transport-uws/package.json', import.meta.url));
const uws = createRequire(transportPkg)('uWebSockets.js');

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
let listenSocket = null;

uws
  .App()
  .ws('/*', {
    compression: uws.DISABLED,
    maxPayloadLength: 64 * 1024,
    idleTimeout: 120,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .get('/healthz', (res) => {
    res.end('ok');
  })
  .listen('127.0.0.1', port, (socket) => {
    if (!socket) {
      process.stderr.write(`cannot listen on 127.0.0.1:${port}\n`);
      process.exit(1);
    }
    listenSocket = socket;
    process.stdout.write(`${JSON.stringify({ port: uws.us_socket_local_port(socket) })}\n`);
  });

const stop = () => {
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
