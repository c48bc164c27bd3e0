import { SessionBackendUnavailableError, type SessionResult, type SessionValidator } from '@wsgw/core';
import { splitCredentials } from './url-credentials.js';

export interface IntrospectionOptions {
  url: string;
  timeoutMs: number;
}

/** An introspection answer is a small JSON object; a body past this is refused unread. */
const MAX_BODY_BYTES = 64 * 1024;
/** User ids become parts of Redis keys and log fields. */
const MAX_USER_ID_LENGTH = 256;

/**
 * Token introspection: POST `{"token": "..."}`; a 200 with `{"user_id": "..."}` is valid, a
 * refusal (a 4xx) is not. What says nothing about the token is our outage, refused with 503 rather
 * than calling the client's token invalid (and counting it against the client's address): the
 * endpoint unreachable or timing out (also while its body arrives), a 5xx, an overloaded 408 /
 * 429, and a redirect, which is never followed (it would send the token to another URL).
 */
export class HttpSessionValidator implements SessionValidator {
  readonly kind = 'http';
  private readonly url: URL;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: IntrospectionOptions) {
    // Credentials in the URL are the endpoint's HTTP Basic client authentication.
    const { url, authorization } = splitCredentials(options.url);
    this.url = url;
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (authorization) this.headers['authorization'] = authorization;
  }

  async validate(token: string): Promise<SessionResult> {
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify({ token }),
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      throw new SessionBackendUnavailableError(`introspection unreachable: ${(err as Error).name}`);
    }
    const { status } = res;
    if (status >= 300 && status < 400) return this.outage(res, `introspection redirected (${status}); redirects are not followed`);
    if (status >= 500 || status === 408 || status === 429) return this.outage(res, `introspection answered ${status}`);
    if (status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      return { valid: false, reason: `introspection_${status}` };
    }
    const text = await readBounded(res);
    if (text === undefined) return { valid: false, reason: 'introspection_bad_body' };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { valid: false, reason: 'introspection_bad_body' };
    }
    const userId = (body as { user_id?: unknown } | null)?.user_id;
    if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH) {
      return { valid: false, reason: 'introspection_no_user' };
    }
    return { valid: true, session: { userId } };
  }

  private async outage(res: Response, why: string): Promise<never> {
    await res.body?.cancel().catch(() => undefined);
    throw new SessionBackendUnavailableError(why);
  }
}

/**
 * The body as text, read up to MAX_BODY_BYTES (undefined past it: refused, the rest not read).
 * A body that stops coming (the timeout) or is cut is our outage, like an endpoint that does not
 * answer at all.
 */
async function readBounded(res: Response): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  const reader = res.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        await reader.cancel().catch(() => undefined);
        return undefined;
      }
      chunks.push(value);
    }
  } catch (err) {
    throw new SessionBackendUnavailableError(`introspection body not received: ${(err as Error).name}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}
