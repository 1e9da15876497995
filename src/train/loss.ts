/**
 * The token-weighted loss (cross entropy, or another per-token objective), the loss of both SFTKey
 * stages: the data pipeline turns "train on the whole response" and "train on the key span only" into
 * per-token float weights, and this file and ./head_loss.ts are where they meet the logits. Training,
 * evaluation and `score` use ./head_loss.ts, which applies the LM head and this loss chunk by chunk
 * without holding [tokens x vocabulary] logits; `weightedTokenLoss` here takes logits already computed
 * (and is the unfused formulation its tests compare against).
 *
 * Normalisation: loss = sum_i(w_i * ce_i) / max(sum_i w_i, eps) over every position of the (micro)batch.
 * With 0/1 weights this is exactly HF's mean over the non-ignored (label != -100) tokens. A caller that
 * accumulates gradients over several microbatches passes the total weight of the whole batch as
 * `normalizer`, so the summed microbatch losses (and gradients) equal those of one big batch.
 *
 * On the cpu backend this is one tfjs op with a hand-written gradient: log-softmax through stock tfjs ops
 * broadcasts over a size-1 axis, which that backend does very slowly (see src/model/kernels.ts); other
 * backends get the stock formulation (`referenceTokenLoss`). Either way the gradient with respect to
 * the logits of a position with weight 0 is exactly 0.
 *
 * Other per-token objectives (DFT, f-divergences; ./objectives.ts) go through the same kernel: each is a
 * function of log q only, so its gradient is the CE row scaled by -d loss / d log q, computed exactly.
 */
import * as tf from "@tensorflow/tfjs";
import { type Objective, objectives } from "./objectives.ts";

/** Floor of the normaliser, so a batch with no weighted token has loss 0 rather than NaN. */
export const WEIGHT_EPS = 1e-8;

export interface WeightedLoss {
  /** sum(w * loss) / normalizer (loss: the objective, CE by default), differentiable w.r.t. the logits. */
  readonly loss: tf.Scalar;
  /** sum(w) over the positions that count. */
  readonly weightSum: number;
  /** Cross entropy per position (nats), weight not applied; 0 where there is no valid target. */
  readonly perToken: Float32Array;
}

export interface LossOptions {
  /** Divide by this instead of max(sum(w), eps); for gradient accumulation across microbatches. */
  readonly normalizer?: number;
  /**
   * The per-token function of the gold log-probability (./objectives.ts); default "ce". `perToken`
   * stays the cross entropy whatever the objective.
   */
  readonly objective?: Objective;
}

const ints = (x: tf.Tensor | Int32Array): Int32Array =>
  x instanceof Int32Array ? x : Int32Array.from(x.dataSync());
const floats = (x: tf.Tensor | Float32Array): Float32Array =>
  x instanceof Float32Array ? x : Float32Array.from(x.dataSync());

/**
 * Checks one target and weight per row (weights finite and >= 0; a target with a positive weight inside
 * the vocabulary) and returns the sum of the weights. RangeError naming the row otherwise.
 */
export const checkLossInputs = (rows: number, vocab: number, tgt: Int32Array, w: Float32Array): number => {
  if (tgt.length !== rows || w.length !== rows) {
    throw new RangeError(`loss: ${rows} logits rows but ${tgt.length} targets and ${w.length} weights`);
  }
  let weightSum = 0;
  for (let i = 0; i < rows; i++) {
    if (!(w[i] >= 0 && Number.isFinite(w[i]))) throw new RangeError(`loss: weight ${w[i]} at row ${i}`);
    if (w[i] > 0 && !(tgt[i] >= 0 && tgt[i] < vocab)) {
      throw new RangeError(`loss: target ${tgt[i]} at row ${i} is outside the vocabulary [0, ${vocab})`);
    }
    weightSum += w[i];
  }
  return weightSum;
};

/**
 * The token-weighted loss of an objective (cross entropy by default) on `logits` [..., vocab] against `targets` and `weights` with one entry per
 * logits row (e.g. [batch, time]). weights[i] is the weight of predicting targets[i] from row i. Weights
 * must be finite and >= 0; a target may be anything (e.g. -100) where its weight is 0.
 */
