/**
 * One optimizer step: gradients of the token-weighted loss accumulated over microbatches, global-norm
 * clipping, then AdamW.
 *
 * Accumulation is exact in the sense that matters: every microbatch's loss sum(w * ce) is divided by the
 * total weight of ALL microbatches, so the summed gradients equal the gradient of one big batch with the
 * normalisation of src/train/loss.ts (up to float summation order).
 */
import * as tf from "@tensorflow/tfjs";
import { type Reading, runReading, runReadingAsync } from "../backend/webgpu.ts";
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

/**
 * The step as a program that yields the tensors it reads next (src/backend/webgpu.ts): gradients are
 * computed on the active backend, summed and clipped on the host, and AdamW updates the parameters there.
 */
function* stepProgram(
  params: Params,
  config: ModelConfig,
  optimizer: AdamW,
  microbatches: ReadonlyArray<Microbatch>,
  options: StepOptions,
): Reading<StepResult> {
  const flats = microbatches.map(flatten);
  // The LM head is applied only where the next token has a positive weight (same loss, less work), and
  // fused with the loss chunk by chunk (./head_loss.ts), so no step holds [tokens x vocabulary] logits.
  const used = flats.map((f) => weightedPositions(f.ids, f.weights, f.batch, f.seqLen));
  const tokens = used.reduce((sum, u) => sum + u.weights.reduce((a, b) => a + b, 0), 0);
  if (!(tokens > WEIGHT_EPS)) return { loss: 0, gradNorm: 0, tokens, applied: false };

  const acc = gradientAccumulator(params);
  let loss = 0;
  for (let i = 0; i < flats.length; i++) {
    const f = flats[i];
    const { rows, targets, weights } = used[i];
    if (rows.length === 0) continue;
    const computed = acc.compute(() => {
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
    let collected = false;
    try {
      yield [computed.value, ...Object.values(computed.grads)];
      loss += acc.collect(computed);
      collected = true;
    } finally {
      if (!collected) acc.release(computed);
    }
  }
  // AdamW reads the parameters' current values on the host.
  yield optimizer.variables();
  const { gradNorm, applied } = applyGradients(optimizer, acc.grads, loss, options);
  return { loss, gradNorm, tokens, applied };
}

/** One optimizer step, on a backend that reads synchronously (every one but webgpu). */
export const optimizerStep = (
  params: Params,
  config: ModelConfig,
  optimizer: AdamW,
  microbatches: ReadonlyArray<Microbatch>,
  options: StepOptions,
): StepResult => runReading(stepProgram(params, config, optimizer, microbatches, options));

/**
 * The same step on any backend, webgpu included: it awaits each read. `around` wraps every synchronous
 * stretch of the step (the training loop sets LoRA dropout's rng there, src/model/lora.ts).
 */
export const optimizerStepAsync = (
  params: Params,
  config: ModelConfig,
  optimizer: AdamW,
  microbatches: ReadonlyArray<Microbatch>,
  options: StepOptions,
  around?: <A>(f: () => A) => A,
): Promise<StepResult> =>
  runReadingAsync(stepProgram(params, config, optimizer, microbatches, options), around);

/** A loss and its gradients, computed and not yet read. */
export interface ComputedGradients {
  readonly value: tf.Scalar;
  readonly grads: tf.NamedTensorMap;
}

/**
 * Gradients of the trainable parameters (with a LoRA adapter the frozen base weights get none), summed
 * into `grads` on the host. `compute` runs a scalar loss and its gradients in a tf.tidy without reading
 * them (a program yields them first, for webgpu); `collect` reads them into `grads`, disposes them and
 * returns the loss's value; `add` is both, for backends that read synchronously.
 */
export const gradientAccumulator = (params: Params): {
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly compute: (loss: () => tf.Scalar) => ComputedGradients;
  readonly collect: (computed: ComputedGradients) => number;
  readonly release: (computed: ComputedGradients) => void;
  readonly add: (loss: () => tf.Scalar) => number;
} => {
  const names = [...params].filter(([, v]) => v.trainable).map(([name]) => name);
  const variables = names.map((n) => params.get(n)!);
  const nameOf = new Map(variables.map((v, i) => [v.name, names[i]]));
  const grads = new Map(variables.map((v, i) => [names[i], new Float32Array(v.size)]));
  const compute = (loss: () => tf.Scalar): ComputedGradients =>
    tf.tidy(() => tf.variableGrads(loss, variables));
  const release = (computed: ComputedGradients) => {
    computed.value.dispose();
    Object.values(computed.grads).forEach((t) => t.dispose());
  };
  const collect = (computed: ComputedGradients): number => {
    try {
      for (const [varName, tensor] of Object.entries(computed.grads)) {
        const acc = grads.get(nameOf.get(varName)!)!, data = tensor.dataSync();
        for (let j = 0; j < acc.length; j++) acc[j] += data[j];
      }
      return computed.value.dataSync()[0];
    } finally {
      release(computed);
    }
  };
  return { grads, compute, collect, release, add: (loss) => collect(compute(loss)) };
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
