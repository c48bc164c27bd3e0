import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import { skipAutoPipeline, type RedisClient } from '../client.js';

/** The agent bus's Lua scripts, registered once per client (EVALSHA, reloaded on NOSCRIPT). */
declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** See src/lua/agent_publish.lua. */
    wsgwAgentPublish(
      requests: string,
      workers: string,
      maxQueue: number,
      ...batch: Array<string | number>
    ): Result<string[], Context>;
    /** See src/lua/agent_settle.lua. */
    wsgwAgentSettle(requests: string, group: string, holder: string, ...entryIds: string[]): Result<number, Context>;
    /** See src/lua/agent_heartbeat.lua. */
    wsgwAgentHeartbeat(
      workers: string,
      requests: string,
      workerId: string,
      leaseMs: number,
      keepMs: number,
    ): Result<number, Context>;
  }
}

// src/bus -> src/lua when run from sources, dist/bus -> dist/lua when built (copy-lua.mjs).
const lua = (name: string) => readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');

const defined = new WeakSet<object>();

export function defineAgentScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  defined.add(client);
  client.defineCommand('wsgwAgentPublish', { numberOfKeys: 2, lua: lua('agent_publish') });
  client.defineCommand('wsgwAgentHeartbeat', { numberOfKeys: 2, lua: lua('agent_heartbeat') });
  client.defineCommand('wsgwAgentSettle', { numberOfKeys: 1, lua: lua('agent_settle') });
  // Publishes batch themselves: one call per agent type per event-loop turn.
  skipAutoPipeline(client, 'wsgwAgentPublish');
}
