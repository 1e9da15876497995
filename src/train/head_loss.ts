/**
 * The LM head and the token-weighted loss fused, computed chunk by chunk of rows: the idea of Cut
 * Cross-Entropy (Wijmans et al., 2024) and Liger's fused linear cross entropy, written here for the
 * project's own kernels.
 *
 * Why: with a real vocabulary the logits are the largest tensor of a step. [tokens x vocabulary] logits,
 * their softmax and their gradient took 5.2 GB at 16 x 192 tokens with Qwen2's 151,646 tokens, for a model
 * whose weights are 80 MB. Every objective (./objectives.ts) depends on a row's logits only through the gold
 * token's log-probability l = z_y - logsumexp(z), so a row needs only its log-sum-exp and its gold logit,
 * and the gradient with respect to its logits is c * (softmax(z) - onehot(y)) with
 * c = (w / normalizer) * -d loss / d l. Per chunk of rows this file computes the logits h W^T (one
 * product), their exponentials once, the loss terms, and turns the chunk in place into its gradient rows,
 * which go straight into dH = G W and dW += G^T h (two products). The chunk is then reused: memory is one
 * chunk of logits (CHUNK_ELEMENTS floats) plus dH and dW, whatever the number of tokens.
 *
 * Training asks for the gradient eagerly: the forward pass already has the exponentials, so computing the
 * gradient there costs no second pass over the logits (the unfused kernel took exp twice). Callers that
 * only want the loss (evaluation, `score`) pass `eagerGradient: false`; a gradient requested later anyway
 * is then recomputed from the inputs.
 *
 * It reads its inputs' values and computes in JavaScript (with BLAS products where one is installed,
 * src/backend/matmul.ts), so on the "tensorflow" backend the LM head runs on the CPU. On a backend whose
 * tensors cannot be read synchronously (webgpu, src/backend/webgpu.ts) `headLoss` and `goldLogProbs`
 * compute the same chunked formulation with stock tfjs ops instead (`headLossOps`, `goldLogProbsOps`),
 * so the head runs on the device and nothing is read back inside the gradient tape.
 */
import * as tf from "@tensorflow/tfjs";
import { stridedGemm } from "../backend/matmul.ts";
import { type Reading, readsSynchronously, runReading, runReadingAsync } from "../backend/webgpu.ts";
import { matmulNT } from "../model/kernels.ts";
import type { ModelConfig } from "../model/config.ts";
import { headInputAt, lmHeadWeight } from "../model/model.ts";
import type { Params } from "../model/params.ts";
import { pad, type Sequence } from "./batches.ts";
import {
  checkLossInputs,
  type LossOptions,
  objectiveOfLogProb,
  WEIGHT_EPS,
  type WeightedLoss,
  weightedPositions,
} from "./loss.ts";
import { type Objective, objectives } from "./objectives.ts";

type F32 = Float32Array;

/** Floats of logits held at once: 64 MB (110 rows of a 151k vocabulary, 1365 of GPT-2's 49k). */
export const CHUNK_ELEMENTS = 1 << 24;

export interface HeadLossOptions extends LossOptions {
  /** Rows per chunk; default CHUNK_ELEMENTS / vocab (at least 1). */
  readonly chunkRows?: number;
  /**
   * Compute the gradient during the forward pass (default true, for training). With false the forward
   * pass computes the loss only, and a gradient requested later is recomputed from the inputs.
   */
  readonly eagerGradient?: boolean;
}

