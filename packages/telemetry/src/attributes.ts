import type { Attributes } from '@opentelemetry/api';

/** What an attribute value becomes once its kind has seen too many distinct values. */
export const OTHER = 'other';
/** An optional value the client did not give (e.g. no `pillar`, no `Origin`). */
export const NONE = 'none';

/**
 * Attribute sets for a pair of client-influenced values (agent_type, pillar), built once and
 * reused: the hot path does two Map lookups and allocates nothing. Both are capped, separately: at
 * most `maxA` values of the first (past it, and for over-long values, both become `other`), and at
 * most `maxBPerA` values of the second under each first one (past it, the second becomes `other`
 * and the first keeps its own value). So a client inventing pillars on a real agent type costs at
 * most `maxBPerA` series, and never turns that agent type's traffic into `other`.
 */
export class BoundedAttributes2 {
  private readonly sets = new Map<string, { byB: Map<string, Attributes>; overflow: Attributes }>();
  private readonly overflow: Attributes;

  constructor(
    private readonly keyA: string,
    private readonly keyB: string,
    private readonly maxA: number,
    private readonly maxBPerA = 20,
    private readonly maxValueLength = 64,
  ) {
    this.overflow = Object.freeze({ [keyA]: OTHER, [keyB]: OTHER });
  }

  /** `a` null: a value that must not get a series of its own (both `other`). */
  get(a: string | null, b: string | undefined): Attributes {
    if (a === null) return this.overflow;
    const bValue = b ?? NONE;
    let inner = this.sets.get(a);
    const found = inner?.byB.get(bValue);
    if (found) return found;
    if (inner === undefined) {
      if (this.sets.size >= this.maxA || a.length > this.maxValueLength) return this.overflow;
      inner = { byB: new Map(), overflow: Object.freeze({ [this.keyA]: a, [this.keyB]: OTHER }) };
      this.sets.set(a, inner);
    }
    if (inner.byB.size >= this.maxBPerA || bValue.length > this.maxValueLength) return inner.overflow;
    const attrs = Object.freeze({ [this.keyA]: a, [this.keyB]: bValue });
    inner.byB.set(bValue, attrs);
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
