import { Cluster, type Redis } from 'ioredis';
import type { Logger } from '@wsgw/core';
import { connectionProblem, type RedisClient } from '../client.js';

export type HealthState = 'up' | 'down';

export interface RedisHealthOptions {
  /** How often a PING checks whether Redis answers again while it is down. */
  probeIntervalMs?: number;
  /** How often a PING checks Redis while it is up, so an idle replica notices an outage too (/readyz). */
  watchIntervalMs?: number;
}

/**
 * Whether the limits' Redis answers, as one shared verdict for every store of a replica. A failed
 * command or a dropped link turns it `down` at once, so later decisions skip Redis (and its
 * timeout) until a probe PING answers; recovery hooks (re-registering held slots) run before it
 * turns `up` again, so shared limits only apply once Redis knows every open socket; up hooks run
 * as it turns `up` (registering what came and went while the recovery hooks ran). On a Cluster, a
 * master whose link ends may be back, empty, before any check sees it gone: resync hooks run
 * when Redis still answers after that (re-registering held slots).
 */
export class RedisHealth {
  private current: HealthState = 'up';
  private probe: NodeJS.Timeout | undefined;
  private probing = false;
  private confirming: Promise<boolean> | undefined;
  private closed = false;
  private readonly recoverHooks: Array<() => Promise<void>> = [];
  private readonly upHooks: Array<() => void> = [];
  private readonly downHooks: Array<() => void> = [];
  private readonly troubleHooks: Array<() => void> = [];
  private readonly resyncHooks: Array<() => void> = [];
  private readonly probeIntervalMs: number;
  private readonly watch: NodeJS.Timeout;

  constructor(
    private readonly client: RedisClient,
    private readonly log: Logger,
    options: RedisHealthOptions = {},
  ) {
    this.probeIntervalMs = options.probeIntervalMs ?? 500;
    client.on('close', () => this.failed(new Error('connection to Redis closed')));
    // ioredis reports errors here too; without a listener Node would treat them as unhandled.
    client.on('error', (err: Error) => this.log.debug({ err: { message: err.message } }, 'redis client error'));
    client.on('ready', () => this.probeSoon(0));
    // An ioredis Cluster fires `close` only once every node is gone; one node's link ending is
    // `-node` (ioredis drops the node from its pool and reconnects when it learns of it again).
    if (client instanceof Cluster) client.on('-node', (node: Redis) => this.nodeLinkEnded(node));
    this.watch = setInterval(() => {
      if (this.current === 'up') this.answers().catch((err: unknown) => this.failed(err));
    }, options.watchIntervalMs ?? 1000);
    this.watch.unref();
  }

  get state(): HealthState {
    return this.current;
  }

  isDown(): boolean {
    return this.current === 'down';
  }

  /** Runs once each time Redis answers after being down, before the state turns `up`. */
  onRecover(hook: () => Promise<void>): void {
    this.recoverHooks.push(hook);
  }

  /**
   * Runs right after the state turns `up` (after the recover hooks), synchronously with the change:
   * from then on nothing decides without Redis. Must not throw.
   */
  onUp(hook: () => void): void {
    this.upHooks.push(hook);
  }

  onDown(hook: () => void): void {
    this.downHooks.push(hook);
  }

  /** Runs on every failed call, even one not (yet) taken as an outage. */
  onTrouble(hook: () => void): void {
    this.troubleHooks.push(hook);
  }

  /**
   * Runs when Redis answers but may have lost what it held since the last look: a Cluster master's
   * link ended (crash, restart) and every hash slot answers again, maybe from a master restarted
   * empty between two health checks (CONTRACT §2: held slots registered again within 5 s). Must
   * not throw.
   */
  onResync(hook: () => void): void {
    this.resyncHooks.push(hook);
  }

  /** The first connection attempt failed or succeeded: start in the matching state. */
  startDown(): void {
    if (this.current === 'up') this.markDown(new Error('first connection to Redis failed'));
    // A certificate or password refused is a configuration error to fix, not an outage to wait
    // out: say which, at the same level (the `down` line says only "connection to Redis closed",
    // and a Cluster client does not know: ioredis drops the cause with the connection).
    void connectionProblem(this.client).then((problem) => {
      if (problem !== undefined && !this.closed && this.current === 'down') {
        this.log.warn({ err: { message: problem } }, 'redis: why the first connection failed');
      }
    });
    this.probeSoon(this.probeIntervalMs);
  }

  /**
   * A command failed. A dropped or refused link means Redis is away. A timeout may also mean this
   * process was too busy to read the answer in time (a starved event loop fires timers before it
   * reads sockets), so it is confirmed first: Redis counts as away only if a PING times out too.
   * Meanwhile a timed-out decision is asked again (see the failover and rate limiter).
   */
  failed(err: unknown): void {
    if (this.closed) return;
    for (const hook of this.troubleHooks) hook();
    if (this.current === 'up') {
      if (isTimeout(err)) {
        void this.verify();
        return;
      }
      this.markDown(err);
    }
    this.probeSoon(this.probeIntervalMs);
  }

