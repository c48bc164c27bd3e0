import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import { skipAutoPipeline, type RedisClient } from '../client.js';

/** The limits' Lua scripts (src/lua/slots_*.lua, rate_*.lua), registered once per client. */
declare module 'ioredis' {
  interface RedisCommander<Context> {
    /**
     * See src/lua/slots_acquire.lua: `numKeys` keys (all slots, one user key per entry), the lease ms
     * and both limits, then one connection id per entry; returns a code per entry (0 granted,
     * 1 global limit, 2 user limit).
     */
    wsgwSlotsAcquire(numKeys: number, ...keysThenArgs: Array<string | number>): Result<number[], Context>;
    /** See src/lua/slots_release.lua: `numKeys` keys (all slots, one user key per entry), then one connection id per entry. */
    wsgwSlotsRelease(numKeys: number, ...keysThenArgs: Array<string | number>): Result<number, Context>;
    /** See src/lua/slots_refresh.lua: `numKeys` keys, then lease ms and one connection id per user key. */
    wsgwSlotsRefresh(numKeys: number, ...keysThenArgs: Array<string | number>): Result<string[], Context>;
    /** See src/lua/slots_restore.lua: same shape as refresh; returns how many were missing. */
    wsgwSlotsRestore(numKeys: number, ...keysThenArgs: Array<string | number>): Result<number, Context>;
    /** See src/lua/rate_consume.lua: `numKeys` user keys, then the limits and a decision count per key; returns (allowed, wait ms) per key. */
    wsgwRateConsume(numKeys: number, ...keysThenArgs: Array<string | number>): Result<number[], Context>;
  }
}

// src/limits -> src/lua from sources, dist/limits -> dist/lua when built (scripts/copy-lua.mjs).
const lua = (name: string) => readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
/** The scripts that write slot sets, with the `lengthen` they share (lib_lengthen.lua) in front. */
const withLengthen = (name: string) => lua('lib_lengthen') + lua(name);

const defined = new WeakSet<object>();

export function defineLimitScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  defined.add(client);
  // Batches: the caller passes the key count first (one key per entry, all in one hash tag).
  client.defineCommand('wsgwSlotsAcquire', { lua: withLengthen('slots_acquire') });
  client.defineCommand('wsgwSlotsRelease', { lua: lua('slots_release') });
  client.defineCommand('wsgwSlotsRefresh', { lua: withLengthen('slots_refresh') });
  client.defineCommand('wsgwSlotsRestore', { lua: withLengthen('slots_restore') });
  client.defineCommand('wsgwRateConsume', { lua: lua('rate_consume') });
  // At light load the rate script's call is every message's decision: written at once, not a tick later.
  skipAutoPipeline(client, 'wsgwSlotsAcquire', 'wsgwSlotsRelease', 'wsgwRateConsume');
}
