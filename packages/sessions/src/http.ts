import { SessionBackendUnavailableError, type SessionResult, type SessionValidator } from '@wsgw/core';

export interface IntrospectionOptions {
  url: string;
  timeoutMs: number;
}

/**
 * Token introspection: POST `{"token": "..."}`; a 200 with `{"user_id": "..."}` is valid, any
 * other answer is not. An endpoint that cannot be reached (or times out) is our outage, so it
 * refuses with 503 rather than calling the client's token invalid.
 */
export class HttpSessionValidator implements SessionValidator {
  readonly kind = 'http';

  constructor(private readonly options: IntrospectionOptions) {}

  async validate(token: string): Promise<SessionResult> {
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ token }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      throw new SessionBackendUnavailableError(`introspection unreachable: ${(err as Error).name}`);
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      throw new SessionBackendUnavailableError(`introspection answered ${res.status}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      return { valid: false, reason: `introspection_${res.status}` };
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return { valid: false, reason: 'introspection_bad_body' };
    }
    const userId = (body as { user_id?: unknown } | null)?.user_id;
    if (typeof userId !== 'string' || userId === '') return { valid: false, reason: 'introspection_no_user' };
    return { valid: true, session: { userId } };
  }
}
