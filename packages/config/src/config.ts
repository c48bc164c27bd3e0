import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

export type Environment = 'development' | 'production';
export type FailureMode = 'local' | 'closed';
export type SessionValidatorKind = 'dev' | 'jwt' | 'redis' | 'http';

/** The gateway's whole configuration: validated once at start-up, then frozen. */
export interface Config {
  readonly environment: Environment;
  readonly host: string;
  readonly port: number;
  /** Origins allowed to open WebSockets; `['*']` = any (development only). */
  readonly corsOrigins: readonly string[];
  /** Origins given CORS headers on the HTTP endpoints. */
  readonly apiCorsOrigins: readonly string[];
  /** Base paths; each serves `{path}/agent`. */
  readonly websocketPaths: readonly string[];
  /**
   * Peers (IPs and CIDR ranges) whose `X-Forwarded-For` names the client: the load balancers in
   * front of the gateway. Empty = the TCP peer is the client.
   */
  readonly trustedProxies: readonly string[];
  readonly limits: {
    readonly maxConnectionsPerUser: number;
    readonly maxGlobalConnections: number;
    readonly maxMessagesPerSecond: number;
    readonly maxMessagesPerMinute: number;
    readonly maxPayloadBytes: number;
    /** Bytes queued to one slow reader before its socket is closed. */
    readonly maxBackpressureBytes: number;
    /** Failed session checks one address may make per minute before it gets 429. */
    readonly sessionFailuresPerMinute: number;
    readonly failureMode: FailureMode;
  };
  readonly idleTimeoutSeconds: number;
  readonly leaseSeconds: number;
  readonly builtinAgents: readonly string[];
  /** Requests one agent type may have queued before new ones get `unavailable`. */
  readonly agentMaxQueue: number;
  readonly shutdownDrainSeconds: number;
  readonly agentReplyTimeoutSeconds: number;
  readonly redis: { readonly url: string; readonly keyPrefix: string } | null;
  readonly session: {
    readonly validator: SessionValidatorKind;
    readonly jwtSecret: string | undefined;
    readonly jwksUrl: string | undefined;
    readonly jwtIssuer: string | undefined;
    readonly jwtAudience: string | undefined;
    readonly introspectionUrl: string | undefined;
    readonly introspectionTimeoutMs: number;
  };
  readonly logLevel: string;
  /** Names this replica in Redis (slot owner, reply routing) and in telemetry. */
  readonly replicaId: string;
}

export function defaultReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
