import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { OriginPolicy } from '@wsgw/core';

const CORS_METHODS = 'GET, OPTIONS';
const CORS_HEADERS = 'Authorization, Content-Type, Traceparent';

/** CORS headers for the HTTP endpoints, only for origins in API_CORS_ORIGINS. */
export function writeCors(res: HttpResponse, policy: OriginPolicy, origin: string): void {
  if (origin === '' || !policy.allows(origin)) return;
  res.writeHeader('Access-Control-Allow-Origin', origin);
  res.writeHeader('Vary', 'Origin');
}

export function sendJson(
  res: HttpResponse,
  status: string,
  body: unknown,
  cors: { policy: OriginPolicy; origin: string; head?: boolean },
  extraHeaders: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.cork(() => {
    res.writeStatus(status);
    writeCors(res, cors.policy, cors.origin);
    for (const [k, v] of Object.entries(extraHeaders)) res.writeHeader(k, v);
    res.writeHeader('Content-Type', 'application/json');
    res.writeHeader('Cache-Control', 'no-store');
    // A response to HEAD ends with its headers (RFC 9112 §6.3): a body would be read by a
    // keep-alive client as the next response. Its Content-Length is the GET's. (Written as a
    // header: this uWS build aborts the process on endWithoutBody(length).)
    if (cors.head === true) {
      res.writeHeader('Content-Length', String(Buffer.byteLength(text)));
      res.endWithoutBody();
    } else {
      res.end(text);
    }
  });
}

/** `OPTIONS` preflight: 204, with CORS headers only for an allowed origin. */
export function preflight(res: HttpResponse, req: HttpRequest, policy: OriginPolicy): void {
  const origin = req.getHeader('origin');
  res.cork(() => {
    res.writeStatus('204 No Content');
    if (origin !== '' && policy.allows(origin)) {
      writeCors(res, policy, origin);
      res.writeHeader('Access-Control-Allow-Methods', CORS_METHODS);
      res.writeHeader('Access-Control-Allow-Headers', CORS_HEADERS);
      res.writeHeader('Access-Control-Max-Age', '600');
    }
    res.end();
  });
}
