/**
 * DFT (arXiv 2508.05629): the per-token loss is -sg(p(y_t)) * log p(y_t). Checked against the formula
 * computed here in float64: the loss value, and the gradient with respect to the logits, which the
 * stop-gradient makes w/W * q * (softmax - onehot) (the CE gradient scaled by the token's probability).
 * Both the cpu kernel and the stock-op path other backends take are checked, and the train step's
 * objective option is shown to reach the loss.
 */
import * as tf from "@tensorflow/tfjs";
import { weightedCrossEntropy } from "../src/train/loss.ts";
import { optimizerStep } from "../src/train/step.ts";
import { AdamW } from "../src/train/adamw.ts";
import { initParams, logitsAt } from "../src/model/model.ts";
import { weightedPositions } from "../src/train/loss.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertAlmostEquals } from "./assert.ts";
import { registerReferenceBackend, tinyConfig } from "./model_test_helpers.ts";
import { randomCase, softmax64 } from "./method_test_helpers.ts";

await registerReferenceBackend();

for (const backend of ["cpu", "cpu-ref"]) {
  Deno.test(`dft (${backend}): loss and gradient equal -sg(q) log q and its stop-gradient derivative`, async () => {
    await tf.setBackend(backend);
    try {
      const { logits, targets, weights, rows, vocab } = randomCase(7, 6, 11);
      const W = weights.reduce((a, b) => a + b, 0);
      let expected = 0;
      const expectedGrad = new Float64Array(rows * vocab);
      for (let i = 0; i < rows; i++) {
        const p = softmax64(logits.subarray(i * vocab, (i + 1) * vocab));
        const q = p[targets[i]];
        if (weights[i] === 0) continue;
        expected += weights[i] * -q * Math.log(q);
        for (let v = 0; v < vocab; v++) {
          expectedGrad[i * vocab + v] = (weights[i] / W) * q * (p[v] - (v === targets[i] ? 1 : 0));
        }
      }
      expected /= W;
      tf.tidy(() => {
        const x = tf.tensor2d(logits, [rows, vocab]);
        const f = (l: tf.Tensor) => weightedCrossEntropy(l, targets, weights, { objective: "dft" }).loss;
        assertAlmostEquals(f(x).dataSync()[0], expected, 1e-6);
        const g = tf.grad(f)(x).dataSync();
        for (let j = 0; j < g.length; j++) assertAlmostEquals(g[j], expectedGrad[j], 1e-6, `grad[${j}]`);
        // Rows with weight 0 get exactly zero gradient, as with CE.
        for (let i = 0; i < rows; i++) {
          if (weights[i] === 0) assert(g.subarray(i * vocab, (i + 1) * vocab).every((v) => v === 0));
        }
      });
    } finally {
      await tf.setBackend("cpu");
    }
  });
}

Deno.test("dft: the train step's objective option is the loss it optimises", () => {
  const config = tinyConfig();
  const params = initParams(config, Rng.seeded(3));
  try {
    const ids = Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 7 + 3) % config.vocabSize);
    const weights = Float32Array.from({ length: 16 }, (_, i) => (i % 8 >= 3 ? 1 : 0));
    const mb = { ids, weights, batch: 2, seqLen: 8 };
    const used = weightedPositions(ids, weights, 2, 8);
    const direct = (objective: "ce" | "dft") =>
      tf.tidy(() =>
        weightedCrossEntropy(
          logitsAt(params, config, tf.tensor2d(ids, [2, 8], "int32"), used.rows),
          used.targets,
          used.weights,
          { objective },
        ).loss.dataSync()[0]
      );
    const dft = direct("dft"), ce = direct("ce");
    assert(Math.abs(dft - ce) > 1e-3, `dft ${dft} and ce ${ce} should differ`);
    // lr 0: nothing moves, the reported loss is the objective of the current weights.
    const step = optimizerStep(params, config, new AdamW(params, { weightDecay: 0 }), [mb], {
      lr: 0,
      clipNorm: 1,
      objective: "dft",
    });
    assertAlmostEquals(step.loss, dft, 1e-6);
  } finally {
    params.forEach((v) => v.dispose());
  }
});
