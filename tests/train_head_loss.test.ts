/**
 * The fused, chunked LM head and loss (src/train/head_loss.ts) against the unfused formulation it
 * replaces, weightedTokenLoss(linear(h, W)) (the cpu kernel of src/train/loss.ts on full logits): loss
 * within 1e-5 and gradients with respect to the hidden states and the head weight within 1e-4 relative,
 * for every objective, with chunks that do not divide the rows, with the gradient computed eagerly and
 * recomputed, and with the products in JavaScript and (where OpenBLAS loads) in BLAS. Also: central finite
 * differences for one objective, tied embeddings through whole Llama and GPT-2 models, `goldLogProbs`
 * (what `score` prints), and the input checks. The stock-tfjs variants the webgpu backend runs
 * (`headLossOps`, `goldLogProbsOps`) are checked here on the cpu backend against the same references.
 */
import * as tf from "@tensorflow/tfjs";
import { type Blas, loadBlas } from "../src/backend/blas.ts";
import { installMatmul } from "../src/backend/matmul.ts";
import { linear } from "../src/model/kernels.ts";
import { headInputAt, initParams, lmHeadWeight, logitsAt } from "../src/model/model.ts";
import { goldLogProbs, goldLogProbsOps, headLoss, headLossOps } from "../src/train/head_loss.ts";
import { weightedPositions, weightedTokenLoss } from "../src/train/loss.ts";
import type { Objective } from "../src/train/objectives.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

let blas: Blas | undefined;
try {
  blas = loadBlas();
} catch (e) {
  console.log(`train_head_loss: BLAS variants skipped: ${e instanceof Error ? e.message : String(e)}`);
}

const OBJECTIVES: Objective[] = ["ce", "dft", "tv", "chi2", "hellinger", "js"];

/** Runs `f` with products in BLAS (when `useBlas`), restoring the JavaScript loops afterwards. */
const withProducts = <A>(useBlas: boolean, f: () => A): A => {
  installMatmul(useBlas ? blas : undefined);
  try {
    return f();
  } finally {
    installMatmul(undefined);
  }
};

/** max |a - b| / max |b|: the relative error of a whole gradient. */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assertEquals(a.length, b.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
};

/**
 * 11 rows, hidden 24, vocabulary 97 (every chunk product of 3 rows is above BLAS's MIN_WORK). Two rows
 * have weight 0, one of them an out-of-vocabulary target (-100), as padding does.
 */
const makeCase = (seed: number) => {
  const rng = Rng.seeded(seed);
  const rows = 11, dim = 24, vocab = 97;
  const h = tf.tensor2d(Float32Array.from({ length: rows * dim }, () => rng.normal()), [rows, dim]);
  const w = tf.tensor2d(Float32Array.from({ length: vocab * dim }, () => rng.normal() * 0.5), [vocab, dim]);
  const targets = Int32Array.from({ length: rows }, () => rng.int(vocab));
  targets[4] = -100;
  const weights = Float32Array.from([1, 0.5, 2, 1, 0, 1, 1, 0, 1.5, 1, 1]);
  return { h, w, targets, weights, rows, dim, vocab };
};

/**
 * 3 x the unfused loss of case `c` and its gradients with respect to h and W. The upstream gradient is 3,
 * not 1, so that the scaling of an eagerly computed gradient is checked.
 */
const unfusedReference = (
  c: ReturnType<typeof makeCase>,
  options: { objective: Objective; normalizer: number },
) => {
  const unfused = (h: tf.Tensor, w: tf.Tensor) =>
    tf.mul(
      weightedTokenLoss(linear(h as tf.Tensor2D, w as tf.Tensor2D), c.targets, c.weights, options).loss,
      3,
    );
  return { ref: tf.grads(unfused)([c.h, c.w]), refLoss: unfused(c.h, c.w).dataSync()[0] };
};

