/**
 * The statistics of a comparison: mean and spread over seeds, and a paired bootstrap interval for the
 * difference between a method and the baseline.
 *
 * What the bootstrap resamples. The data are, for each seed s and test example i, the correctness of the
 * method m[s][i] and of the baseline b[s][i] (0 or 1; any number works). Seeds and test examples are two
 * crossed sources of chance: another seed gives another model, other test examples another estimate.
 * Each replicate therefore draws
 *   - S seeds with replacement from the S seeds, and, independently,
 *   - N test examples with replacement from the N examples (the same draw for every seed, because the
 *     test set is shared across seeds, and for both methods, which keeps the pairing),
 * and computes the mean of d[s][i] = m[s][i] - b[s][i] over the drawn seeds x drawn examples. The interval
 * is the 2.5th to 97.5th percentile of those replicate means (percentile bootstrap). Drawing from a seeded
 * generator makes the interval a pure function of the data, the number of replicates and the seed.
 */
import { Rng } from "../util/rng.ts";

export const mean = (xs: ReadonlyArray<number>): number =>
  xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Points with the same `key` merged into one: the first such point's fields, with `field` the mean of
 * theirs (charts that draw one line per group of runs, e.g. the mean over seeds). First-seen order.
 */
export const meanBy = <P, F extends keyof P>(
  points: ReadonlyArray<P>,
  field: F,
  key: (p: P) => string,
): P[] => {
  const groups = new Map<string, { first: P; sum: number; count: number }>();
  for (const p of points) {
    const k = key(p);
    const g = groups.get(k) ?? { first: p, sum: 0, count: 0 };
    g.sum += p[field] as number;
    g.count += 1;
    groups.set(k, g);
  }
  return [...groups.values()].map((g) => ({ ...g.first, [field]: g.sum / g.count }));
};

/** Sample standard deviation (n - 1 in the denominator); 0 for a single value, NaN for none. */
export const std = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return NaN;
  if (xs.length === 1) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

/** Linear-interpolation quantile (the "R-7" definition) of sorted values. */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
};

export interface BootstrapOptions {
  /** Number of replicates. */
  readonly resamples: number;
  readonly seed: number;
  /** Coverage of the interval, e.g. 0.95. */
  readonly level: number;
}

export const DEFAULT_BOOTSTRAP: BootstrapOptions = { resamples: 2000, seed: 0, level: 0.95 };

export interface PairedDifference {
  /** Observed mean difference method - baseline over all seeds and examples. */
  readonly diff: number;
  /** Observed difference per seed, in the order given. */
  readonly perSeed: ReadonlyArray<number>;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
  readonly resamples: number;
  /** The interval excludes 0. */
  readonly significant: boolean;
}

/**
 * Paired bootstrap interval for mean(method - baseline), resampling seeds and test examples (see the top
 * of the file). `method[s]` and `baseline[s]` are the per-example scores of the same seed on the same
 * test examples in the same order.
 */
export const pairedBootstrap = (
  method: ReadonlyArray<ReadonlyArray<number>>,
  baseline: ReadonlyArray<ReadonlyArray<number>>,
  options: BootstrapOptions = DEFAULT_BOOTSTRAP,
): PairedDifference => {
  const seeds = method.length;
  if (seeds === 0 || baseline.length !== seeds) {
    throw new RangeError(`need the same number (> 0) of seeds, got ${seeds} and ${baseline.length}`);
  }
  const n = method[0].length;
  if (n === 0) throw new RangeError("need at least one test example");
  const d: Float64Array[] = method.map((row, s) => {
    if (row.length !== n || baseline[s].length !== n) {
      throw new RangeError(`seed ${s}: every seed needs the same ${n} test examples for both methods`);
    }
    return Float64Array.from(row, (x, i) => x - baseline[s][i]);
  });
  const perSeed = d.map((row) => mean(Array.from(row)));
  const rng = Rng.seeded(options.seed);
  const replicates = new Float64Array(options.resamples);
  const examples = new Int32Array(n);
  for (let r = 0; r < options.resamples; r++) {
    for (let i = 0; i < n; i++) examples[i] = rng.int(n);
    let sum = 0;
    for (let k = 0; k < seeds; k++) {
      const row = d[rng.int(seeds)];
      for (let i = 0; i < n; i++) sum += row[examples[i]];
    }
    replicates[r] = sum / (seeds * n);
  }
  const sorted = Array.from(replicates).sort((a, b) => a - b);
  const tail = (1 - options.level) / 2;
  const lo = quantile(sorted, tail);
  const hi = quantile(sorted, 1 - tail);
  return {
    diff: mean(perSeed),
    perSeed,
    lo,
    hi,
    level: options.level,
    resamples: options.resamples,
    significant: lo > 0 || hi < 0,
  };
};

/**
 * Unbiased pass@k from `n` samples of which `c` are correct (Chen et al. 2021, "Evaluating Large Language
 * Models Trained on Code", eq. 1): 1 - C(n-c, k) / C(n, k), computed as a product so that no binomial
 * coefficient is formed. Throws a RangeError unless 0 <= c <= n and 1 <= k <= n.
 */
export const passAtK = (n: number, c: number, k: number): number => {
  if (
    !(Number.isInteger(n) && Number.isInteger(c) && Number.isInteger(k) && c >= 0 && c <= n && k >= 1 &&
      k <= n)
  ) {
    throw new RangeError(`pass@k needs 0 <= c <= n and 1 <= k <= n, got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  let allWrong = 1;
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i;
  return 1 - allWrong;
};

/**
 * The most frequent of `answers` (undefined entries, samples without an answer, do not vote); a tie goes
 * to the answer that reached that count first. Undefined when no sample has an answer.
 */
export const majorityVote = (answers: ReadonlyArray<string | undefined>): string | undefined => {
  const counts = new Map<string, number>();
  let best: string | undefined;
  for (const a of answers) {
    if (a === undefined) continue;
    const n = (counts.get(a) ?? 0) + 1;
    counts.set(a, n);
    if (best === undefined || n > counts.get(best)!) best = a;
  }
  return best;
};
