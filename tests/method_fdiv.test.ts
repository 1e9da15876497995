/**
 * f-divergence SFT objectives (arXiv 2507.00018). For each: the loss equals the divergence computed from
 * its definition, sum_v Q_v f(P_v / Q_v) over the whole vocabulary with P one-hot at the gold token (and,
 * for TV, chi^2 and squared Hellinger, the closed forms 1 - q, 1/q - 1, 2 - 2 sqrt(q)); the gradient with
 * respect to the logits matches central finite differences of that float64 definition. Both the cpu
 * kernel and the stock-op path are checked.
 */
import * as tf from "@tensorflow/tfjs";
import { weightedTokenLoss } from "../src/train/loss.ts";
import type { Objective } from "../src/train/objectives.ts";
import { assertAlmostEquals } from "./assert.ts";
import { registerReferenceBackend } from "./model_test_helpers.ts";
import { randomCase, softmax64 } from "./method_test_helpers.ts";

await registerReferenceBackend();

/** Generator functions f with f(1) = 0; f(0) is their limit at 0. */
const generators: Record<string, (t: number) => number> = {
  ce: (t) => (t === 0 ? 0 : t * Math.log(t)), // KL(P || Q)
  tv: (t) => Math.abs(t - 1) / 2,
  chi2: (t) => (t - 1) ** 2,
  hellinger: (t) => (Math.sqrt(t) - 1) ** 2,
  js: (t) => (t === 0 ? Math.LN2 / 2 : (t * Math.log((2 * t) / (t + 1)) + Math.log(2 / (t + 1))) / 2),
};

const closedForms: Record<string, (q: number) => number> = {
  ce: (q) => -Math.log(q),
  tv: (q) => 1 - q,
  chi2: (q) => 1 / q - 1,
  hellinger: (q) => 2 - 2 * Math.sqrt(q),
};

/** D_f(onehot(y) || softmax(row)) straight from the definition. */
const divergence = (f: (t: number) => number, row: ArrayLike<number>, y: number) =>
  softmax64(row).reduce((s, qv, v) => s + qv * f((v === y ? 1 : 0) / qv), 0);

/** The batch loss sum_i w_i D_i / sum_i w_i in float64. */
const batchLoss = (f: (t: number) => number, logits: Float64Array, c: ReturnType<typeof randomCase>) => {
  let total = 0, W = 0;
  for (let i = 0; i < c.rows; i++) {
    W += c.weights[i];
    if (c.weights[i] > 0) {
      total += c.weights[i] * divergence(f, logits.subarray(i * c.vocab, (i + 1) * c.vocab), c.targets[i]);
    }
  }
  return total / W;
};

for (const backend of ["cpu", "cpu-ref"]) {
  for (const objective of Object.keys(generators) as Objective[]) {
    Deno.test(`fdiv ${objective} (${backend}): loss is the divergence, gradient matches finite differences`, async () => {
      await tf.setBackend(backend);
      try {
        const c = randomCase(11, 5, 9);
        const f = generators[objective];
        const logits64 = Float64Array.from(c.logits);
        const expected = batchLoss(f, logits64, c);
        // The definition and the closed form agree (a check of this test's own algebra).
        for (let i = 0; i < c.rows && closedForms[objective]; i++) {
          const row = logits64.subarray(i * c.vocab, (i + 1) * c.vocab);
          const q = softmax64(row)[c.targets[i]];
          assertAlmostEquals(divergence(f, row, c.targets[i]), closedForms[objective](q), 1e-9);
        }
        tf.tidy(() => {
          const x = tf.tensor2d(c.logits, [c.rows, c.vocab]);
          const loss = (l: tf.Tensor) => weightedTokenLoss(l, c.targets, c.weights, { objective }).loss;
          assertAlmostEquals(loss(x).dataSync()[0], expected, 1e-5 * Math.max(1, Math.abs(expected)));
          const g = tf.grad(loss)(x).dataSync();
          const h = 1e-5;
          for (let j = 0; j < g.length; j++) {
            const plus = Float64Array.from(logits64), minus = Float64Array.from(logits64);
            plus[j] += h;
            minus[j] -= h;
            const numeric = (batchLoss(f, plus, c) - batchLoss(f, minus, c)) / (2 * h);
            assertAlmostEquals(
              g[j],
              numeric,
              1e-4 * Math.max(1, Math.abs(numeric)),
              `${objective} grad[${j}]`,
            );
          }
        });
      } finally {
        await tf.setBackend("cpu");
      }
    });
  }
}
