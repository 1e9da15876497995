/**
 * One optimizer step: gradients of the token-weighted loss accumulated over microbatches, global-norm
 * clipping, then AdamW.
 *
 * Accumulation is exact in the sense that matters: every microbatch's loss sum(w * ce) is divided by the
 * total weight of ALL microbatches, so the summed gradients equal the gradient of one big batch with the
 * normalisation of src/train/loss.ts (up to float summation order).
 */
import * as tf from "@tensorflow/tfjs";
import type { ModelConfig } from "../model/config.ts";
import { headInputAt, lmHeadWeight, type Params } from "../model/model.ts";
import type { AdamW } from "./adamw.ts";
import { headLoss } from "./head_loss.ts";
import { WEIGHT_EPS, weightedPositions } from "./loss.ts";
import type { Objective } from "./objectives.ts";

/**
 * Token ids and per-token weights of `batch` rows of `seqLen` tokens, either flat row-major arrays or
 * one array per row. weights[b][t] is the weight on predicting ids[b][t] (weights[b][0] never counts).
 */
export type Microbatch =
  | {
    readonly ids: Int32Array;
    readonly weights: Float32Array;
    readonly batch: number;
    readonly seqLen: number;
  }
  | {
    readonly ids: ReadonlyArray<ReadonlyArray<number>>;
    readonly weights: ReadonlyArray<ReadonlyArray<number>>;
  };

export interface StepOptions {
  readonly lr: number;
  /** Clip the global gradient norm to this; 0 or Infinity disables clipping. */
  readonly clipNorm: number;
  /** The per-token objective (./objectives.ts); default "ce". */
  readonly objective?: Objective;
}

export interface StepResult {
  /** Weighted mean of the objective (cross entropy by default) over the whole batch, before the update. */
  readonly loss: number;
  /** Global L2 norm of the gradient before clipping. */
  readonly gradNorm: number;
  /** Total weight of the positions that count (sum of weights[b][t], t >= 1). */
  readonly tokens: number;
  /**
   * False when nothing changed: the loss or gradient was not finite (the caller should stop, see
   * NonFiniteLoss) or the batch had no weighted token. Parameters and optimizer state are then untouched.
   */
  readonly applied: boolean;
}

interface Flat {
  readonly ids: Int32Array;
  readonly weights: Float32Array;
  readonly batch: number;
  readonly seqLen: number;
}

const flatten = (mb: Microbatch): Flat => {
  if (mb.ids instanceof Int32Array) {
    const f = mb as Flat;
    if (f.ids.length !== f.batch * f.seqLen || f.weights.length !== f.ids.length) {
      throw new RangeError(`microbatch arrays do not match ${f.batch} x ${f.seqLen}`);
    }
    return f;
  }
  const rows = mb.ids as ReadonlyArray<ReadonlyArray<number>>;
  const wRows = mb.weights as ReadonlyArray<ReadonlyArray<number>>;
  const batch = rows.length, seqLen = rows[0]?.length ?? 0;
  if (wRows.length !== batch || rows.some((r, i) => r.length !== seqLen || wRows[i].length !== seqLen)) {
    throw new RangeError("microbatch rows must all have the same length as their weights");
  }
  return { ids: Int32Array.from(rows.flat()), weights: Float32Array.from(wRows.flat()), batch, seqLen };
};

export const optimizerStep = (
  params: Params,
  config: ModelConfig,
  optimizer: AdamW,
  microbatches: ReadonlyArray<Microbatch>,
  options: StepOptions,
): StepResult => {
  const flats = microbatches.map(flatten);
  // The LM head is applied only where the next token has a positive weight (same loss, less work), and
  // fused with the loss chunk by chunk (./head_loss.ts), so no step holds [tokens x vocabulary] logits.
  const used = flats.map((f) => weightedPositions(f.ids, f.weights, f.batch, f.seqLen));
  const tokens = used.reduce((sum, u) => sum + u.weights.reduce((a, b) => a + b, 0), 0);
  if (!(tokens > WEIGHT_EPS)) return { loss: 0, gradNorm: 0, tokens, applied: false };

  const acc = gradientAccumulator(params);
  let loss = 0;
  flats.forEach((f, i) => {
    const { rows, targets, weights } = used[i];
    if (rows.length === 0) return;
    loss += acc.add(() => {
      const ids = tf.tensor2d(f.ids, [f.batch, f.seqLen], "int32");
      return headLoss(
        headInputAt(params, config, ids, rows),
        lmHeadWeight(params, config),
        targets,
        weights,
        {
          normalizer: tokens,
          objective: options.objective,
        },
      ).loss;
    });
  });
  const { gradNorm, applied } = applyGradients(optimizer, acc.grads, loss, options);
  return { loss, gradNorm, tokens, applied };
};

/**
 * Gradients of the trainable parameters (with a LoRA adapter the frozen base weights get none), summed
 * over calls of `add`: each computes a scalar loss in a tf.tidy, adds its gradient to `grads` and returns
 * the loss's value.
 */
export const gradientAccumulator = (params: Params): {
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly add: (loss: () => tf.Scalar) => number;
} => {
  const names = [...params].filter(([, v]) => v.trainable).map(([name]) => name);
  const variables = names.map((n) => params.get(n)!);
  const nameOf = new Map(variables.map((v, i) => [v.name, names[i]]));
  const grads = new Map(variables.map((v, i) => [names[i], new Float32Array(v.size)]));
  const add = (loss: () => tf.Scalar): number =>
    tf.tidy(() => {
      const { value, grads: g } = tf.variableGrads(loss, variables);
      for (const [varName, tensor] of Object.entries(g)) {
        const acc = grads.get(nameOf.get(varName)!)!, data = tensor.dataSync();
        for (let j = 0; j < acc.length; j++) acc[j] += data[j];
      }
      return value.dataSync()[0];
    });
  return { grads, add };
};

/**
 * Global-norm clipping, then the optimizer's update. Nothing changes when the loss or the gradient norm
 * is not finite (`applied` false; the caller should stop, see NonFiniteLoss).
 */
export const applyGradients = (
  optimizer: AdamW,
  grads: ReadonlyMap<string, Float32Array>,
  loss: number,
  options: { readonly lr: number; readonly clipNorm: number },
): { readonly gradNorm: number; readonly applied: boolean } => {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const gradNorm = Math.sqrt(sq);
  if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) return { gradNorm, applied: false };
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  const clip = options.clipNorm > 0 ? Math.min(1, options.clipNorm / (gradNorm + 1e-6)) : 1;
  optimizer.step(grads, options.lr, clip);
  return { gradNorm, applied: true };
};