for (const useBlas of blas ? [false, true] : [false]) {
  for (const objective of OBJECTIVES) {
    Deno.test(`headLoss equals the unfused loss and its gradients (${objective}, ${useBlas ? "BLAS" : "JS"})`, () => {
      const c = makeCase(3);
      withProducts(useBlas, () => {
        const options = { objective, normalizer: 9 };
        const { ref, refLoss } = unfusedReference(c, options);
        const refPerToken = weightedTokenLoss(linear(c.h, c.w), c.targets, c.weights, options).perToken;
        for (const chunkRows of [3, 11, 64]) {
          for (const eagerGradient of [true, false]) {
            const fused = (h: tf.Tensor, w: tf.Tensor) =>
              tf.mul(
                headLoss(h as tf.Tensor2D, w as tf.Tensor2D, c.targets, c.weights, {
                  ...options,
                  chunkRows,
                  eagerGradient,
                }).loss,
                3,
              );
            const what = `chunk ${chunkRows}, eager ${eagerGradient}`;
            const loss = fused(c.h, c.w).dataSync()[0];
            assert(
              Math.abs(loss - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)),
              `${what}: ${loss} vs ${refLoss}`,
            );
            const g = tf.grads(fused)([c.h, c.w]);
            const eh = relErr(g[0].dataSync(), ref[0].dataSync()),
              ew = relErr(g[1].dataSync(), ref[1].dataSync());
            assert(
              eh <= 1e-4 && ew <= 1e-4,
              `${what}: relative gradient errors ${eh} (hidden), ${ew} (head)`,
            );
            const perToken = headLoss(c.h, c.w, c.targets, c.weights, { ...options, chunkRows }).perToken;
            assert(relErr(perToken, refPerToken) <= 1e-5, `${what}: per-token cross entropy`);
          }
        }
      });
    });
  }
}

for (const objective of OBJECTIVES) {
  Deno.test(`headLossOps (webgpu's formulation) equals the unfused loss and its gradients (${objective})`, () => {
    const c = makeCase(5);
    const options = { objective, normalizer: 9 };
    const { ref, refLoss } = unfusedReference(c, options);
    for (const chunkRows of [3, 11, 64]) {
      const ops = (h: tf.Tensor, w: tf.Tensor) =>
        tf.mul(
          headLossOps(h as tf.Tensor2D, w as tf.Tensor2D, c.targets, c.weights, { ...options, chunkRows })
            .loss,
          3,
        );
      const loss = ops(c.h, c.w).dataSync()[0];
      assert(
        Math.abs(loss - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)),
        `chunk ${chunkRows}: ${loss} vs ${refLoss}`,
      );
      const g = tf.grads(ops)([c.h, c.w]);
      const eh = relErr(g[0].dataSync(), ref[0].dataSync()), ew = relErr(g[1].dataSync(), ref[1].dataSync());
      assert(
        eh <= 1e-4 && ew <= 1e-4,
        `chunk ${chunkRows}: relative gradient errors ${eh} (hidden), ${ew} (head)`,
      );
      const dh = g[0].dataSync();
      for (const row of [4, 7]) assert(dh.subarray(row * c.dim, (row + 1) * c.dim).every((x) => x === 0));
    }
  });
}

Deno.test("headLossOps keeps no tensor beyond its result, forward and backward", () => {
  const c = makeCase(6);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(
    () => headLossOps(c.h, wVar, c.targets, c.weights, { chunkRows: 4 }).loss,
    [wVar],
  );
  value.dispose();
  Object.values(grads).forEach((t) => t.dispose());
  assertEquals(tf.memory().numTensors, before);
});
const wVar = tf.variable(makeCase(6).w);

Deno.test("goldLogProbsOps equals goldLogProbs", async () => {
  const c = makeCase(9);
  const a = goldLogProbs(c.h, c.w, c.targets, 4), b = await goldLogProbsOps(c.h, c.w, c.targets, 4);
  for (let i = 0; i < c.rows; i++) {
    if (Number.isNaN(a[i])) assert(Number.isNaN(b[i]), `row ${i}`);
    else assert(Math.abs(a[i] - b[i]) <= 1e-5, `row ${i}: ${b[i]} vs ${a[i]}`);
  }
});

Deno.test("headLoss gives exactly zero gradient to the rows of weight 0", () => {
  const c = makeCase(4);
  const [dh] = tf.grads((h: tf.Tensor, w: tf.Tensor) =>
    headLoss(h as tf.Tensor2D, w as tf.Tensor2D, c.targets, c.weights, { chunkRows: 4 }).loss
  )([c.h, c.w]);
  const g = dh.dataSync();
  for (const row of [4, 7]) assert(g.subarray(row * c.dim, (row + 1) * c.dim).every((x) => x === 0));
  assert(g.subarray(0, c.dim).some((x) => x !== 0));
});

