// A do-nothing OTLP/HTTP receiver: accepts every export with 200 and counts what arrived, so the
// telemetry-on run pays the full cost of producing and shipping telemetry, and the report can
// show that telemetry really was exported.
import http from 'node:http';

export function startOtlpSink() {
  const received = {}; // path -> {requests, bytes}
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      const entry = (received[req.url ?? '/'] ??= { requests: 0, bytes: 0 });
      entry.requests++;
      entry.bytes += bytes;
      // An empty protobuf message is a valid Export*ServiceResponse; JSON clients get {}.
      const json = String(req.headers['content-type'] ?? '').includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        snapshot: () => structuredClone(received),
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
