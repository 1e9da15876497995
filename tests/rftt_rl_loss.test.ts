/**
 * RFTT's RL objective on a hand-computed batch: token rewards with the KL penalty, gamma = 1 returns,
 * REINFORCE++ batch normalisation, the PPO-clip loss and its gradient (both clipping cases exercised), the
 * process-reward mix and GRPO's group normalisation with the k3 KL term in the loss. Expected values are
 * written out from the formulas here, not taken from the implementation.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import {
  advantages,
  batchNormalised,
  clipFraction,
  groupNormalised,
  meanKl,
  ppoClipLoss,
  returnsToGo,
  sequenceLogProbs,
  tokenRewards,
} from "../src/train/rl_loss.ts";
import { tinyConfig } from "./model_test_helpers.ts";
import { disposeParams, forward, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";

await tf.setBackend("cpu");

const close = (actual: ReadonlyArray<ReadonlyArray<number>>, expected: number[][], tol = 1e-6) => {
  assertEquals(actual.length, expected.length);
  actual.forEach((row, i) =>
    row.forEach((v, t) => assertAlmostEquals(v, expected[i][t], tol, `[${i}][${t}]`))
  );
};

// Two rollouts; the second has two response tokens and one padding position.
const mask = [[1, 1, 1], [1, 1, 0]];
const oldLp = [[-1.0, -0.5, -2.0], [-0.3, -1.2, 0]];
const refLp = [[-1.1, -0.4, -2.5], [-0.3, -1.0, 0]];
const outcome = [1, 0];

// By hand, beta = 0.01: r = -0.01 (old - ref), + outcome on the last response token.
const rewardsByHand = [[-0.001, 0.001, -0.005 + 1], [0, 0.002, 0]];
// gamma = 1 returns: suffix sums over response tokens.
const returnsByHand = [[0.995, 0.996, 0.995], [0.002, 0.002, 0]];
const flat = [0.995, 0.996, 0.995, 0.002, 0.002];
const mean = flat.reduce((a, b) => a + b) / 5;
const std = Math.sqrt(flat.reduce((a, b) => a + (b - mean) ** 2, 0) / 5);
const advByHand = [
  [(0.995 - mean) / std, (0.996 - mean) / std, (0.995 - mean) / std],
  [(0.002 - mean) / std, (0.002 - mean) / std, 0],
];

Deno.test("rl loss: token rewards carry -beta KL on every token and the outcome on the last", () => {
  const r = tokenRewards({ mask, oldLogProbs: oldLp, refLogProbs: refLp, outcome, beta: 0.01 });
  close(r, rewardsByHand, 1e-12);
  close(returnsToGo(r, mask), returnsByHand, 1e-12);
  close(batchNormalised(returnsToGo(r, mask), mask), advByHand, 1e-6);
  close(
    advantages({ estimator: "reinforce++", mask, oldLogProbs: oldLp, refLogProbs: refLp, outcome }),
    advByHand,
    1e-6,
  );
  // Normalised advantages have mean 0 and unit variance over the response tokens.
  const a = advByHand.flat().filter((_, k) => k !== 5);
  assertAlmostEquals(a.reduce((x, y) => x + y) / 5, 0, 1e-9);
});

Deno.test("rl loss: process reward puts step scores on closing tags and mixes 0.6 outcome + 0.4 mean", () => {
  const r = tokenRewards({
    mask,
    oldLogProbs: oldLp,
    refLogProbs: refLp,
    outcome,
    beta: 0.01,
    steps: [{ scores: [0.5, 1], positions: [0, 1] }, { scores: [0.25], positions: [0] }],
  });
  // Rollout 0: 0.5 at 0, 1 at 1, final 0.6 * 1 + 0.4 * 0.75 = 0.9 at 2; rollout 1: 0.25 at 0, final 0.4 * 0.25.
  close(r, [[-0.001 + 0.5, 0.001 + 1, -0.005 + 0.9], [0 + 0.25, 0.002 + 0.1, 0]], 1e-12);
});

Deno.test("rl loss: PPO-clip loss and gradient equal the formula, with both clipping cases", () => {
  // Current log-probs: ratios e^0.1 (inside), 1, e^0.3 (above 1.2, positive advantage: clipped),
  // e^-0.3 (below 0.8, negative advantage: clipped), 1; the padding value must not matter.
  const cur = [[-0.9, -0.5, -1.7], [-0.6, -1.2, 7]];
  const rho = [[Math.exp(0.1), 1, Math.exp(0.3)], [Math.exp(-0.3), 1, 1]];
  const A = advByHand;
  assert(A[0][2] > 0 && A[1][0] < 0);
  const tokenLoss = (i: number, t: number) =>
    -Math.min(rho[i][t] * A[i][t], Math.min(Math.max(rho[i][t], 0.8), 1.2) * A[i][t]);
  const expected = 0.5 * ((tokenLoss(0, 0) + tokenLoss(0, 1) + tokenLoss(0, 2)) / 3 +
    (tokenLoss(1, 0) + tokenLoss(1, 1)) / 2);
  // d/dlogp of -rho A is -rho A; a clipped token contributes nothing; each is scaled by 1 / (B n_i).
  const gradByHand = [
    [-rho[0][0] * A[0][0] / 6, -rho[0][1] * A[0][1] / 6, 0],
    [0, -rho[1][1] * A[1][1] / 4, 0],
  ];
  const x = tf.tensor2d(cur);
  const f = (lp: tf.Tensor2D) => ppoClipLoss({ logProbs: lp, oldLogProbs: oldLp, advantages: A, mask });
  const { value, grad } = tf.valueAndGrad(f)(x);
  assertAlmostEquals(value.dataSync()[0], expected, 1e-5);
  close(grad.arraySync() as number[][], gradByHand, 1e-5);
  // With the clip, the two out-of-range tokens are "clipped": 2 of 5 response tokens lie outside.
  assertAlmostEquals(clipFraction(cur, oldLp, mask, 0.2), 2 / 5, 1e-12);
  assertAlmostEquals(meanKl(cur, refLp, mask), (0.2 - 0.1 + 0.8 - 0.3 - 0.2) / 5, 1e-12);
  // Without clipping (huge eps) every token has gradient -rho A / (B n_i), the clipped ones included.
  const g2 = tf.grad((lp: tf.Tensor) =>
    ppoClipLoss({ logProbs: lp as tf.Tensor2D, oldLogProbs: oldLp, advantages: A, mask, clipEps: 100 })
  )(x);
  const g2Hand = [
    [-rho[0][0] * A[0][0] / 6, -rho[0][1] * A[0][1] / 6, -rho[0][2] * A[0][2] / 6],
    [-rho[1][0] * A[1][0] / 4, -rho[1][1] * A[1][1] / 4, 0],
  ];
  close(g2.arraySync() as number[][], g2Hand, 1e-5);
  tf.dispose([x, value, grad, g2]);
});

Deno.test("rl loss: GRPO normalises each group's rewards and adds beta k3 to the loss", () => {
  const m = [[1, 1], [1, 0], [1, 1], [1, 1]];
  const group = ["a", "a", "b", "b"];
  // Group a: rewards 1 and 0, mean 0.5, sample std sqrt(0.5); group b: both 1, std 0: advantage 0.
  const a = 0.5 / (Math.sqrt(0.5) + 1e-4);
  const advHand = [[a, a], [-a, 0], [0, 0], [0, 0]];
  close(groupNormalised([1, 0, 1, 1], group, m), advHand, 1e-9);
  const zeros = m.map((r) => r.map(() => -1));
  close(
    advantages({
      estimator: "grpo",
      group,
      mask: m,
      oldLogProbs: zeros,
      refLogProbs: zeros,
      outcome: [1, 0, 1, 1],
    }),
    advHand,
    1e-9,
  );
  // The loss at logp = old (ratio 1) with the KL term: -A + beta (e^(ref-logp) - (ref-logp) - 1).
  const old = [[-1, -2], [-0.5, 0], [-1, -1], [-3, -0.2]];
  const ref = [[-1.5, -2], [-0.5, 0], [-0.7, -1], [-3, -0.4]];
  const beta = 0.01;
  const k3 = (i: number, t: number) => Math.exp(ref[i][t] - old[i][t]) - (ref[i][t] - old[i][t]) - 1;
  const tok = (i: number, t: number) => -advHand[i][t] + beta * k3(i, t);
  const expected = ((tok(0, 0) + tok(0, 1)) / 2 + tok(1, 0) + (tok(2, 0) + tok(2, 1)) / 2 +
    (tok(3, 0) + tok(3, 1)) / 2) / 4;
  // Gradient: (-A + beta (1 - e^(ref - logp))) / (B n_i).
  const dk3 = (i: number, t: number) => beta * (1 - Math.exp(ref[i][t] - old[i][t]));
  const gradHand = [
    [(-a + dk3(0, 0)) / 8, (-a + dk3(0, 1)) / 8],
    [(a + dk3(1, 0)) / 4, 0],
    [dk3(2, 0) / 8, dk3(2, 1) / 8],
    [dk3(3, 0) / 8, dk3(3, 1) / 8],
  ];
  const x = tf.tensor2d(old);
  const { value, grad } = tf.valueAndGrad((lp: tf.Tensor2D) =>
    ppoClipLoss({
      logProbs: lp,
      oldLogProbs: old,
      advantages: advHand,
      mask: m,
      kl: { refLogProbs: ref, beta },
    })
  )(x);
  assertAlmostEquals(value.dataSync()[0], expected, 1e-6);
  close(grad.arraySync() as number[][], gradHand, 1e-6);
  tf.dispose([x, value, grad]);
});

Deno.test("rl loss: a rollout without response tokens is refused", () => {
  let threw = false;
  try {
    tokenRewards({ mask: [[0, 0]], oldLogProbs: [[0, 0]], refLogProbs: [[0, 0]], outcome: [1], beta: 0.01 });
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert(threw);
});

Deno.test("rl loss: sequenceLogProbs are the model's log-softmax at each response token, 0 elsewhere", () => {
  const c = tinyConfig({ vocabSize: 32 });
  const params = initParams(c, Rng.seeded(8));
  const ids = [[1, 5, 7, 9, 2], [3, 4, 6, 0, 0]];
  const m = [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]];
  const lp = sequenceLogProbs(params, c, ids, m);
  const got = lp.arraySync() as number[][];
  // By hand from the full forward pass: log softmax of row t - 1 at the token of position t.
  const logits = forward(params, c, tf.tensor2d(ids, [2, 5], "int32")).arraySync() as number[][][];
  ids.forEach((row, i) =>
    row.forEach((token, t) => {
      if (m[i][t] === 0) return assertEquals(got[i][t], 0);
      const z = logits[i][t - 1];
      const max = Math.max(...z);
      const lse = max + Math.log(z.reduce((s, x) => s + Math.exp(x - max), 0));
      assertAlmostEquals(got[i][t], z[token] - lse, 1e-5, `[${i}][${t}]`);
    })
  );
  // Differentiable: the PPO loss on these log-probs has a gradient for the LM head and the embedding.
  const old = got.map((row) => row.map((x) => x - 0.05));
  const adv = m.map((row, i) => row.map((x) => x * (i === 0 ? 1 : -1)));
  const vars = [params.get("lm_head.weight")!, params.get("model.embed_tokens.weight")!];
  const { grads } = tf.variableGrads(
    () =>
      ppoClipLoss({
        logProbs: sequenceLogProbs(params, c, ids, m),
        oldLogProbs: old,
        advantages: adv,
        mask: m,
      }),
    vars,
  );
  assertEquals(Object.keys(grads).length, 2);
  for (const g of Object.values(grads)) assert((g.dataSync() as Float32Array).some((x) => x !== 0));
  tf.dispose([lp, ...Object.values(grads)]);
  disposeParams(params);
});
