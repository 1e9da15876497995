/**
 * AdamW (Loshchilov & Hutter), following torch.optim.AdamW: decoupled weight decay p *= 1 - lr * wd,
 * then the bias-corrected Adam update p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 *
 * Weight decay is applied to matrices only, never to 1-D tensors (the RMSNorm weights): decaying a norm
 * gain towards 0 rather than its init of 1 only hurts, the usual practice HF Trainer also follows.
 *
 * The state (step count, first and second moments per parameter) is plain Float32Arrays so it can be
 * written next to a checkpoint and restored bit for bit: a resumed run then continues exactly.
 * The update runs in JavaScript numbers (float64) and rounds to float32 when storing, deterministically.
 */
import * as tf from "@tensorflow/tfjs";
import type { Params } from "../model/model.ts";

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/** torch.optim.AdamW's defaults except weight decay, which is HF TrainingArguments' default of 0. */
export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export interface AdamWState {
  /** Number of updates applied so far. */
  readonly step: number;
  readonly m: ReadonlyMap<string, Float32Array>;
  readonly v: ReadonlyMap<string, Float32Array>;
}

export class AdamW {
  readonly options: AdamWOptions;
  private readonly params: Params;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();
  private t = 0;

  constructor(params: Params, options: Partial<AdamWOptions> = {}) {
    this.params = params;
    this.options = { ...defaultAdamW, ...options };
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.size));
      this.v.set(name, new Float32Array(p.size));
    }
  }

  /** The parameters this optimizer updates (their values are read on the host by `step`). */
  variables(): tf.Variable[] {
    return [...this.params.values()];
  }

  /** Number of updates applied so far. */
  get stepCount(): number {
    return this.t;
  }

  /**
   * One update with learning rate `lr`. `grads` has one array per parameter (same names and sizes);
   * each gradient is multiplied by `gradScale` first (gradient clipping passes its factor here).
   */
  step(grads: ReadonlyMap<string, Float32Array>, lr: number, gradScale = 1): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, this.t));
    const stepSize = lr / bc1;
    for (const [name, variable] of this.params) {
      const g = grads.get(name);
      if (g === undefined || g.length !== variable.size) {
        throw new RangeError(`AdamW: gradient for ${name} is missing or has the wrong size`);
      }
      const m = this.m.get(name)!, v = this.v.get(name)!;
      const p = Float32Array.from(variable.dataSync());
      const decay = variable.rank > 1 ? 1 - lr * weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * gradScale;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        p[i] = p[i] * decay - stepSize * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + eps);
      }
      tf.tidy(() => variable.assign(tf.tensor(p, variable.shape, "float32")));
    }
  }

  /** A copy of the state, for checkpointing. */
  exportState(): AdamWState {
    const copy = (src: Map<string, Float32Array>) =>
      new Map([...src].map(([k, a]) => [k, Float32Array.from(a)]));
    return { step: this.t, m: copy(this.m), v: copy(this.v) };
  }

  /** Restores a state from `exportState` (copied in). Throws RangeError if it does not fit the parameters. */
  importState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new RangeError(`AdamW: bad step ${state.step}`);
    }
    if (state.m.size !== this.params.size || state.v.size !== this.params.size) {
      throw new RangeError(`AdamW: state has ${state.m.size} tensors, the model ${this.params.size}`);
    }
    for (const [name, p] of this.params) {
      const m = state.m.get(name), v = state.v.get(name);
      if (m === undefined || v === undefined || m.length !== p.size || v.length !== p.size) {
        throw new RangeError(`AdamW: state for ${name} is missing or has the wrong size`);
      }
    }
    for (const name of this.params.keys()) {
      this.m.set(name, Float32Array.from(state.m.get(name)!));
      this.v.set(name, Float32Array.from(state.v.get(name)!));
    }
    this.t = state.step;
  }
}
