/**
 * Which browser origins may open a socket. Checked on the upgrade itself, because CORS does not
 * apply to WebSockets: a page on any site can open one unless the server looks at `Origin`.
 */
export class OriginPolicy {
  private constructor(
    private readonly allowAll: boolean,
    /** Each listed origin (normalized), to itself: see `shared`. */
    private readonly allowed: ReadonlyMap<string, string>,
  ) {}

  /** `['*']` allows every origin (development only; config refuses it in production). */
  static fromList(origins: readonly string[]): OriginPolicy {
    const allowAll = origins.includes('*');
    const listed = origins.filter((o) => o !== '*').map(normalizeOrigin);
    return new OriginPolicy(allowAll, new Map(listed.map((o) => [o, o])));
  }

  get allowsAll(): boolean {
    return this.allowAll;
  }

  /** A missing Origin is allowed: only browsers send one, and they always do. */
  allowsUpgradeFrom(origin: string | undefined): boolean {
    if (origin === undefined || origin === '') return true;
    return this.allows(origin);
  }

  /** For CORS on the HTTP endpoints: only a listed origin (or any, with `*`) gets headers. */
  allows(origin: string): boolean {
    // A listed origin is already normalized: the browser's exact spelling of it needs no new strings.
    return this.allowAll || this.allowed.has(origin) || this.allowed.has(normalizeOrigin(origin));
  }

  /**
   * The policy's own copy of `origin` when it is exactly a listed origin, else `origin` itself:
   * a connection keeps its Origin for its whole life, and one shared string beats one per socket.
   */
  shared(origin: string | undefined): string | undefined {
    return origin === undefined ? undefined : (this.allowed.get(origin) ?? origin);
  }
}

/** `HTTPS://Example.com/` and `https://example.com` are the same origin. */
export function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}
