import type { Attributes } from '@opentelemetry/api';

/** What an attribute value becomes once its kind has seen too many distinct values. */
export const OTHER = 'other';
/** An optional value the client did not give (e.g. no `pillar`, no `Origin`). */
export const NONE = 'none';

/**
 * Attribute sets for client-chosen values (agent_type, pillar), built once and reused: the hot path
 * does two Map lookups and allocates nothing. The number of distinct sets is capped, so a client
 * inventing agent types cannot blow up the metric series: past the cap, new values become `other`.
 */
export class BoundedAttributes2 {
  private readonly sets = new Map<string, Map<string, Attributes>>();
  private size = 0;
  private readonly overflow: Attributes;

  constructor(
    private readonly keyA: string,
    private readonly keyB: string,
    private readonly maxSets: number,
    private readonly maxValueLength = 64,
  ) {
    this.overflow = Object.freeze({ [keyA]: OTHER, [keyB]: OTHER });
  }

  get(a: string, b: string | undefined): Attributes {
    const bValue = b ?? NONE;
    const inner = this.sets.get(a);
    const found = inner?.get(bValue);
    if (found) return found;
    if (this.size >= this.maxSets || a.length > this.maxValueLength || bValue.length > this.maxValueLength) {
      return this.overflow;
    }
    const attrs = Object.freeze({ [this.keyA]: a, [this.keyB]: bValue });
    if (inner) inner.set(bValue, attrs);
    else this.sets.set(a, new Map([[bValue, attrs]]));
    this.size++;
    return attrs;
  }
}

/** The same for one client-chosen value. */
export class BoundedAttributes {
  private readonly sets = new Map<string, Attributes>();
  private readonly overflow: Attributes;

  constructor(
    private readonly key: string,
    private readonly maxSets: number,
    private readonly maxValueLength = 64,
  ) {
    this.overflow = Object.freeze({ [key]: OTHER });
  }

  get(value: string): Attributes {
    const found = this.sets.get(value);
    if (found) return found;
    if (this.sets.size >= this.maxSets || value.length > this.maxValueLength) return this.overflow;
    const attrs = Object.freeze({ [this.key]: value });
    this.sets.set(value, attrs);
    return attrs;
  }
}

/**
 * Attribute sets keyed by a value from a closed, server-side set (path, reason, close code):
 * cached without a cap on purpose only because the values are not client-chosen.
 */
export class AttributeCache {
  private readonly sets = new Map<string, Attributes>();

  constructor(private readonly build: (key: string) => Attributes) {}

  get(key: string): Attributes {
    let attrs = this.sets.get(key);
    if (!attrs) {
      attrs = Object.freeze(this.build(key));
      this.sets.set(key, attrs);
    }
    return attrs;
  }
}

/** Connection lifetimes as a handful of classes: the `duration` attribute of closes. */
export function durationClass(ms: number): string {
  if (ms < 1_000) return 'lt_1s';
  if (ms < 10_000) return 'lt_10s';
  if (ms < 60_000) return 'lt_1m';
  if (ms < 600_000) return 'lt_10m';
  if (ms < 3_600_000) return 'lt_1h';
  return 'ge_1h';
}

/** Close codes the protocol defines keep their number; application codes (3000-4999) collapse. */
export function closeCodeClass(code: number): string {
  return code >= 1000 && code <= 1015 ? String(code) : OTHER;
}
