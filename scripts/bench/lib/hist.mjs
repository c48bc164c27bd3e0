// Latency histogram with ~1% relative precision, cheap to record and to merge across processes.
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = 2000; // 1.01^2000 us is far beyond any latency we can see (about 4e8 s)

export class Histogram {
  constructor(counts) {
    this.counts = counts ?? new Uint32Array(BUCKETS);
  }

  /** @param {number} us a latency in microseconds */
  record(us) {
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / LOG_GROWTH));
    this.counts[i]++;
  }

  reset() {
    this.counts.fill(0);
  }

  get total() {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  /** The upper bound (us) of the bucket holding quantile q, or null when empty. */
  quantile(q) {
    const total = this.total;
    if (total === 0) return null;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return GROWTH ** i;
    }
    return GROWTH ** (this.counts.length - 1);
  }

  /** Sparse form for IPC: [[bucket, count], ...]. */
  toJSON() {
    const out = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i] > 0) out.push([i, this.counts[i]]);
    return out;
  }

  static merge(sparseList) {
    const h = new Histogram();
    for (const sparse of sparseList) for (const [i, c] of sparse) h.counts[i] += c;
    return h;
  }
}
