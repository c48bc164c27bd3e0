import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { SessionBackendUnavailableError, type SessionResult, type SessionValidator } from '@wsgw/core';

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
      this.key = createRemoteJWKSet(new URL(options.jwksUrl), {
        timeoutDuration: 3000,
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      });
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
      if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSENotSupported) {
        throw new SessionBackendUnavailableError(`JWKS unavailable: ${(err as Error).message}`);
      }
      if (err instanceof joseErrors.JOSEError) return { valid: false, reason: err.code };
      if (err instanceof TypeError || (err instanceof Error && /fetch|network|ECONN/i.test(err.message))) {
        // The JWKS endpoint could not be reached: our failure, not the client's.
        throw new SessionBackendUnavailableError(`JWKS unavailable: ${err.message}`);
      }
      return { valid: false, reason: 'malformed' };
    }
  }
}
