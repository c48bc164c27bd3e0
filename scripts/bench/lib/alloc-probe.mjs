// Preloaded into a benchmarked server (`node --import <this file> main.js`) by run.mjs --alloc-prof:
// SIGUSR2 starts V8's sampling heap profiler (garbage included), the next SIGUSR2 stops it and
// writes the profile to $WSGW_BENCH_ALLOC_PROFILE. In-process, so nothing else about the server changes.
import inspector from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { samplingParams } from './alloc.mjs';

const file = process.env.WSGW_BENCH_ALLOC_PROFILE;
if (file) {
  const session = new inspector.Session();
  session.connect();
  let sampling = false;
  process.on('SIGUSR2', () => {
    if (!sampling) {
      sampling = true;
      session.post('HeapProfiler.startSampling', samplingParams({ intervalBytes: 1024 }));
      return;
    }
    sampling = false;
    session.post('HeapProfiler.stopSampling', (err, result) => {
      writeFileSync(file, err ? JSON.stringify({ error: String(err) }) : JSON.stringify(result.profile));
    });
  });
}
