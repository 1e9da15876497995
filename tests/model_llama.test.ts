import * as tf from "@tensorflow/tfjs";
import { countParams, forward, initParams, logitsAt, paramShapes } from "../src/model/model.ts";
import { shiftedLoss, weightedCrossEntropy, weightedPositions } from "../src/train/loss.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertAlmostEquals, assertEquals, assertNotEquals } from "./assert.ts";
import { registerReferenceBackend, tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const config = tinyConfig();
const ids2d = (rows: number[][]) => tf.tensor2d(rows, undefined, "int32");
const logitsOf = (params: ReturnType<typeof initParams>, rows: number[][]) =>
  tf.tidy(() => forward(params, config, ids2d(rows)).arraySync() as number[][][]);

Deno.test("parameter names and HF layouts, GQA shapes, deterministic init", () => {
  const shapes = paramShapes(config);
  assertEquals(shapes.get("model.embed_tokens.weight"), [32, 16]);
  assertEquals(shapes.get("model.layers.1.self_attn.q_proj.weight"), [16, 16]);
  assertEquals(shapes.get("model.layers.1.self_attn.k_proj.weight"), [8, 16]); // 2 kv heads x 4
  assertEquals(shapes.get("model.layers.0.mlp.down_proj.weight"), [16, 24]);
  assertEquals(shapes.get("lm_head.weight"), [32, 16]);
  assert(!paramShapes(tinyConfig({ tieEmbeddings: true })).has("lm_head.weight"));
  assertEquals(countParams(config), [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b), 0));

  const a = initParams(config, Rng.seeded(1)), b = initParams(config, Rng.seeded(1));
  for (const [name, v] of a) assertEquals([...v.dataSync()], [...b.get(name)!.dataSync()]);
  assert([...a.get("model.norm.weight")!.dataSync()].every((x) => x === 1));
  const e = [...a.get("model.embed_tokens.weight")!.dataSync()];
  const std = Math.sqrt(e.reduce((s, x) => s + x * x, 0) / e.length);
  assert(Math.abs(std - 0.02) < 0.003, `init std ${std}`);
  [a, b].forEach((p) => p.forEach((v) => v.dispose()));
});

Deno.test("logits have shape [B, T, V] and the forward pass leaks no tensors", () => {
  const params = initParams(config, Rng.seeded(2));
  const ids = ids2d([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]);
  const before = tf.memory().numTensors;
  const logits = forward(params, config, ids);
  assertEquals(logits.shape, [2, 5, 32]);
  logits.dispose();
  tf.tidy(() => {
    tf.variableGrads(() => shiftedLoss(forward(params, config, ids), ids, new Float32Array(10).fill(1)).loss);
  });
  assertEquals(tf.memory().numTensors, before);
  ids.dispose();
  params.forEach((v) => v.dispose());
});

Deno.test("causal: changing a future token leaves earlier logits bit-identical", () => {
  const params = initParams(config, Rng.seeded(3));
  const a = logitsOf(params, [[3, 1, 4, 1, 5, 9, 2, 6]]);
  const b = logitsOf(params, [[3, 1, 4, 1, 5, 8, 2, 6]]); // position 5 changed
  for (let t = 0; t < 5; t++) assertEquals(b[0][t], a[0][t]);
  for (let t = 5; t < 8; t++) assertNotEquals(b[0][t], a[0][t]);
  params.forEach((v) => v.dispose());
});

Deno.test("a row gives bit-identical logits alone and in a batch", () => {
  const params = initParams(config, Rng.seeded(4));
  const rows = [[5, 6, 7, 8], [9, 10, 11, 12], [5, 6, 7, 8]];
  const batched = logitsOf(params, rows);
  rows.forEach((r, i) => assertEquals(logitsOf(params, [r])[0], batched[i]));
  params.forEach((v) => v.dispose());
});

Deno.test("logitsAt equals the matching rows of forward, and its loss equals shiftedLoss", () => {
  for (const tie of [false, true]) {
    const c = tinyConfig({ tieEmbeddings: tie });
    const params = initParams(c, Rng.seeded(5));
    tf.tidy(() => {
      const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
      const weights = Float32Array.from([0, 0, 1, 1, 0, 0, 0.5, 1]);
      const idsT = tf.tensor2d(ids, [2, 4], "int32");
      const full = forward(params, c, idsT);
      const p = weightedPositions(ids, weights, 2, 4);
      const some = logitsAt(params, c, idsT, p.rows);
      const fullRows = full.reshape([8, 32]).arraySync() as number[][];
      (some.arraySync() as number[][]).forEach((row, i) => assertEquals(row, fullRows[p.rows[i]]));
      assertAlmostEquals(
        weightedCrossEntropy(some, p.targets, p.weights).loss.dataSync()[0],
        shiftedLoss(full, ids, weights).loss.dataSync()[0],
        1e-6,
      );
    });
    params.forEach((v) => v.dispose());
  }
});

Deno.test("the stock-tfjs path (other backends) computes the same logits, loss and gradients", async () => {
  await registerReferenceBackend();
  const c = tinyConfig({ tieEmbeddings: true });
  const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const weights = Float32Array.from([0, 1, 1, 1, 1, 0.5, 0, 0, 1, 1, 2, 1]);
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    const params = initParams(c, Rng.seeded(6));
    let out = { loss: 0, logits: [] as number[], grads: new Map<string, number[]>() };
    tf.tidy(() => {
      const idsT = tf.tensor2d(ids, [2, 6], "int32");
      const { value, grads } = tf.variableGrads(() =>
        shiftedLoss(forward(params, c, idsT), ids, weights).loss
      );
      const names = new Map([...params].map(([k, v]) => [v.name, k]));
      out = {
        loss: value.dataSync()[0],
        logits: [...forward(params, c, idsT).dataSync()],
        grads: new Map(Object.entries(grads).map(([n, g]) => [names.get(n)!, [...g.dataSync()]])),
      };
    });
    params.forEach((v) => v.dispose());
    return out;
  };
  const ref = await run("cpu-ref"), fast = await run("cpu");
  const close = (a: number[], b: number[], what: string) =>
    a.forEach((x, i) => assertAlmostEquals(x, b[i], 1e-5, `${what}[${i}]: ${x} vs ${b[i]}`));
  close(fast.logits, ref.logits, "logits");
  assertAlmostEquals(fast.loss, ref.loss, 1e-6);
  assertEquals([...fast.grads.keys()].sort(), [...ref.grads.keys()].sort());
  for (const [name, g] of fast.grads) close(g, ref.grads.get(name)!, name);
});
