import { createRequire } from 'node:module';
import type * as UwsTypes from 'uWebSockets.js';

export type Uws = typeof UwsTypes;

/**
 * Loads uWebSockets.js and insists on the native binary. The package silently falls back to a
 * pure-JS implementation when its binary does not load (wrong glibc, wrong Node ABI); that would
 * serve at a fraction of the speed with different edge behaviour, so we refuse to start instead.
 */
export function loadUws(): Uws {
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as Uws;
  const native = Object.keys(require.cache).some((path) => /uws_[a-z0-9]+_[a-z0-9]+_\d+\.node$/.test(path));
  if (!native) {
    throw new Error(
      `uWebSockets.js native binary did not load for ${process.platform}-${process.arch} ` +
        `(Node ABI ${process.versions.modules}); refusing the slow JS fallback`,
    );
  }
  return uws;
}
