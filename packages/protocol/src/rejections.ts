/**
 * The error catalogue of the WebSocket upgrade (CONTRACT §4): one entry per way an upgrade
 * can be refused, in the order of the contract's table, then the project's own
 * (`too_many_upgrades`, the failed-session throttle, checked once a token is seen and before it
 * is validated). The README table is tested against this.
 */
export const UpgradeRejections = {
  origin_not_allowed: { status: 403, message: 'Origin is not allowed to open a WebSocket here' },
  session_invalid: { status: 401, message: 'Session token is missing or invalid' },
  draining: { status: 503, message: 'This replica is shutting down; reconnect to another' },
  unavailable: { status: 503, message: 'The gateway cannot reach its shared state; retry shortly' },
  global_connection_limit: { status: 503, message: 'The gateway has reached its connection limit' },
  user_connection_limit: { status: 429, message: 'Too many open connections for this user' },
  too_many_upgrades: { status: 429, message: 'Too many connection attempts from this address' },
} as const satisfies Record<string, { status: number; message: string }>;

export type UpgradeRejectionCode = keyof typeof UpgradeRejections;

const reasonPhrases: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** `"403 Forbidden"`: the status line uWS and friends want. */
export function statusLine(status: number): string {
  return `${status} ${reasonPhrases[status] ?? 'Error'}`;
}

/** The JSON body of a refused upgrade. */
export function rejectionBody(code: UpgradeRejectionCode): string {
  return JSON.stringify({ error: code, message: UpgradeRejections[code].message });
}
