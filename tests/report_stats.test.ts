/**
 * The comparison's statistics: mean and sample std, and the paired bootstrap over seeds and test
 * examples on constructed cases whose answer is known.
 */
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "./assert.ts";
import { majorityVote, mean, meanBy, pairedBootstrap, passAtK, quantile, std } from "../src/report/stats.ts";

const opts = { resamples: 2000, seed: 7, level: 0.95 };

/** `n` examples per seed, correct where `f(seed, i)` is true. */
const scores = (seeds: number, n: number, f: (s: number, i: number) => boolean) =>
  Array.from({ length: seeds }, (_, s) => Array.from({ length: n }, (_, i) => (f(s, i) ? 1 : 0)));

Deno.test("stats: mean, sample standard deviation and quantiles", () => {
  assertEquals(mean([1, 2, 3, 4]), 2.5);
  // Sample std of 2, 4, 4, 4, 5, 5, 7, 9: sum of squares 32 over n - 1 = 7.
  assertAlmostEquals(std([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-12);
  assertEquals(std([0.5]), 0);
  assert(Number.isNaN(mean([])));
  assertEquals(quantile([0, 10, 20, 30, 40], 0.5), 20);
  assertEquals(quantile([0, 10], 0.25), 2.5);
});

Deno.test("stats: a large paired difference is significant and its interval is where it should be", () => {
  // The method is right on 80% of the examples, the baseline on 40%: a difference of +0.4.
  const method = scores(3, 200, (s, i) => (i + s) % 5 !== 0);
  const baseline = scores(3, 200, (s, i) => (i + s) % 5 < 2);
  const d = pairedBootstrap(method, baseline, opts);
  assertAlmostEquals(d.diff, 0.4, 1e-12);
  assertEquals(d.perSeed.map((x) => Number(x.toFixed(12))), [0.4, 0.4, 0.4]);
  assert(d.significant);
  assert(d.lo > 0.3 && d.lo < 0.4 && d.hi > 0.4 && d.hi < 0.5, `[${d.lo}, ${d.hi}]`);
});

Deno.test("stats: zero difference is not significant, and the interval has the expected width", () => {
  // Half right each, on opposite examples: every per-example difference is +1 or -1, mean 0. The
  // seeds agree, so the spread comes from the examples: standard error 1 / sqrt(200) ~ 0.0707,
  // a 95% interval of about +-1.96 * 0.0707 = +-0.139.
  const method = scores(3, 200, (_, i) => i % 2 === 0);
  const baseline = scores(3, 200, (_, i) => i % 2 === 1);
  const d = pairedBootstrap(method, baseline, opts);
  assertEquals(d.diff, 0);
  assert(!d.significant);
  assert(d.lo < 0 && d.hi > 0);
  assertAlmostEquals(d.hi - d.lo, 2 * 1.96 / Math.sqrt(200), 0.03);
});

Deno.test("stats: seeds that disagree widen the interval (seeds are resampled too)", () => {
  // Per-example differences are +1 on every example for one seed and 0 for the others: the example draw
  // alone gives a point (no spread within a seed), all the spread comes from drawing seeds.
  const method = scores(3, 100, (s) => s === 0);
  const baseline = scores(3, 100, () => false);
  const d = pairedBootstrap(method, baseline, opts);
  assertAlmostEquals(d.diff, 1 / 3, 1e-12);
  // Drawing 3 seeds with replacement: the share of "seed 0" draws is 0, 1/3, 2/3 or 1.
  assertEquals(d.lo, 0);
  assert(d.hi >= 2 / 3, `hi ${d.hi}`);
  assert(!d.significant);
});

Deno.test("stats: the bootstrap is a pure function of data, replicates and seed", () => {
  const method = scores(3, 120, (s, i) => (i * 7 + s) % 3 !== 0);
  const baseline = scores(3, 120, (s, i) => (i * 5 + s) % 4 !== 0);
  const a = pairedBootstrap(method, baseline, opts);
  const b = pairedBootstrap(method, baseline, opts);
  assertEquals(a, b);
  const c = pairedBootstrap(method, baseline, { ...opts, seed: 8 });
  assertEquals(c.diff, a.diff);
  assert(c.lo !== a.lo || c.hi !== a.hi, "another generator seed draws other replicates");
});

Deno.test("stats: unpaired inputs are rejected", () => {
  assertThrows(() => pairedBootstrap([[1, 0]], [[1, 0], [0, 1]], opts), RangeError);
  assertThrows(() => pairedBootstrap([[1, 0]], [[1]], opts), RangeError);
  assertThrows(() => pairedBootstrap([], [], opts), RangeError);
});

Deno.test("pass@k: the unbiased estimator against counted subsets, and its edges", () => {
  // n = 5 samples, c = 2 correct, k = 2: of the C(5,2) = 10 pairs, C(3,2) = 3 have no correct sample.
  assertAlmostEquals(passAtK(5, 2, 2), 7 / 10, 1e-12);
  // k = 1 is the share of correct samples; k = n is 1 as soon as one sample is correct.
  assertAlmostEquals(passAtK(8, 3, 1), 3 / 8, 1e-12);
  assertEquals(passAtK(4, 1, 4), 1);
  assertEquals(passAtK(4, 0, 3), 0);
  // n = 10, c = 3, k = 5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
  assertAlmostEquals(passAtK(10, 3, 5), 1 - 21 / 252, 1e-12);
  assertThrows(() => passAtK(3, 4, 1), RangeError);
  assertThrows(() => passAtK(3, 1, 4), RangeError);
});

Deno.test("majority vote: most frequent answer, unanswered samples do not vote, ties to the first to get there", () => {
  assertEquals(majorityVote(["7", undefined, "3", "7", undefined, undefined]), "7");
  assertEquals(majorityVote([undefined, undefined]), undefined);
  assertEquals(majorityVote(["1", "2"]), "1");
  assertEquals(majorityVote(["1", "2", "2", "1"]), "2");
});

Deno.test("meanBy: one point per key, the field averaged, the first point's other fields, first-seen order", () => {
  const points = [
    { model: "a", n: 1, accuracy: 0.2 },
    { model: "b", n: 1, accuracy: 0.5 },
    { model: "a", n: 1, accuracy: 0.4 },
    { model: "a", n: 2, accuracy: 0.9 },
  ];
  assertEquals(meanBy(points, "accuracy", (p) => `${p.model}@${p.n}`), [
    { model: "a", n: 1, accuracy: (0.2 + 0.4) / 2 },
    { model: "b", n: 1, accuracy: 0.5 },
    { model: "a", n: 2, accuracy: 0.9 },
  ]);
  assertEquals(meanBy([], "accuracy", () => ""), []);
});
