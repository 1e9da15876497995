/**
 * The OpenBLAS path (src/backend/blas.ts, matmul.ts): the raw products against the JavaScript loop, and
 * the kernels that use it against the stock-tfjs formulations, at sizes large enough to go to BLAS (the
 * tests in model_kernels.test.ts use sizes that stay in JavaScript). Skipped with a message where the
 * library or the FFI permission is missing; the failure messages for those cases are checked regardless.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { type Blas, BlasUnavailable, loadBlas } from "../src/backend/blas.ts";
import { fastGemm, installedMatmul, installMatmul, MIN_WORK } from "../src/backend/matmul.ts";
import * as fast from "../src/model/kernels.ts";
import * as reference from "../src/model/reference_ops.ts";
import { forward, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

let blas: Blas | undefined;
let why = "";
try {
  blas = loadBlas();
} catch (e) {
  why = e instanceof Error ? e.message : String(e);
  console.log(`perf_blas: BLAS tests skipped: ${why}`);
}
const ignore = blas === undefined;

const rng = Rng.seeded(11);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const randn = (shape: number[]): tf.Tensor => tf.tensor(rand(shape.reduce((a, b) => a * b, 1)), shape);

const maxDiff = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
  assertEquals(x.length, y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
};

/** Runs `f` with products going to BLAS, restoring the JavaScript loops afterwards. */
const withBlas = <A>(f: () => A): A => {
  installMatmul(blas);
  try {
    return f();
  } finally {
    installMatmul(undefined);
  }
};

Deno.test("loadBlas names what is missing: the library, or the FFI permission", () => {
  assertThrows(() => loadBlas("/nonexistent/libopenblas.so.0"), BlasUnavailable, "no OpenBLAS library found");
  // An existing file outside the granted FFI paths: the message asks for the permission.
  const file = Deno.makeTempFileSync({ suffix: ".so" });
  try {
    assertThrows(() => loadBlas(file), BlasUnavailable, "--allow-ffi");
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test({
  name: "gemm equals the JavaScript matmulNT for every transpose combination",
  ignore,
  fn: () => {
    const [m, n, k] = [37, 29, 41];
    const a = rand(m * k), b = rand(n * k);
    const expected = fast.matmulNT(a, b, m, n, k); // JS: nothing installed
    const aT = fast.transpose(a, m, k), bT = fast.transpose(b, n, k);
    for (
      const [x, y, ta, tb] of [[a, b, false, true], [a, bT, false, false], [aT, b, true, true], [
        aT,
        bT,
        true,
        false,
      ]] as const
    ) {
      const c = blas!.gemm(x, y, m, n, k, ta, tb);
      assert(maxDiff(c, expected) < 1e-4, `transA=${ta} transB=${tb} differs by ${maxDiff(c, expected)}`);
    }
    // subarrays are passed at their offset, and a given output array is written in place
    const padded = new Float32Array(5 + a.length);
    padded.set(a, 5);
    const out = new Float32Array(m * n);
    assert(blas!.gemm(padded.subarray(5), b, m, n, k, false, true, out) === out);
    assert(maxDiff(out, expected) < 1e-4);
  },
});

Deno.test({
  name: "matmulNT goes to BLAS only when installed and above MIN_WORK",
  ignore,
  fn: () => {
    assertEquals(fastGemm(rand(64 * 64), rand(64 * 64), 64, 64, 64, false, true), undefined);
    withBlas(() => {
      assert(installedMatmul() === blas);
      assert(fastGemm(rand(64 * 64), rand(64 * 64), 64, 64, 64, false, true) !== undefined);
      assertEquals(fastGemm(rand(8), rand(8), 2, 2, 2, false, true), undefined);
      assert(2 * 2 * 2 < MIN_WORK);
    });
  },
});

/** Output and gradient of sum(out * r) of a BLAS-routed kernel against the stock formulation. */
const compareWithBlas = (
  name: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  g: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  tol = 2e-4,
) => {
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const yg = g(...inputs);
    const r = randn(yg.shape);
    const gg = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(g(...xs), r)))(inputs);
    const [yf, gf] = withBlas(() =>
      [f(...inputs), tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)))(inputs)] as const
    );
    assert(maxDiff(yf.dataSync(), yg.dataSync()) < tol, `${name} forward differs`);
    gf.forEach((t, i) => {
      const d = maxDiff(t.dataSync(), gg[i].dataSync());
      assert(d < tol, `${name} gradient ${i} differs by ${d}`);
    });
  });
  assertEquals(tf.memory().numTensors, before, `${name} leaked tensors`);
};

Deno.test({
  name: "with BLAS, linear matches tf.matMul(x, w^T) in value and gradients",
  ignore,
  fn: () =>
    compareWithBlas(
      "linear",
      (x, w) => fast.linear(x as tf.Tensor2D, w as tf.Tensor2D),
      (x, w) => reference.linear(x as tf.Tensor2D, w as tf.Tensor2D),
      [randn([48, 40]), randn([36, 40])],
    ),
});