const valuesOf = (t: tf.Tensor): F32 => {
  if (t.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${t.dtype}`);
  // On the cpu backend the tensor's own buffer (no copy): read it, never write it.
  return t.dataSync() as F32;
};

interface HeadPass {
  /** log-sum-exp of each row's logits (float64). */
  readonly lse: Float64Array;
  /** Each row's gold logit; NaN where the target is outside the vocabulary. */
  readonly gold: Float64Array;
  /** dLoss / dH [rows, dim] and dLoss / dW [vocab, dim], when a coefficient function was given. */
  readonly dh?: F32;
  readonly dw?: F32;
}

/**
 * One walk over the logits h W^T (h [rows, dim], w [vocab, dim]) in chunks of `chunkRows` rows. With
 * `coefOf` (row, gold log-probability) -> c, also the gradient of sum_i loss_i where
 * d loss_i / d z_i = c_i * (softmax(z_i) - onehot(y_i)).
 */
const headPass = (
  h: F32,
  w: F32,
  rows: number,
  vocab: number,
  dim: number,
  targets: Int32Array,
  chunkRows: number,
  coefOf?: (row: number, logProb: number) => number,
): HeadPass => {
  const lse = new Float64Array(rows), gold = new Float64Array(rows).fill(NaN);
  const dh = coefOf ? new Float32Array(rows * dim) : undefined;
  const dw = coefOf ? new Float32Array(vocab * dim) : undefined;
  const buf = new Float32Array(Math.min(chunkRows, rows) * vocab);
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const n = Math.min(chunkRows, rows - r0);
    const hc = h.subarray(r0 * dim, (r0 + n) * dim);
    logitsInto(buf, hc, w, n, vocab, dim);
    let any = false;
    for (let i = 0; i < n; i++) {
      const o = i * vocab, row = r0 + i, t = targets[row];
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) if (buf[o + v] > max) max = buf[o + v];
      if (t >= 0 && t < vocab) gold[row] = buf[o + t];
      let sum = 0;
      if (coefOf) {
        // Keep the exponentials: they become the softmax row of the gradient below.
        for (let v = 0; v < vocab; v++) {
          const e = Math.exp(buf[o + v] - max);
          buf[o + v] = e;
          sum += e;
        }
      } else {
        for (let v = 0; v < vocab; v++) sum += Math.exp(buf[o + v] - max);
      }
      lse[row] = max + Math.log(sum);
      if (!coefOf) continue;
      const c = coefOf(row, gold[row] - lse[row]);
      if (c === 0) {
        buf.fill(0, o, o + vocab); // exactly zero where the weight is zero
        continue;
      }
      any = true;
      const s = c / sum;
      for (let v = 0; v < vocab; v++) buf[o + v] *= s;
      buf[o + t] -= c;
    }
    if (any) gradientInto(dh!, dw!, buf, hc, w, r0, n, vocab, dim);
  }
  return { lse, gold, dh, dw };
};

/** out [n, vocab] = hc [n, dim] w^T. */
const logitsInto = (out: F32, hc: F32, w: F32, n: number, vocab: number, dim: number) => {
  const gemm = stridedGemm(n, vocab, dim);
  if (gemm) {
    gemm({
      transA: false,
      transB: true,
      m: n,
      n: vocab,
      k: dim,
      a: hc,
      lda: dim,
      b: w,
      ldb: dim,
      beta: 0,
      c: out,
      ldc: vocab,
    });
  } else {
    out.set(matmulNT(hc, w, n, vocab, dim));
  }
};

/** dh[r0 .. r0 + n) = g w and dw += g^T hc, for the gradient rows g [n, vocab] of one chunk. */
const gradientInto = (
  dh: F32,
  dw: F32,
  g: F32,
  hc: F32,
  w: F32,
  r0: number,
  n: number,
  vocab: number,
  dim: number,
) => {
  const dhc = dh.subarray(r0 * dim, (r0 + n) * dim);
  const gemmH = stridedGemm(n, dim, vocab);
  if (gemmH) {
    gemmH({
      transA: false,
      transB: false,
      m: n,
      n: dim,
      k: vocab,
      a: g,
      lda: vocab,
      b: w,
      ldb: dim,
      beta: 0,
      c: dhc,
      ldc: dim,
    });
  } else {
    for (let i = 0; i < n; i++) {
      const acc = new Float64Array(dim);
      for (let v = 0; v < vocab; v++) {
        const x = g[i * vocab + v];
        if (x === 0) continue;
        for (let d = 0; d < dim; d++) acc[d] += x * w[v * dim + d];
      }
      for (let d = 0; d < dim; d++) dhc[i * dim + d] = acc[d];
    }
  }
  const gemmW = stridedGemm(vocab, dim, n);
  if (gemmW) {
    gemmW({
      transA: true,
      transB: false,
      m: vocab,
      n: dim,
      k: n,
      a: g,
      lda: vocab,
      b: hc,
      ldb: dim,
      beta: 1,
      c: dw,
      ldc: dim,
    });
  } else {
    for (let i = 0; i < n; i++) {
      for (let v = 0; v < vocab; v++) {
        const x = g[i * vocab + v];
        if (x === 0) continue;
        for (let d = 0; d < dim; d++) dw[v * dim + d] += x * hc[i * dim + d];
      }
    }
  }
};

const chunkRowsOf = (vocab: number, requested?: number): number => {
  const n = requested ?? Math.floor(CHUNK_ELEMENTS / vocab);
  if (!(Number.isInteger(n) && n >= 1) && requested !== undefined) {
    throw new RangeError(`chunkRows must be a positive integer, got ${requested}`);
  }
  return Math.max(1, n);
};

const checkShapes = (hidden: tf.Tensor2D, headWeight: tf.Tensor2D): [number, number, number] => {
  if (hidden.rank !== 2 || headWeight.rank !== 2 || hidden.shape[1] !== headWeight.shape[1]) {
    throw new RangeError(
      `head loss: hidden [${hidden.shape}] and head weight [${headWeight.shape}] do not multiply`,
    );
  }
  return [hidden.shape[0], headWeight.shape[0], hidden.shape[1]];
};

/** Checks the inputs of a head loss and resolves its options (shared by `headLoss` and `headLossOps`). */
const settle = (
  hidden: tf.Tensor2D,
  headWeight: tf.Tensor2D,
  targets: Int32Array,
  weights: Float32Array,
  options: HeadLossOptions,
) => {
  const [rows, vocab, dim] = checkShapes(hidden, headWeight);
  const weightSum = checkLossInputs(rows, vocab, targets, weights);
  return {
    rows,
    vocab,
    dim,
    weightSum,
    normalizer: options.normalizer ?? Math.max(weightSum, WEIGHT_EPS),
    objective: options.objective ?? "ce",
    chunkRows: chunkRowsOf(vocab, options.chunkRows),
  };
};

/**
 * The token-weighted loss of logits = hidden headWeight^T, without ever holding those logits whole:
 * equal to weightedTokenLoss(linear(hidden, headWeight), targets, weights, options) (./loss.ts), and
 * differentiable with respect to both `hidden` [rows, dim] (the final norm's output) and `headWeight`
 * [vocab, dim] (the LM head, or the token embedding when tied: its gradient then adds to the
 * embedding's own on the tape).
 */
export const headLoss = (
  hidden: tf.Tensor2D,
  headWeight: tf.Tensor2D,
  targets: Int32Array,
  weights: Float32Array,
  options: HeadLossOptions = {},
): WeightedLoss => {
  if (!readsSynchronously()) return headLossOps(hidden, headWeight, targets, weights, options);
  const settled = settle(hidden, headWeight, targets, weights, options);
  const { rows, vocab, dim, weightSum, normalizer, objective, chunkRows } = settled;
  const { value, slope } = objectives[objective];
  // c_i = (w_i / normalizer) * -d loss / d l (1 for cross entropy).
  const coefOf = (i: number, l: number) =>
    weights[i] > 0 ? (weights[i] / normalizer) * (objective === "ce" ? 1 : -slope(l)) : 0;
  const perToken = new Float32Array(rows);
  const op = tf.customGrad((ht, wt) => {
    const hs = valuesOf(ht as tf.Tensor), ws = valuesOf(wt as tf.Tensor);
    const pass = headPass(
      hs,
      ws,
      rows,
      vocab,
      dim,
      targets,
      chunkRows,
      options.eagerGradient === false ? undefined : coefOf,
    );
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const ce = pass.lse[i] - pass.gold[i];
      if (!Number.isNaN(ce)) perToken[i] = ce;
      if (weights[i] > 0) total += weights[i] * (objective === "ce" ? ce : value(-ce));
    }
    return {
      value: tf.scalar(total / normalizer),
      gradFunc: (dy: tf.Tensor) => {
        const { dh, dw } = pass.dh ? pass : headPass(hs, ws, rows, vocab, dim, targets, chunkRows, coefOf);
        // Scaled into new arrays: the eager pass's own stay as computed, whatever asks for them.
        const s = dy.dataSync()[0];
        const scaled = (a: F32) => (s === 1 ? a : a.map((x) => x * s));
        return [tf.tensor2d(scaled(dh!), [rows, dim]), tf.tensor2d(scaled(dw!), [vocab, dim])];
      },
    };
  });
  return { loss: op(hidden, headWeight) as tf.Scalar, weightSum, perToken };
};

/**
 * log softmax(hidden headWeight^T)[i, targets[i]] for every row, in float64, chunk by chunk (what
 * `score` prints); NaN where a target is outside the vocabulary. Not differentiable.
 */
export const goldLogProbs = (
  hidden: tf.Tensor2D,
  headWeight: tf.Tensor2D,
  targets: Int32Array,
  chunkRows?: number,
): Float64Array => {
  const [rows, vocab, dim] = checkShapes(hidden, headWeight);
  if (targets.length !== rows) {
    throw new RangeError(`goldLogProbs: ${rows} rows but ${targets.length} targets`);
  }
  if (!readsSynchronously()) {
    throw new Error(
      "goldLogProbs reads its inputs synchronously; on webgpu use goldLogProbsOps and await it",
    );
  }
  const pass = headPass(
    valuesOf(hidden),
    valuesOf(headWeight),
    rows,
    vocab,
    dim,
    targets,
    chunkRowsOf(vocab, chunkRows),
  );
  return pass.gold.map((g, i) => g - pass.lse[i]);
};

// The same computations with stock tfjs ops, for backends that cannot read a tensor synchronously
// (webgpu). Per chunk: logits z = h W^T on the device, log-sum-exp and the gold logit, so that again only
// one chunk of logits is alive at a time (each chunk runs in its own tf.tidy).

/** -d loss / d l for each row's gold log-probability l, as tfjs ops (see ./objectives.ts, `slope`). */
const negSlopeOps = (objective: Objective, l: tf.Tensor1D): tf.Tensor1D => {
  switch (objective) {
    case "ce":
      return tf.onesLike(l);
    case "dft":
    case "tv":
      return tf.exp(l);
    case "chi2":
      return tf.exp(tf.neg(l));
    case "hellinger":
      return tf.exp(tf.div(l, 2));
    case "js": {
      const q = tf.exp(l);
      return tf.div(tf.mul(q, tf.sub(tf.log1p(q), l)), 2);
    }
  }
};

/** Row i of the flattened [n, vocab] chunk at its target (0 where the target is outside the vocabulary). */
const goldIndex = (targets: Int32Array, r0: number, n: number, vocab: number): tf.Tensor1D =>
  tf.tensor1d(
    Int32Array.from({ length: n }, (_, i) => {
      const t = targets[r0 + i];
      return i * vocab + (t >= 0 && t < vocab ? t : 0);
    }),
    "int32",
  );

/** Gold log-probabilities [rows] of logits h W^T, chunk by chunk, as a tensor (0 where the target is invalid). */
const goldLogProbTensor = (
  h: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: Int32Array,
  chunkRows: number,
): tf.Tensor1D => {
  const [rows, dim] = h.shape, vocab = w.shape[0];
  const parts: tf.Tensor1D[] = [];
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const n = Math.min(chunkRows, rows - r0);
    parts.push(tf.tidy(() => {
      const z = tf.matMul(tf.slice(h, [r0, 0], [n, dim]), w, false, true);
      const gold = tf.gather(tf.reshape(z, [-1]), goldIndex(targets, r0, n, vocab));
      return tf.sub(gold, tf.logSumExp(z, 1)) as tf.Tensor1D;
    }));
  }
  const valid = tf.tensor1d(Array.from(targets, (t) => t >= 0 && t < vocab ? 1 : 0), "bool");
  const l = parts.length === 1 ? parts[0] : tf.concat(parts);
  const out = tf.where(valid, l, tf.zerosLike(l)) as tf.Tensor1D;
  for (const t of [...parts, l, valid]) if (t !== out) t.dispose();
  return out;
};

/**
 * `headLoss` written with stock tfjs ops only (what it runs on webgpu), in float32 on the device. The
 * same loss and gradients within float32 rounding; `perToken` is not filled here (it would need a
 * synchronous read, and no caller of the fused loss uses it) and stays 0.
 */
export const headLossOps: typeof headLoss = (hidden, headWeight, targets, weights, options = {}) => {
  const settled = settle(hidden, headWeight, targets, weights, options);
  const { rows, vocab, dim, weightSum, normalizer, objective, chunkRows } = settled;
  const counts = Float32Array.from(weights, (x) => (x > 0 ? 1 : 0));
  const op = tf.customGrad((ht, wt, save) => {
    const h = ht as tf.Tensor2D, w = wt as tf.Tensor2D;
    const l = goldLogProbTensor(h, w, targets, chunkRows);
    // Rows that do not count see l = 0, so no objective overflows there (0 * Infinity = NaN).
    const lc = tf.mul(l, tf.tensor1d(counts)) as tf.Tensor1D;
    const value = tf.div(tf.sum(tf.mul(objectiveOfLogProb(objective, lc), tf.tensor1d(weights))), normalizer);
    (save as tf.GradSaveFunc)([h, w, lc]);
    return {
      value: value as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws, ls] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        // c_i = dy * (w_i / normalizer) * -d loss / d l_i; exactly 0 where the weight is 0.
        const coef = tf.mul(
          tf.mul(negSlopeOps(objective, ls), tf.tensor1d(weights.map((x) => x / normalizer))),
          dy,
        ) as tf.Tensor1D;
        const dhParts: tf.Tensor2D[] = [];
        let dw: tf.Tensor2D = tf.zerosLike(ws);
        for (let r0 = 0; r0 < rows; r0 += chunkRows) {
          const n = Math.min(chunkRows, rows - r0);
          const [dhc, next] = tf.tidy(() => {
            const hc = tf.slice(hs, [r0, 0], [n, dim]);
            const probs = tf.softmax(tf.matMul(hc, ws, false, true));
            const oneHot = tf.oneHot(
              tf.tensor1d(Int32Array.from({ length: n }, (_, i) => Math.max(0, targets[r0 + i])), "int32"),
              vocab,
            );
            const g = tf.mul(tf.sub(probs, oneHot), tf.reshape(tf.slice(coef, [r0], [n]), [n, 1]));
            return [tf.matMul(g, ws), tf.add(dw, tf.matMul(g, hc, true, false))] as [
              tf.Tensor2D,
              tf.Tensor2D,
            ];
          });
          dw.dispose();
          dw = next;
          dhParts.push(dhc);
        }
        const dh = dhParts.length === 1 ? dhParts[0] : tf.concat(dhParts);
        return [dh, dw];
      },
    };
  });
  return { loss: op(hidden, headWeight) as tf.Scalar, weightSum, perToken: new Float32Array(rows) };
};

/**
 * `goldLogProbs` with stock tfjs ops and an asynchronous read, for every backend (webgpu included):
 * log softmax(hidden headWeight^T)[i, targets[i]] per row; NaN where a target is outside the vocabulary.
 */
export const goldLogProbsOps = async (
  hidden: tf.Tensor2D,
  headWeight: tf.Tensor2D,
  targets: Int32Array,
  chunkRows?: number,
): Promise<Float64Array> => {
  const [rows, vocab] = checkShapes(hidden, headWeight);
  if (targets.length !== rows) {
    throw new RangeError(`goldLogProbs: ${rows} rows but ${targets.length} targets`);
  }
  const l = goldLogProbTensor(hidden, headWeight, targets, chunkRowsOf(vocab, chunkRows));
  try {
    const values = await l.data();
    return Float64Array.from(values, (x, i) => (targets[i] >= 0 && targets[i] < vocab ? x : NaN));
  } finally {
    l.dispose();
  }
};

/**
 * Teacher-forced loss of `sequences` under a model, without gradients: the LM head is applied only at the
 * positions that predict a weighted token, fused with the loss chunk by chunk (the full logits of a batch
 * would be [rows x length, vocabulary], gigabytes for a 50k vocabulary). Returns the weighted sum of the
 * per-token losses and the total weight, so that callers can sum over batches; both are 0 when no token
 * carries weight. Evaluation's key loss and the pretraining held-out loss use it.
 */
export const teacherForcedLoss = (
  params: Params,
  config: ModelConfig,
  sequences: ReadonlyArray<Sequence>,
): { readonly lossSum: number; readonly weightSum: number } =>
  runReading(teacherForced(params, config, sequences));

/** `teacherForcedLoss` on any backend, webgpu included: it awaits its read. */
export const teacherForcedLossAsync = (
  params: Params,
  config: ModelConfig,
  sequences: ReadonlyArray<Sequence>,
): Promise<{ readonly lossSum: number; readonly weightSum: number }> =>
  runReadingAsync(teacherForced(params, config, sequences));

function* teacherForced(
  params: Params,
  config: ModelConfig,
  sequences: ReadonlyArray<Sequence>,
): Reading<{ readonly lossSum: number; readonly weightSum: number }> {
  const mb = pad(sequences, 0);
  const at = weightedPositions(mb.ids, mb.weights, mb.batch, mb.seqLen);
  if (at.rows.length === 0) return { lossSum: 0, weightSum: 0 };
  let weightSum = 0;
  const loss = tf.tidy(() => {
    const ids = tf.tensor2d(mb.ids, [mb.batch, mb.seqLen], "int32");
    const l = headLoss(
      headInputAt(params, config, ids, at.rows),
      lmHeadWeight(params, config),
      at.targets,
      at.weights,
      { eagerGradient: false },
    );
    weightSum = l.weightSum;
    return l.loss;
  });
  try {
    yield [loss];
    return { lossSum: loss.dataSync()[0] * weightSum, weightSum };
  } finally {
    loss.dispose();
  }
}
