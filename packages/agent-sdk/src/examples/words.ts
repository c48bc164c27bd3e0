#!/usr/bin/env node
/**
 * A streaming example: answers with one `chunk` per word of the message, the last with
 * `done: true`. REDIS_URL, REDIS_KEY_PREFIX, AGENT_TYPE (default words).
 */
import { serveAgent } from '../index.js';

await serveAgent(process.env['AGENT_TYPE'] || 'words', async function* (request) {
  for (const word of request.message.split(/\s+/).filter((w) => w !== '')) yield word;
});
