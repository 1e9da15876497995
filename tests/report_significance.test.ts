/**
 * The significance statement is generated from the intervals: it calls a model better (worse) exactly
 * when its interval lies above (below) 0, and lists every other model as not significant.
 */
import { modelResult } from "./report_test_helpers.ts";
import { assert, assertEquals } from "./assert.ts";
import { type Comparison, significanceSentences, verdict } from "../src/report/significance.ts";
import { analyse } from "../src/report/analyse.ts";
import { Rng } from "../src/util/rng.ts";

const cmp = (dataset: string, model: string, diff: number, lo: number, hi: number): Comparison => ({
  dataset,
  model,
  baseline: "sft",
  diff,
  lo,
  hi,
  level: 0.95,
});

Deno.test("significance: the sentence names better, worse and not significant models from the intervals", () => {
  const [arith, gsm] = significanceSentences([
    cmp("arith", "sftkey-stage-two", 0.05, 0.02, 0.08),
    cmp("arith", "dft", -0.1, -0.15, -0.04),
    cmp("arith", "mix", 0.01, -0.02, 0.04),
    cmp("gsm8k", "sftkey-stage-two", 0.0, -0.03, 0.03),
  ]);
  assertEquals(
    arith,
    "On arith, sftkey-stage-two is significantly better than sft (+5.0 points, 95% interval [+2.0, +8.0]) " +
      "and dft is significantly worse than sft (\u221210.0 points, 95% interval [\u221215.0, \u22124.0]); " +
      "the difference of mix is not significant (the interval includes 0).",
  );
  assertEquals(
    gsm,
    "On gsm8k, no method differs significantly from sft in accuracy: every 95% interval of the difference " +
      "includes 0.",
  );
});

/** Per-sentence facts: which models the sentence calls better, worse, not significant. */
const claims = (sentence: string) => ({
  better: [...sentence.matchAll(/(\S+) is significantly better/g)].map((m) => m[1]).sort(),
  worse: [...sentence.matchAll(/(\S+) is significantly worse/g)].map((m) => m[1]).sort(),
  none: /no method differs significantly/.test(sentence),
});

Deno.test("significance: on random intervals the sentence always agrees with the numbers", () => {
  const rng = Rng.seeded(3);
  for (let trial = 0; trial < 200; trial++) {
    const cs = Array.from({ length: 1 + rng.int(5) }, (_, i) => {
      const diff = (rng.next() - 0.5) * 0.4;
      const half = rng.next() * 0.15;
      return cmp("d", `m${i}`, diff, diff - half, diff + half);
    });
    const [sentence] = significanceSentences(cs);
    const c = claims(sentence);
    assertEquals(c.better, cs.filter((x) => x.lo > 0).map((x) => x.model).sort(), sentence);
    assertEquals(c.worse, cs.filter((x) => x.hi < 0).map((x) => x.model).sort(), sentence);
    assertEquals(c.none, cs.every((x) => x.lo <= 0 && x.hi >= 0), sentence);
    for (const x of cs.filter((x) => verdict(x) === "not significant")) {
      assert(c.none || sentence.includes(x.model), `${x.model} missing from: ${sentence}`);
    }
  }
});

const model = (name: string, seed: number, correct: number[]) => modelResult(name, seed, correct);

Deno.test("significance: analyse pairs each seed with the baseline's same seed and states the result", () => {
  const n = 100;
  const base = (s: number) => Array.from({ length: n }, (_, i) => ((i + s) % 2 === 0 ? 1 : 0));
  const good = (_s: number) => Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 0 : 1));
  const models = [0, 1, 2].flatMap((s) => [model("sft", s, base(s)), model("good", s, good(s))]);
  const a = analyse({ models, runs: [], masks: [] }, "sft", { resamples: 500, seed: 1, level: 0.95 });
  assertEquals(a.comparisons.map((c) => c.model), ["good"]);
  const [c] = a.comparisons;
  assertEquals(c.seeds, [0, 1, 2]);
  // 90% vs 50% on every seed.
  assertEquals(c.perSeed.map((x) => Math.round(100 * x)), [40, 40, 40]);
  assert(c.significant && c.lo > 0);
  assertEquals(a.sentences.length, 1);
  assert(
    a.sentences[0].startsWith("On arith, good is significantly better than sft (+40.0 points"),
    a.sentences[0],
  );
  const row = a.rows.find((r) => r.model === "good")!;
  assertEquals(row.accuracy.mean, 0.9);
  assertEquals(row.accuracy.std, 0);
  assertEquals(a.rows.find((r) => r.model === "sft")!.accuracy.mean, 0.5);
});

Deno.test("significance: a model without a same-seed baseline is noted, not compared", () => {
  const models = [model("sft", 0, [1, 0]), model("x", 1, [1, 1])];
  const a = analyse({ models, runs: [], masks: [] }, "sft", { resamples: 100, seed: 1, level: 0.95 });
  assertEquals(a.comparisons, []);
  assertEquals(a.notes, ["arith: no sft run with seed 1 to pair x with"]);
});
