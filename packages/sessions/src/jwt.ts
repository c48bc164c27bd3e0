import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { SessionBackendUnavailableError, type SessionResult, type SessionValidator } from '@wsgw/core';
import { errorKind } from './error-kind.js';
import { splitCredentials } from './url-credentials.js';

export interface JwtOptions {
  /** HS256 shared secret. */
  secret?: string | undefined;
  /** JWKS endpoint for RS256 / ES256 keys; fetched once, cached, refreshed on unknown `kid`. */
  jwksUrl?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  /** Seconds of clock skew tolerated on exp / nbf. */
  clockToleranceSeconds?: number;
}

/** JWT sessions: signature, `exp`, `nbf`, and `iss` / `aud` when configured; user id = `sub`. */
export class JwtSessionValidator implements SessionValidator {
  readonly kind = 'jwt';
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly verifyOptions: JWTVerifyOptions;

  constructor(options: JwtOptions) {
    if (options.jwksUrl) {
      // Credentials in the URL are sent as HTTP Basic authentication.
      const { url, authorization } = splitCredentials(options.jwksUrl);
      this.key = keysOrUnavailable(
        createRemoteJWKSet(url, {
          timeoutDuration: 3000,
          cooldownDuration: 30_000,
          cacheMaxAge: 10 * 60_000,
          ...(authorization ? { headers: { authorization } } : {}),
        }),
      );
      this.verifyOptions = { algorithms: ['RS256', 'ES256'] };
    } else if (options.secret) {
      this.key = new TextEncoder().encode(options.secret);
      this.verifyOptions = { algorithms: ['HS256'] };
    } else {
      throw new Error('JwtSessionValidator needs a secret or a JWKS URL');
    }
    if (options.issuer) this.verifyOptions.issuer = options.issuer;
    if (options.audience) this.verifyOptions.audience = options.audience;
    this.verifyOptions.clockTolerance = options.clockToleranceSeconds ?? 5;
  }

  async validate(token: string): Promise<SessionResult> {
    try {
      const { payload } =
        typeof this.key === 'function'
          ? await jwtVerify(token, this.key, this.verifyOptions)
          : await jwtVerify(token, this.key, this.verifyOptions);
      if (typeof payload.sub !== 'string' || payload.sub === '') return { valid: false, reason: 'no_subject' };
      return { valid: true, session: { userId: payload.sub } };
    } catch (err) {
      // Whether the keys could be had is settled by keysOrUnavailable; every JOSE error left is the
      // token's own (JOSENotSupported included: an unknown `crit` is anyone's to write).
      if (err instanceof SessionBackendUnavailableError) throw err;
      if (err instanceof joseErrors.JOSEError) return { valid: false, reason: err.code };
      if (err instanceof TypeError || (err instanceof Error && /fetch|network|ECONN/i.test(err.message))) {
        // jose says TypeError when a key we gave it does not fit (an RSA key under 2048 bits): ours.
        throw new SessionBackendUnavailableError(`JWKS unavailable: ${errorKind(err)}`);
      }
      return { valid: false, reason: 'malformed' };
    }
  }
}

/**
 * The remote key set, with its failures sorted by whose they are. A token naming no key in the set
 * (or several) is the client's; anything else from here is ours: the set could not be fetched
 * (network, timeout, a non-200 or redirect, a body that is no key set) or holds a key that cannot
 * be used. The token's `alg` is already one of RS256 / ES256 and its `crit` checked before keys are
 * asked for, so nothing else in the token reaches this getter.
 */
function keysOrUnavailable(remote: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
      // jose's own messages are fixed texts; anything else (fetch's) may quote the URL.
      const why = err instanceof joseErrors.JOSEError ? err.message : errorKind(err);
      throw new SessionBackendUnavailableError(`JWKS unavailable: ${why}`, { cause: err });
    }
  };
}
