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
    const userId = `dev-${createHash('sha256').update(token).digest('hex').slice(0, 16)}`;
    return { valid: true, session: { userId } };
  }
}
