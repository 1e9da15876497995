import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { initParams, type Params } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { loadOptimizerState, saveOptimizerState } from "../src/train/optimizer_state.ts";
import { Rng } from "../src/util/rng.ts";
import { type Microbatch, optimizerStep } from "../src/train/step.ts";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const config = tinyConfig();
const snapshot = (p: Params) => new Map([...p].map(([k, v]) => [k, [...v.dataSync()]]));
const dispose = (p: Params) => p.forEach((v) => v.dispose());

/** A batch of `rows` random sequences of length `len` with mixed weights (some 0). */
const batchOf = (rng: Rng, rows: number, len: number) => {
  const ids = Int32Array.from({ length: rows * len }, () => rng.int(config.vocabSize));
  const weights = Float32Array.from({ length: rows * len }, (_, i) => (i % len < 3 ? 0 : 0.5 + (i % 3)));
  return { ids, weights, batch: rows, seqLen: len };
};

Deno.test("two microbatches give the same step as one batch holding both", () => {
  const rng = Rng.seeded(1);
  const a = batchOf(rng, 2, 10), b = batchOf(rng, 3, 10);
  const both = {
    ids: Int32Array.from([...a.ids, ...b.ids]),
    weights: Float32Array.from([...a.weights, ...b.weights]),
    batch: 5,
    seqLen: 10,
  };
  const p1 = initParams(config, Rng.seeded(2)), p2 = initParams(config, Rng.seeded(2));
  const before = tf.memory().numTensors;
  const r1 = optimizerStep(p1, config, new AdamW(p1), [a, b], { lr: 1e-3, clipNorm: 0 });
  const r2 = optimizerStep(p2, config, new AdamW(p2), [both], { lr: 1e-3, clipNorm: 0 });
  assertEquals(tf.memory().numTensors, before, "optimizerStep leaked tensors");
  assertAlmostEquals(r1.loss, r2.loss, 1e-6);
  assertAlmostEquals(r1.gradNorm, r2.gradNorm, 1e-6);
  assertEquals(r1.tokens, r2.tokens);
  const s1 = snapshot(p1), s2 = snapshot(p2);
  for (const [k, xs] of s1) xs.forEach((x, i) => assertAlmostEquals(x, s2.get(k)![i], 1e-6, k));
  [p1, p2].forEach(dispose);
});

Deno.test("row arrays and flat arrays are the same microbatch", () => {
  const rng = Rng.seeded(3);
  const flat = batchOf(rng, 2, 6);
  const rows: Microbatch = {
    ids: [[...flat.ids.slice(0, 6)], [...flat.ids.slice(6)]],
    weights: [[...flat.weights.slice(0, 6)], [...flat.weights.slice(6)]],
  };
  const p1 = initParams(config, Rng.seeded(4)), p2 = initParams(config, Rng.seeded(4));
  const r1 = optimizerStep(p1, config, new AdamW(p1), [flat], { lr: 1e-3, clipNorm: 1 });
  const r2 = optimizerStep(p2, config, new AdamW(p2), [rows], { lr: 1e-3, clipNorm: 1 });
  assertEquals(r1, r2);
  assertEquals(snapshot(p1), snapshot(p2));
  [p1, p2].forEach(dispose);
});

Deno.test("a tiny model overfits one sequence (loss drops more than 5x in 50 steps)", () => {
  const params = initParams(config, Rng.seeded(5));
  const opt = new AdamW(params);
  const seq = Rng.seeded(6);
  const mb = {
    ids: Int32Array.from({ length: 16 }, () => seq.int(config.vocabSize)),
    weights: new Float32Array(16).fill(1),
    batch: 1,
    seqLen: 16,
  };
  const losses = Array.from(
    { length: 50 },
    () => optimizerStep(params, config, opt, [mb], { lr: 1e-2, clipNorm: 1 }).loss,
  );
  assert(losses[49] < losses[0] / 5, `loss ${losses[0]} -> ${losses[49]}`);
  dispose(params);
});

Deno.test("resume is exact: 1 step, save, reload, 2 more steps is bit-identical to 3 steps in one go", async () => {
  const data = (() => {
    const rng = Rng.seeded(7);
    return [0, 1, 2].map(() => batchOf(rng, 2, 8));
  })();
  const run = (steps: number[], params: Params, opt: AdamW) =>
    steps.forEach((s) => optimizerStep(params, config, opt, [data[s]], { lr: 3e-3, clipNorm: 0.5 }));

  // The uninterrupted run is the reference (a second identical run would only compare the code with itself).
  const a = initParams(config, Rng.seeded(8));
  const optA = new AdamW(a, { weightDecay: 0.1 });
  run([0, 1, 2], a, optA);

  // stop after one step, save everything, reload, do the other two
  const c = initParams(config, Rng.seeded(8)), optC = new AdamW(c, { weightDecay: 0.1 });
  run([0], c, optC);
  const dir = await Deno.makeTempDir();
  await Effect.runPromise(saveCheckpoint(dir, config, c));
  await Effect.runPromise(saveOptimizerState(`${dir}/optimizer.safetensors`, optC.exportState()));
  const { params: d } = await Effect.runPromise(loadCheckpoint(dir));
  const optD = new AdamW(d, { weightDecay: 0.1 });
  optD.importState(await Effect.runPromise(loadOptimizerState(`${dir}/optimizer.safetensors`, d)));
  run([1, 2], d, optD);
  assertEquals(snapshot(d), snapshot(a));
  assertEquals(optD.stepCount, 3);
  [a, c, d].forEach(dispose);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("non-finite loss or zero weight: nothing is applied", () => {
  const params = initParams(config, Rng.seeded(9));
  const opt = new AdamW(params);
  const mb = batchOf(Rng.seeded(10), 1, 6);
  const none = optimizerStep(params, config, opt, [{ ...mb, weights: new Float32Array(6) }], {
    lr: 1,
    clipNorm: 1,
  });
  assertEquals(none, { loss: 0, gradNorm: 0, tokens: 0, applied: false });
  const norm = params.get("model.norm.weight")!;
  tf.tidy(() => norm.assign(tf.fill(norm.shape, NaN)));
  const before = snapshot(params);
  const r = optimizerStep(params, config, opt, [mb], { lr: 1, clipNorm: 1 });
  assert(!r.applied && Number.isNaN(r.loss));
  assertEquals(opt.stepCount, 0);
  assertEquals(JSON.stringify([...snapshot(params)]), JSON.stringify([...before]));
  dispose(params);
});
