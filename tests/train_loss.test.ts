import * as tf from "@tensorflow/tfjs";
import { shiftedLoss, weightedPositions, weightedTokenLoss } from "../src/train/loss.ts";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "./assert.ts";

await tf.setBackend("cpu");

Deno.test("weighted CE equals a hand-computed value; zero-weight rows get exactly zero gradient", () => {
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    // row 0: uniform over 3, target 1, weight 1      -> ce = ln 3
    // row 1: probs [1/4, 1/2, 1/4], target 2, w = 3  -> ce = ln 4
    // row 2: anything, target -100, weight 0         -> ignored
    const logits = tf.tensor2d([[0, 0, 0], [0, Math.log(2), 0], [5, -1, 2]]);
    const targets = Int32Array.from([1, 2, -100]);
    const weights = Float32Array.from([1, 3, 0]);
    const r = weightedTokenLoss(logits, targets, weights);
    assertAlmostEquals(r.loss.dataSync()[0], (Math.log(3) + 3 * Math.log(4)) / 4, 1e-6);
    assertEquals(r.weightSum, 4);
    assertAlmostEquals(r.perToken[0], Math.log(3), 1e-6);
    assertAlmostEquals(r.perToken[1], Math.log(4), 1e-6);
    assertEquals(r.perToken[2], 0);

    const g = tf.grad((l: tf.Tensor) => weightedTokenLoss(l, targets, weights).loss)(logits)
      .arraySync() as number[][];
    const expected = [
      [1 / 12, -2 / 12, 1 / 12], // (1/4) * (p - onehot)
      [3 / 16, 3 / 8, -9 / 16], // (3/4) * (p - onehot)
    ];
    expected.forEach((row, i) => row.forEach((x, j) => assertAlmostEquals(g[i][j], x, 1e-6)));
    assert(g[2].every((x) => x === 0 && !Object.is(x, -0)), `row 2 gradient ${g[2]}`);

    // an explicit normalizer replaces sum(w)
    const n = weightedTokenLoss(logits, targets, weights, { normalizer: 8 });
    assertAlmostEquals(n.loss.dataSync()[0], (Math.log(3) + 3 * Math.log(4)) / 8, 1e-6);
    // no weight at all: 0, not NaN
    assertEquals(weightedTokenLoss(logits, targets, new Float32Array(3)).loss.dataSync()[0], 0);
  });
  assertEquals(tf.memory().numTensors, before);
});

Deno.test("weighted CE refuses bad weights and out-of-vocabulary weighted targets", () => {
  tf.tidy(() => {
    const logits = tf.zeros([2, 3]);
    assertThrows(
      () => weightedTokenLoss(logits, Int32Array.from([0, 3]), Float32Array.from([1, 1])),
      RangeError,
    );
    assertThrows(
      () => weightedTokenLoss(logits, Int32Array.from([0, 1]), Float32Array.from([1, -1])),
      RangeError,
    );
    assertThrows(
      () => weightedTokenLoss(logits, Int32Array.from([0, 1]), Float32Array.from([1, NaN])),
      RangeError,
    );
    assertThrows(
      () => weightedTokenLoss(logits, Int32Array.from([0]), Float32Array.from([1])),
      RangeError,
    );
  });
});

Deno.test("shiftedLoss: logits at t predict ids[t+1] with weight weights[t+1]", () => {
  tf.tidy(() => {
    const logits = tf.tensor3d([[[1, 2, 3], [0, 0, 1], [9, 9, 9]]]); // [1, 3, 3]
    const ids = Int32Array.from([0, 2, 1]);
    const weights = Float32Array.from([7, 1, 0.5]); // weights[0] never counts
    const r = shiftedLoss(logits, ids, weights);
    const manual = weightedTokenLoss(
      tf.tensor2d([[1, 2, 3], [0, 0, 1]]),
      Int32Array.from([2, 1]),
      Float32Array.from([1, 0.5]),
    );
    assertAlmostEquals(r.loss.dataSync()[0], manual.loss.dataSync()[0], 1e-7);
    assertEquals(r.weightSum, 1.5);
    assertEquals(r.perToken[0], 0);
    assertEquals(r.perToken[1], manual.perToken[0]);
    assertEquals(r.perToken[2], manual.perToken[1]);

    const p = weightedPositions(ids, weights, 1, 3);
    assertEquals([...p.rows], [0, 1]);
    assertEquals([...p.targets], [2, 1]);
    assertEquals([...p.weights], [1, 0.5]);
  });
});
