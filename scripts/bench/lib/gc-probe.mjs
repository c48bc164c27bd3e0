// Preloaded into every server the bench measures idle (`node --import <this file> ...`), bare uWS
// and gateways alike: an HTTP listener on 127.0.0.1:$WSGW_BENCH_GC_PORT whose every request runs
// the collection V8 runs on a process that went idle, and answers once it is done with
// process.memoryUsage() as JSON, RSS included, read before anything else runs. The warm idle
// readings are these answers, so what they hold is what the sockets keep alive: not the garbage of
// their upgrades that V8's memory reducer may or may not have collected yet, nor what a timer of
// the server's allocated after the collection (docs/BENCHMARKS.md, "What runs").
//
// The collection is the inspector's HeapProfiler.collectGarbage: V8's low-memory notification,
// full collections that compact the heap and hand emptied pages back, as the memory reducer's do
// (a plain gc() compacts only the most fragmented pages, so live sockets stay spread across pages
// their upgrades' garbage filled).
import http from 'node:http';
import inspector from 'node:inspector/promises';
import { rssBytes } from './rss.mjs';

const port = Number(process.env.WSGW_BENCH_GC_PORT);
if (port > 0) {
  const session = new inspector.Session();
  session.connect();
  const server = http.createServer((req, res) => {
    session.post('HeapProfiler.collectGarbage').then(
      () => {
        // RSS as the bench reads it from outside (VmRSS): process.memoryUsage().rss, from
        // /proc/self/stat, moved in 128 KiB steps on this kernel where VmRSS moved by 4 KiB.
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ ...process.memoryUsage(), rss: rssBytes(process.pid) }));
      },
      (err) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  });
  server.listen(port, '127.0.0.1');
  // Not a reason to keep the process running: servers exit as they would without the probe.
  server.unref();
}
