import { SessionBackendUnavailableError, type SessionResult, type SessionValidator } from '@wsgw/core';
import { errorKind } from './error-kind.js';

/** The one Redis call this validator needs; the gateway passes its ioredis client's `get`. */
export type StringGetter = (key: string) => Promise<string | null>;

/**
 * Sessions written to Redis by the application that issues them: the value of
 * `{prefix}session:{token}` is JSON with at least `{"user_id": "..."}`.
 */
export class RedisSessionValidator implements SessionValidator {
  readonly kind = 'redis';

  constructor(
    private readonly get: StringGetter,
    private readonly keyPrefix: string,
  ) {}

  async validate(token: string): Promise<SessionResult> {
    let raw: string | null;
    try {
      raw = await this.get(`${this.keyPrefix}session:${token}`);
    } catch (err) {
      // CONTRACT §2: the session is the key's string value; a hash or list there is no session.
      if (err instanceof Error && err.message.startsWith('WRONGTYPE')) {
        return { valid: false, reason: 'malformed_session' };
      }
      // The reply's error code only (NOPERM, LOADING...) or the error's name: the message goes to
      // logs and spans, and an error from Redis or a proxy in front of it may quote the key.
      const code = err instanceof Error ? /^[A-Z]{2,}\b/.exec(err.message)?.[0] : undefined;
      throw new SessionBackendUnavailableError(`session store unreachable: ${code ?? errorKind(err)}`);
    }
    if (raw === null) return { valid: false, reason: 'unknown_session' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return { valid: false, reason: 'malformed_session' };
    }
    const userId = (parsed as { user_id?: unknown } | null)?.user_id;
    if (typeof userId !== 'string' || userId === '') return { valid: false, reason: 'malformed_session' };
    return { valid: true, session: { userId } };
  }
}