Deno.test({
  name: "with BLAS, causal GQA attention matches masked softmax attention",
  ignore,
  fn: () => {
    // per-head products of 33 x 33 x 16: above MIN_WORK, so they go to BLAS
    const shape = { batch: 2, tq: 33, tk: 33, heads: 4, kvHeads: 2, headDim: 16, qOffset: 0 };
    assert(33 * 33 * 16 >= MIN_WORK);
    const f = (s: fast.AttentionShape) => (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
      fast.causalAttention(q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, s);
    const g = (s: fast.AttentionShape) => (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
      reference.causalAttention(q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, s);
    const inputs = () => [randn([66, 64]), randn([66, 32]), randn([66, 32])];
    compareWithBlas("attention", f(shape), g(shape), inputs());
    const padded = { ...shape, keyStart: Int32Array.from([0, 5]) };
    compareWithBlas("attention padded", f(padded), g(padded), inputs());
    // A generation step: one query against an 80-slot cache, 40 positions in, left-padded rows.
    const decode = { batch: 2, tq: 1, tk: 80, heads: 4, kvHeads: 2, headDim: 64, qOffset: 40 };
    assert(1 * 80 * 64 >= MIN_WORK);
    const step = { ...decode, keyStart: Int32Array.from([3, 0]) };
    compareWithBlas("attention decode", f(step), g(step), [
      randn([2, 256]),
      randn([160, 128]),
      randn([160, 128]),
    ]);
  },
});

Deno.test({
  name: "gemmStrided computes blocks of larger matrices in place and refuses blocks outside their arrays",
  ignore,
  fn: () => {
    // C[1:3, 2:5] += A[0:2, 1:4] x B[1:4, 0:3]^T, inside 4 x 6, 3 x 5 and 4 x 3 matrices.
    const a = rand(3 * 5), b = rand(4 * 3), c = rand(4 * 6), expected = Float32Array.from(c);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        let sum = 0;
        for (let p = 0; p < 3; p++) sum += a[i * 5 + 1 + p] * b[(1 + j) * 3 + p];
        expected[(1 + i) * 6 + 2 + j] += sum;
      }
    }
    const g = {
      transA: false,
      transB: true,
      m: 2,
      n: 3,
      k: 3,
      a: a.subarray(1),
      lda: 5,
      b: b.subarray(3),
      ldb: 3,
      beta: 1,
      c: c.subarray(6 + 2),
      ldc: 6,
    };
    blas!.gemmStrided(g);
    assert(maxDiff(c, expected) < 1e-5, "strided product differs");
    assertThrows(() => blas!.gemmStrided({ ...g, c: c.subarray(20) }), RangeError);
    assertThrows(() => blas!.gemmStrided({ ...g, lda: 2 }), RangeError);
  },
});

Deno.test({
  name: "with BLAS, a model's logits (full and through the KV cache) match the JavaScript path",
  ignore,
  fn: async () => {
    const { createCache } = await import("../src/model/model.ts");
    const c = tinyConfig({ hiddenSize: 64, intermediateSize: 96, vocabSize: 80, numHeads: 4, numKvHeads: 2 });
    const params = initParams(c, Rng.seeded(3));
    const ids = Array.from({ length: 2 }, () => Array.from({ length: 24 }, () => rng.int(80)));
    tf.tidy(() => {
      const plain = forward(params, c, tf.tensor2d(ids, undefined, "int32")).dataSync();
      const viaBlas = withBlas(() => forward(params, c, tf.tensor2d(ids, undefined, "int32")).dataSync());
      assert(maxDiff(plain, viaBlas) < 1e-4, `logits differ by ${maxDiff(plain, viaBlas)}`);
      // the cached path: 20 tokens at once, then one at a time, against the full pass without BLAS
      withBlas(() => {
        const cache = createCache(c, 2, 24);
        forward(params, c, tf.tensor2d(ids.map((r) => r.slice(0, 20)), undefined, "int32"), cache);
        for (let t = 20; t < 24; t++) {
          const step = forward(params, c, tf.tensor2d(ids.map((r) => [r[t]]), undefined, "int32"), cache, {
            lastPositionOnly: true,
          }).dataSync();
          for (let b = 0; b < 2; b++) {
            const want = plain.subarray((b * 24 + t) * 80, (b * 24 + t + 1) * 80);
            const got = step.subarray(b * 80, (b + 1) * 80);
            assert(maxDiff(want, got) < 1e-4, `cached logits at ${t} differ by ${maxDiff(want, got)}`);
          }
        }
      });
    });
    params.forEach((v) => v.dispose());
  },
});

Deno.test("useBackend: cpu-blas installs BLAS, cpu removes it, auto reports what it chose", async () => {
  const auto = await Effect.runPromise(useBackend("auto"));
  assert(["tensorflow", "cpu-blas", "cpu"].includes(auto), auto);
  assertEquals(installedMatmul() !== undefined, auto === "cpu-blas");
  // Without the library or permission, auto is not cpu-blas (and forcing it fails with the reason).
  if (ignore) {
    assert(auto !== "cpu-blas");
    const forced = await Effect.runPromise(Effect.either(useBackend("cpu-blas")));
    assert(forced._tag === "Left" && forced.left._tag === "BackendUnavailable");
  } else {
    assertEquals(await Effect.runPromise(useBackend("cpu-blas")), "cpu-blas");
    assert(installedMatmul() !== undefined);
  }
  assertEquals(await Effect.runPromise(useBackend("cpu")), "cpu");
  assertEquals(installedMatmul(), undefined);
  assertEquals(tf.getBackend(), "cpu");
});