export const weightedTokenLoss = (
  logits: tf.Tensor,
  targets: tf.Tensor | Int32Array,
  weights: tf.Tensor | Float32Array,
  options: LossOptions = {},
): WeightedLoss => {
  const vocab = logits.shape[logits.shape.length - 1];
  const rows = logits.size / vocab;
  const tgt = ints(targets), w = floats(weights);
  const weightSum = checkLossInputs(rows, vocab, tgt, w);
  const normalizer = options.normalizer ?? Math.max(weightSum, WEIGHT_EPS);
  const objective = options.objective ?? "ce";
  if (tf.getBackend() !== "cpu") {
    return referenceTokenLoss(logits, tgt, w, normalizer, weightSum, objective);
  }
  const { value, slope } = objectives[objective];
  const perToken = new Float32Array(rows);
  const op = tf.customGrad((lt) => {
    const ls = (lt as tf.Tensor).dataSync() as Float32Array;
    const lse = new Float64Array(rows); // log-sum-exp per row, reused by the gradient
    // -d loss / d log q per row: the softmax-minus-one-hot row is scaled by it (1 for CE).
    const coef = new Float64Array(rows);
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const o = i * vocab;
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) if (ls[o + v] > max) max = ls[o + v];
      let sum = 0;
      for (let v = 0; v < vocab; v++) sum += Math.exp(ls[o + v] - max);
      lse[i] = max + Math.log(sum);
      if (tgt[i] >= 0 && tgt[i] < vocab) perToken[i] = lse[i] - ls[o + tgt[i]];
      if (w[i] > 0) {
        // CE reads perToken directly so that its loss is bit-identical to the plain CE kernel.
        total += w[i] * (objective === "ce" ? perToken[i] : value(-perToken[i]));
        coef[i] = objective === "ce" ? 1 : -slope(-perToken[i]);
      }
    }
    return {
      value: tf.scalar(total / normalizer),
      gradFunc: (dy: tf.Tensor) => {
        const scale = dy.dataSync()[0] / normalizer;
        const grad = new Float32Array(ls.length);
        for (let i = 0; i < rows; i++) {
          if (!(w[i] > 0)) continue; // exactly zero where the weight is zero
          const o = i * vocab, c = scale * w[i] * coef[i];
          for (let v = 0; v < vocab; v++) grad[o + v] = c * Math.exp(ls[o + v] - lse[i]);
          grad[o + tgt[i]] -= c;
        }
        return tf.tensor(grad, logits.shape, "float32");
      },
    };
  });
  return { loss: op(logits) as tf.Scalar, weightSum, perToken };
};

/**
 * The same loss from stock tfjs ops, for backends other than "cpu" (which run them natively) and as the
 * oracle of the tests. Arguments are already validated.
 */
export const referenceTokenLoss = (
  logits: tf.Tensor,
  targets: Int32Array,
  weights: Float32Array,
  normalizer: number,
  weightSum: number,
  objective: Objective = "ce",
): WeightedLoss => {
  const vocab = logits.shape[logits.shape.length - 1], rows = targets.length;
  const valid = (t: number) => t >= 0 && t < vocab;
  const [loss, picked] = tf.tidy(() => {
    const logProbs = tf.logSoftmax(tf.reshape(logits, [rows, vocab]));
    const oneHot = tf.oneHot(tf.tensor1d(targets.map((t) => valid(t) ? t : 0), "int32"), vocab);
    const picked = tf.sum(tf.mul(logProbs, oneHot), -1);
    // Rows that do not count see log q = 0, so no objective can overflow there (0 * Infinity = NaN).
    const counts = tf.tensor1d(weights.map((x) => (x > 0 ? 1 : 0)), "bool");
    const l = tf.where(counts, picked, tf.zerosLike(picked));
    const perRow = objectiveOfLogProb(objective, l);
    const loss = tf.div(tf.sum(tf.mul(perRow, tf.tensor1d(weights))), normalizer) as tf.Scalar;
    return [loss, picked];
  });
  // Read after the scope: tf.tidy would walk a returned typed array element by element (model.ts, tidyValues).
  const pickedValues = picked.dataSync();
  picked.dispose();
  const perToken = Float32Array.from(targets, (t, i) => valid(t) ? -pickedValues[i] : 0);
  return { loss, weightSum, perToken };
};