Deno.test("headLoss's gradient matches central finite differences (js objective)", () => {
  const c = makeCase(5);
  const options = { objective: "js" as const, chunkRows: 4 };
  const lossAt = (h: Float32Array, w: Float32Array) =>
    tf.tidy(() =>
      headLoss(
        tf.tensor2d(h, [c.rows, c.dim]),
        tf.tensor2d(w, [c.vocab, c.dim]),
        c.targets,
        c.weights,
        options,
      )
        .loss.dataSync()[0]
    );
  const [dh, dw] = tf.grads((h: tf.Tensor, w: tf.Tensor) =>
    headLoss(h as tf.Tensor2D, w as tf.Tensor2D, c.targets, c.weights, options).loss
  )([c.h, c.w]);
  const h0 = Float32Array.from(c.h.dataSync()), w0 = Float32Array.from(c.w.dataSync());
  const grads = { h: dh.dataSync(), w: dw.dataSync() };
  const eps = 1e-2;
  const rng = Rng.seeded(6);
  for (const which of ["h", "w"] as const) {
    const base = which === "h" ? h0 : w0;
    // The gold column of row 0's target, then random entries.
    const picks = which === "w" ? [c.targets[0] * c.dim, c.targets[0] * c.dim + 5] : [0, 7];
    for (let k = 0; k < 6; k++) picks.push(rng.int(base.length));
    for (const i of picks) {
      const plus = Float32Array.from(base), minus = Float32Array.from(base);
      plus[i] += eps;
      minus[i] -= eps;
      const fd = which === "h"
        ? (lossAt(plus, w0) - lossAt(minus, w0)) / (2 * eps)
        : (lossAt(h0, plus) - lossAt(h0, minus)) / (2 * eps);
      const g = grads[which][i];
      assert(
        Math.abs(fd - g) <= 2e-4 + 1e-2 * Math.abs(g),
        `${which}[${i}]: finite difference ${fd}, gradient ${g}`,
      );
    }
  }
});

for (const architecture of ["llama", "gpt2"] as const) {
  Deno.test(`tied embeddings: the fused head's gradients equal the unfused ones through a ${architecture}`, () => {
    const config = tinyConfig({
      architecture,
      tieEmbeddings: true,
      numKvHeads: architecture === "gpt2" ? 4 : 2,
    });
    const params = initParams(config, Rng.seeded(7));
    const rng = Rng.seeded(8);
    const batch = 2, time = 9;
    const idsArr = Int32Array.from({ length: batch * time }, () => rng.int(config.vocabSize));
    const wArr = Float32Array.from({ length: batch * time }, (_, i) => (i % time < 3 ? 0 : 1));
    const at = weightedPositions(idsArr, wArr, batch, time);
    const ids = tf.tensor2d(idsArr, [batch, time], "int32");
    const vars = [...params.values()];
    const gradsOf = (f: () => tf.Scalar) => {
      const { value, grads } = tf.variableGrads(f, vars);
      return { loss: value.dataSync()[0], grads };
    };
    const unfused = gradsOf(() =>
      weightedTokenLoss(logitsAt(params, config, ids, at.rows), at.targets, at.weights).loss
    );
    const fused = gradsOf(() =>
      headLoss(
        headInputAt(params, config, ids, at.rows),
        lmHeadWeight(params, config),
        at.targets,
        at.weights,
        {
          chunkRows: 5,
        },
      ).loss
    );
    assert(Math.abs(fused.loss - unfused.loss) <= 1e-5, `loss ${fused.loss} vs ${unfused.loss}`);
    const embedding = architecture === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
    assert(!params.has("lm_head.weight"));
    for (const [name, v] of params) {
      const e = relErr(fused.grads[v.name].dataSync(), unfused.grads[v.name].dataSync());
      assert(e <= 1e-4, `${name}: relative gradient error ${e}`);
    }
    // The embedding's gradient has both parts: the head's (every row) and the lookup's (the input ids).
    assert(fused.grads[params.get(embedding)!.name].dataSync().every(Number.isFinite));
    params.forEach((v) => v.dispose());
  });
}

Deno.test("goldLogProbs is log softmax at the target, chunk by chunk; NaN outside the vocabulary", () => {
  const c = makeCase(9);
  const logits = linear(c.h, c.w).arraySync();
  const lp = goldLogProbs(c.h, c.w, c.targets, 4);
  for (let i = 0; i < c.rows; i++) {
    const row = logits[i], max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
    if (c.targets[i] < 0) assert(Number.isNaN(lp[i]));
    else assert(Math.abs(lp[i] - (row[c.targets[i]] - lse)) <= 1e-5, `row ${i}: ${lp[i]}`);
  }
});

Deno.test("headLoss refuses shapes that do not multiply, bad targets and bad chunk sizes", () => {
  const c = makeCase(10);
  assertThrows(
    () => headLoss(c.h, tf.zeros([c.vocab, 5]) as tf.Tensor2D, c.targets, c.weights),
    RangeError,
    "do not multiply",
  );
  const bad = Int32Array.from(c.targets);
  bad[0] = c.vocab;
  assertThrows(() => headLoss(c.h, c.w, bad, c.weights), RangeError, "outside the vocabulary");
  assertThrows(() => headLoss(c.h, c.w, c.targets, c.weights, { chunkRows: 0 }), RangeError, "chunkRows");
});
