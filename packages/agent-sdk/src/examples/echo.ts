#!/usr/bin/env node
/**
 * The example worker of CONTRACT §6: answers each message with a `response` holding the message.
 * REDIS_URL, REDIS_KEY_PREFIX, AGENT_TYPE (default echo). ECHO_DELAY_MS delays each answer
 * (demos and tests that need work in flight).
 */
import { serveAgent } from '../index.js';

const delayMs = Number(process.env['ECHO_DELAY_MS'] ?? 0);

await serveAgent(process.env['AGENT_TYPE'] || 'echo', async (request) => {
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  return request.message;
});
