/**
 * The GPT-2 / Qwen2 cpu kernels (src/model/kernels_extra.ts) against the stock-tfjs formulations of
 * src/model/reference_ops.ts: same values and same gradients, no leaked tensors.
 */
import * as tf from "@tensorflow/tfjs";
import * as extra from "../src/model/kernels_extra.ts";
import * as reference from "../src/model/reference_ops.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

await tf.setBackend("cpu");

const rng = Rng.seeded(11);
const randn = (shape: number[], scale = 1): tf.Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => scale * rng.normal()), shape);
};

const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => {
  assertEquals(a.shape, b.shape);
  const x = a.dataSync(), y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
};

/** Compares outputs and the gradients of sum(out * r) with respect to every input. */
const compare = (
  name: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  g: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  tol = 1e-5,
) => {
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const yf = f(...inputs), yg = g(...inputs);
    assert(maxDiff(yf, yg) < tol, `${name} forward differs by ${maxDiff(yf, yg)}`);
    const r = randn(yf.shape);
    const gf = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)))(inputs);
    const gg = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(g(...xs), r)))(inputs);
    gf.forEach((t, i) =>
      assert(maxDiff(t, gg[i]) < tol, `${name} gradient ${i} differs by ${maxDiff(t, gg[i])}`)
    );
  });
  assertEquals(tf.memory().numTensors, before, `${name} leaked tensors`);
};

Deno.test("addBias matches broadcasting tf.add", () => {
  compare(
    "addBias",
    (x, b) => extra.addBias(x as tf.Tensor2D, b as tf.Tensor1D),
    (x, b) => reference.addBias(x as tf.Tensor2D, b as tf.Tensor1D),
    [randn([7, 5]), randn([5])],
  );
  assertThrows(() => extra.addBias(tf.zeros([2, 3]), tf.zeros([4])), RangeError, "bias");
});

Deno.test("conv1d (GPT-2's x W + b, W [in, out]) matches tf.matMul + add", () => {
  for (const [m, k, n] of [[9, 6, 5], [1, 4, 12], [5, 3, 1]]) {
    compare(
      "conv1d",
      (x, w, b) => extra.conv1d(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      (x, w, b) => reference.conv1d(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      [randn([m, k]), randn([k, n]), randn([n])],
    );
  }
  assertThrows(() => extra.conv1d(tf.zeros([2, 3]), tf.zeros([4, 3]), tf.zeros([3])), RangeError);
});

Deno.test("columns matches tf.slice; its gradient fills only those columns", () => {
  for (const [start, width] of [[0, 3], [3, 3], [6, 3], [2, 1]]) {
    compare(
      "columns",
      (x) => extra.columns(x as tf.Tensor2D, start, width),
      (x) => reference.columns(x as tf.Tensor2D, start, width),
      [randn([4, 9])],
    );
  }
  assertThrows(() => extra.columns(tf.zeros([2, 3]), 2, 2), RangeError);
});

Deno.test("layerNorm matches tf.moments LayerNorm (values and gradients), also for offset inputs", () => {
  compare(
    "layerNorm",
    (x, w, b) => extra.layerNorm(x as tf.Tensor2D, w as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
    (x, w, b) => reference.layerNorm(x as tf.Tensor2D, w as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
    [randn([6, 10]), randn([10]), randn([10])],
    2e-5,
  );
  // A large common offset: the two-pass variance must not cancel catastrophically.
  const shifted = tf.tidy(() => tf.add(randn([3, 8]), 100));
  const y = extra.layerNorm(shifted as tf.Tensor2D, tf.ones([8]), tf.zeros([8]), 1e-5);
  const rows = y.arraySync() as number[][];
  for (const row of rows) {
    const mean = row.reduce((a, b) => a + b, 0) / row.length;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / row.length;
    assert(Math.abs(mean) < 1e-5 && Math.abs(variance - 1) < 1e-3, `mean ${mean}, variance ${variance}`);
  }
  tf.dispose([shifted, y]);
});

Deno.test("gelu matches the tanh-approximation formula, values and gradients", () => {
  compare("gelu", (x) => extra.gelu(x as tf.Tensor2D), (x) => reference.gelu(x as tf.Tensor2D), [
    randn([5, 7], 3),
  ]);
  // Known values of gelu_new: gelu(0) = 0, gelu(1) ~ 0.841192, gelu(-1) ~ -0.158808.
  const y = extra.gelu(tf.tensor2d([[0, 1, -1]])).dataSync();
  assertEquals(y[0], 0);
  assert(Math.abs(y[1] - 0.841192) < 1e-5 && Math.abs(y[2] + 0.158808) < 1e-5, `${y}`);
});
