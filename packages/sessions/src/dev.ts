import { createHash } from 'node:crypto';
import type { SessionResult, SessionValidator } from '@wsgw/core';

/**
 * Development only (config refuses it in production): any non-empty token is valid and the
 * user id is a hash of it, so equal tokens are one user and limits can be tried by hand.
 */
export class DevSessionValidator implements SessionValidator {
  readonly kind = 'dev';

  async validate(token: string): Promise<SessionResult> {
    if (token === '') return { valid: false, reason: 'empty' };
    const digest = createHash('sha256').update(token).digest();
    // Joined, not concatenated: one flat 20-character string for the connection's lifetime, where
    // `dev-${hex.slice(0, 16)}` kept a concatenation node, a slice and the whole 64-character hex alive.
    const userId = ['dev-', digest.toString('hex', 0, 8)].join('');
    return { valid: true, session: { userId } };
  }
}
