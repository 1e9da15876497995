/**
 * The hand-written cpu kernels against the stock-tfjs formulations (src/model/reference_ops.ts and the
 * reference cross entropy): same values and same gradients.
 */
import * as tf from "@tensorflow/tfjs";
import * as fast from "../src/model/kernels.ts";
import * as reference from "../src/model/reference_ops.ts";
import { referenceCrossEntropy, weightedCrossEntropy } from "../src/train/loss.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";

await tf.setBackend("cpu");

const rng = Rng.seeded(7);
const randn = (shape: number[]): tf.Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
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

Deno.test("matmulNT equals a naive triple loop for every blocking remainder", () => {
  for (const [m, n, k] of [[1, 1, 1], [5, 3, 7], [8, 4, 16], [7, 9, 3]]) {
    const a = Float32Array.from({ length: m * k }, () => rng.normal());
    const b = Float32Array.from({ length: n * k }, () => rng.normal());
    const c = fast.matmulNT(a, b, m, n, k);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
        assertEquals(c[i * n + j], Math.fround(s)); // same order of summation: bit-identical
      }
    }
  }
});

Deno.test("linear matches tf.matMul(x, w^T)", () => {
  compare(
    "linear",
    (x, w) => fast.linear(x as tf.Tensor2D, w as tf.Tensor2D),
    (x, w) => reference.linear(x as tf.Tensor2D, w as tf.Tensor2D),
    [randn([9, 6]), randn([5, 6])],
  );
});

Deno.test("rmsNorm matches the stock formulation", () => {
  compare(
    "rmsNorm",
    (x, w) => fast.rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-5),
    (x, w) => reference.rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-5),
    [randn([7, 8]), randn([8])],
  );
});

Deno.test("embedding matches tf.gather, repeated ids accumulate gradient", () => {
  const ids = Int32Array.from([3, 1, 3, 0, 4, 3]);
  compare(
    "embedding",
    (t) => fast.embedding(t as tf.Tensor2D, ids),
    (t) => reference.embedding(t as tf.Tensor2D, ids),
    [randn([5, 4])],
  );
});

Deno.test("rope matches slicing/concat rotate_half and preserves norms", () => {
  const tables = fast.ropeTables([0, 1, 2, 5, 100, 7], 8, 10000);
  compare(
    "rope",
    (x) => fast.rope(x as tf.Tensor2D, tables, 3),
    (x) => reference.rope(x as tf.Tensor2D, tables, 3),
    [randn([6, 24])],
  );
  tf.tidy(() => {
    const x = randn([6, 24]) as tf.Tensor2D;
    const y = fast.rope(x, tables, 3);
    assert(Math.abs(tf.norm(x).dataSync()[0] - tf.norm(y).dataSync()[0]) < 1e-4);
    // position 0 is the identity rotation
    assert(maxDiff(tf.slice(x, [0, 0], [1, 24]), tf.slice(y, [0, 0], [1, 24])) === 0);
  });
});

Deno.test("causal GQA attention matches masked softmax attention (values and gradients)", () => {
  const shape = { batch: 2, tq: 5, tk: 5, heads: 4, kvHeads: 2, headDim: 4, qOffset: 0 };
  const f = (s: fast.AttentionShape) => (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
    fast.causalAttention(q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, s);
  const g = (s: fast.AttentionShape) => (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
    reference.causalAttention(q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, s);
  const inputs = () => [randn([10, 16]), randn([10, 8]), randn([10, 8])];
  compare("attention", f(shape), g(shape), inputs());
  compare("attention mqa", f({ ...shape, kvHeads: 1 }), g({ ...shape, kvHeads: 1 }), [
    randn([10, 16]),
    randn([10, 4]),
    randn([10, 4]),
  ]);
  // left padding: row 1 starts at key 2 (its first two queries see nothing and output zeros)
  const padded = { ...shape, keyStart: Int32Array.from([0, 2]) };
  compare("attention padded", f(padded), g(padded), inputs());
});

Deno.test("attention with a query offset (cache layout) matches the reference", () => {
  // 2 new queries at key positions 4 and 5 of a 7-slot cache holding 6 keys
  const s = {
    batch: 2,
    tq: 2,
    tk: 7,
    heads: 2,
    kvHeads: 1,
    headDim: 4,
    qOffset: 4,
    keyStart: Int32Array.from([0, 3]),
  };
  tf.tidy(() => {
    const q = randn([4, 8]) as tf.Tensor2D,
      k = randn([14, 4]) as tf.Tensor2D,
      v = randn([14, 4]) as tf.Tensor2D;
    const { out } = fast.attentionValues(
      q.dataSync() as Float32Array,
      k.dataSync() as Float32Array,
      v.dataSync() as Float32Array,
      s,
      false,
    );
    assert(maxDiff(tf.tensor2d(out, [4, 8]), reference.causalAttention(q, k, v, s)) < 1e-5);
  });
});

Deno.test("swiglu matches silu(gate) * up", () => {
  compare(
    "swiglu",
    (a, b) => fast.swiglu(a as tf.Tensor2D, b as tf.Tensor2D),
    (a, b) => reference.swiglu(a as tf.Tensor2D, b as tf.Tensor2D),
    [randn([6, 5]), randn([6, 5])],
  );
});

Deno.test("weighted cross entropy matches logSoftmax/oneHot (values and gradients)", () => {
  const targets = Int32Array.from([1, 4, -100, 0, 2, 3]);
  const weights = Float32Array.from([1, 0.5, 0, 2, 0, 1]);
  compare(
    "cross entropy",
    (l) => weightedCrossEntropy(l, targets, weights).loss,
    (l) => referenceCrossEntropy(l, targets, weights, 4.5, 4.5).loss,
    [randn([2, 3, 5])],
  );
});