  /**
   * Whether Redis answers: `false` at once if it is known down; otherwise one PING (bounded by
   * the command timeout), shared by every caller asking meanwhile. A failed PING turns the state
   * `down`.
   */
  verify(): Promise<boolean> {
    if (this.current === 'down' || this.closed) return Promise.resolve(false);
    this.confirming ??= (async () => {
      try {
        await this.answers();
        return true;
      } catch (err) {
        if (this.current === 'up' && !this.closed) {
          this.markDown(err);
          this.probeSoon(this.probeIntervalMs);
        }
        return false;
      }
    })().finally(() => {
      this.confirming = undefined;
    });
    return this.confirming;
  }

  /**
   * A Cluster master's link ended. Whatever it held may be gone (trouble hooks: restore, not renew).
   * Checked at once: if its hash slots do not answer, Redis is `down` and the recovery restores;
   * if they do (it is back already, or it handed its slots over), the resync hooks restore now.
   * A replica's link ending changes nothing this replica relies on.
   */
  private nodeLinkEnded(node: Redis): void {
    if (this.closed || node.options.readOnly) return;
    this.log.info({ node: `${node.options.host}:${node.options.port}` }, 'link to a redis cluster master ended; checking redis');
    for (const hook of this.troubleHooks) hook();
    // Not at once: a graceful failover ends the old master's link before this client has connected
    // to the new one, and a check then would call a failover that lost nothing an outage.
    setTimeout(() => {
      if (this.closed || this.current !== 'up') return;
      void this.verify().then((answers) => {
        if (answers && !this.closed && this.current === 'up') for (const hook of this.resyncHooks) hook();
      });
    }, SLOT_MAP_REFRESH_MS).unref();
  }

  private markDown(err: unknown): void {
    this.current = 'down';
    this.log.warn({ err: { message: (err as Error)?.message } }, 'redis unreachable: limits fall back per WEBSOCKET_LIMITS_FAILURE_MODE');
    for (const hook of this.downHooks) hook();
  }

  private probeSoon(delayMs: number): void {
    if (this.closed || this.current === 'up' || this.probing) return;
    if (this.probe) {
      if (delayMs > 0) return;
      clearTimeout(this.probe);
    }
    this.probe = setTimeout(() => {
      this.probe = undefined;
      void this.runProbe();
    }, delayMs);
    this.probe.unref();
  }

  private async runProbe(): Promise<void> {
    this.probing = true;
    try {
      await this.answers();
      for (const hook of this.recoverHooks) await hook();
      if (this.closed) return;
      this.current = 'up';
      this.log.info({}, 'redis answers again: shared limits apply');
      for (const hook of this.upHooks) hook();
    } catch (err) {
      // Still down; try again later.
      this.log.debug({ err: { message: (err as Error)?.message } }, 'redis probe: not yet');
    } finally {
      this.probing = false;
    }
    if (this.current === 'down') this.probeSoon(this.probeIntervalMs);
  }

  /**
   * Resolves when Redis answers: one PING; on a Cluster, every hash slot has a master this client
   * is connected to, and each of those masters answers a PING. A PING to any one node is not
   * enough there: with a master gone, the others still answer while the slots it served do not,
   * and the verdict would flap between `up` (probe) and `down` (the next call to a lost slot) for
   * as long as the master is away.
   */
  private async answers(): Promise<void> {
    const { client } = this;
    if (!(client instanceof Cluster)) {
      await client.ping();
      return;
    }
    let owners = await slotOwners(client);
    if (typeof owners === 'string') {
      // A master this client does not know (yet): a replica promoted by a failover, or a master
      // back after an outage, which ioredis only learns from a MOVED reply or its 5 s refresh.
      // Refresh the slot map now and look again: a failover that lost nothing is no outage.
      await refreshSlotMap(client, SLOT_MAP_REFRESH_MS);
      owners = await slotOwners(client);
      if (typeof owners === 'string') throw new Error(owners);
    }
    await Promise.all([...owners].map((node) => node.ping()));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.watch);
    if (this.probe) clearTimeout(this.probe);
    this.probe = undefined;
  }
}

const CLUSTER_SLOTS = 16_384;
/** At most this long for a slot-map refresh (ioredis tries one node after another). */
const SLOT_MAP_REFRESH_MS = 1000;

/**
 * The masters serving every hash slot, as `CLUSTER SLOTS` names them, if this client is connected
 * to each; otherwise which one it is not connected to. Throws if some hash slot has no master.
 */
async function slotOwners(client: Cluster): Promise<Set<Redis> | string> {
  const ranges = (await client.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
  const connected = new Map(client.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  const owners = new Set<Redis>();
  let covered = 0;
  for (const [from, to, [host, port]] of ranges) {
    const owner = connected.get(`${host}:${port}`);
    if (!owner) return `Redis Cluster master ${host}:${port} is not connected`;
    owners.add(owner);
    covered += to - from + 1;
  }
  if (covered < CLUSTER_SLOTS) throw new Error(`Redis Cluster covers ${covered} of ${CLUSTER_SLOTS} hash slots`);
  return owners;
}

/** Asks ioredis to reload its slot map; resolves when it has (or failed), or after `timeoutMs`. */
function refreshSlotMap(client: Cluster, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    client.refreshSlotsCache(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export function isTimeout(err: unknown): boolean {
  // ioredis' commandTimeout rejects with exactly this message.
  return err instanceof Error && err.message === 'Command timed out';
}
