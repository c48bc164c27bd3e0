import type { Config } from '@wsgw/config';
import type { SessionValidator } from '@wsgw/core';
import {
  DevSessionValidator,
  HttpSessionValidator,
  JwtSessionValidator,
  RedisSessionValidator,
  type StringGetter,
} from '@wsgw/sessions';

/** Picks the validator SESSION_VALIDATOR names. `redisGet` is given in Redis mode only. */
export function createSessionValidator(config: Config, redisGet: StringGetter | undefined): SessionValidator {
  const s = config.session;
  switch (s.validator) {
    case 'dev':
      return new DevSessionValidator();
    case 'jwt':
      return new JwtSessionValidator({
        secret: s.jwtSecret,
        jwksUrl: s.jwksUrl,
        issuer: s.jwtIssuer,
        audience: s.jwtAudience,
      });
    case 'http':
      return new HttpSessionValidator({ url: s.introspectionUrl as string, timeoutMs: s.introspectionTimeoutMs });
    case 'redis':
      if (!redisGet || !config.redis) throw new Error('SESSION_VALIDATOR=redis needs REDIS_URL');
      return new RedisSessionValidator(redisGet, config.redis.keyPrefix);
    default: {
      const never: never = s.validator;
      throw new Error(`unknown session validator ${String(never)}`);
    }
  }
}
