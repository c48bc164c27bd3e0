import { createHash } from 'node:crypto';

/**
 * A short, stable hash of a session token for logs and spans: enough to correlate events of
 * one token, never enough to replay it. The token itself must never leave the process.
 */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}