/** x, with no gradient flowing back through it (torch's detach). */
export const stopGradient = (x: tf.Tensor): tf.Tensor =>
  tf.customGrad((xt) => ({
    value: tf.clone(xt as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }))(x);

/** `objectives[objective].value` as differentiable tfjs ops on a tensor of gold log-probabilities. */
export const objectiveOfLogProb = (objective: Objective, l: tf.Tensor): tf.Tensor => {
  switch (objective) {
    case "ce":
      return tf.neg(l);
    case "dft":
      // sg(q): the identity with a zero gradient (no host read, so it runs on every backend).
      return tf.neg(tf.mul(stopGradient(tf.exp(l)), l));
    case "tv":
      return tf.sub(1, tf.exp(l));
    case "chi2":
      return tf.sub(tf.exp(tf.neg(l)), 1);
    case "hellinger":
      return tf.sub(2, tf.mul(2, tf.exp(tf.div(l, 2))));
    case "js": {
      const q = tf.exp(l);
      return tf.div(tf.add(tf.sub(2 * Math.LN2, tf.mul(tf.add(1, q), tf.log1p(q))), tf.mul(q, l)), 2);
    }
  }
};

/**
 * The causal-LM loss: logits [batch, time, vocab] at position t predict ids[t + 1]. `ids` and `weights`
 * are [batch, time] and aligned with each other: weights[b, t] is the weight on predicting ids[b, t]
 * (so weights[b, 0] never counts; nothing predicts the first token). `perToken` is aligned the same way
 * (perToken[b, t] is the loss of predicting ids[b, t]; 0 at t = 0).
 */
export const shiftedLoss = (
  logits: tf.Tensor3D,
  ids: tf.Tensor | Int32Array,
  weights: tf.Tensor | Float32Array,
  options: LossOptions = {},
): WeightedLoss => {
  const [batch, time] = logits.shape;
  const id = ints(ids), w = floats(weights);
  if (id.length !== batch * time || w.length !== batch * time) {
    throw new RangeError(
      `shiftedLoss: logits are [${batch}, ${time}, V] but ids/weights have ${id.length}/${w.length}`,
    );
  }
  // Row (b, t) of the logits predicts ids[b, t + 1]; the last position of each row predicts nothing.
  const targets = new Int32Array(batch * time).fill(-1);
  const shiftedWeights = new Float32Array(batch * time);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < time; t++) {
      targets[b * time + t] = id[b * time + t + 1];
      shiftedWeights[b * time + t] = w[b * time + t + 1];
    }
  }
  const result = weightedTokenLoss(logits, targets, shiftedWeights, options);
  const perToken = new Float32Array(batch * time);
  for (let b = 0; b < batch; b++) {
    for (let t = 1; t < time; t++) perToken[b * time + t] = result.perToken[b * time + t - 1];
  }
  return { loss: result.loss, weightSum: result.weightSum, perToken };
};

/** The positions a shifted loss actually uses (see `weightedPositions`). */
export interface WeightedPositions {
  /** Flattened logits rows b * time + t whose next token has a positive weight. */
  readonly rows: Int32Array;
  /** ids[b, t + 1] for each row. */
  readonly targets: Int32Array;
  /** weights[b, t + 1] for each row. */
  readonly weights: Float32Array;
}

/**
 * The (row, target, weight) triples of the causal-LM loss with a positive weight, for `logitsAt`:
 * weightedTokenLoss(logitsAt(.., rows), targets, weights) equals shiftedLoss(forward(..), ids,
 * weights) while computing logits only where they matter. ids/weights are [batch, time] row-major.
 */
export const weightedPositions = (
  ids: Int32Array,
  weights: Float32Array,
  batch: number,
  time: number,
): WeightedPositions => {
  const rows: number[] = [], targets: number[] = [], ws: number[] = [];
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < time; t++) {
      const w = weights[b * time + t + 1];
      if (w > 0) {
        rows.push(b * time + t);
        targets.push(ids[b * time + t + 1]);
        ws.push(w);
      }
    }
  }
  return { rows: Int32Array.from(rows), targets: Int32Array.from(targets), weights: Float32Array.from(ws) };
};
