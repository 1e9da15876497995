/**
 * LoRA (Hu et al. 2021) on the linear projections inside the decoder blocks, computed as Hugging Face
 * PEFT's `lora.Linear` does: y = base(x) + (dropout(x) A^T B^T) * scaling, with A [r, in], B [out, r],
 * scaling = alpha / r (alpha / sqrt(r) with rsLoRA). The base output includes its bias (Qwen2's q/k/v,
 * GPT-2's Conv1D) and the LoRA term is added after it, in PEFT's order.
 *
 * The adapter lives in the same `Params` map as the base weights, under PEFT's per-module names without
 * the "base_model.model." prefix (`<module>.lora_A.weight`, `<module>.lora_B.weight`); so every entry point
 * of ./model.ts (training, scoring, generation) applies it without a new argument. The base weights are
 * marked non-trainable (`tf.Variable.trainable = false`): the train step takes gradients and AdamW state
 * for trainable variables only. The adapter's scalar settings (scaling, dropout) are registered per Params
 * map (`loraOf`); a map holding lora_A tensors without them is a bug and throws.
 *
 * GPT-2's Conv1D stores its weight [in, out] (PEFT's fan_in_fan_out); A and B keep the nn.Linear shapes
 * above and only merging transposes the delta.
 */
import * as tf from "@tensorflow/tfjs";
import { Schema } from "effect";
import type { Rng } from "../util/rng.ts";
import type { ModelConfig } from "./config.ts";
import { linear } from "./ops.ts";
import type { Params } from "./params.ts";

/** LoRA hyper-parameters, as the train step's config and the CLI flags give them. */
export interface LoraSettings {
  /** The adapter's rank. */
  readonly r: number;
  /** Scaling numerator: scaling = alpha / r (or alpha / sqrt(r) with rsLoRA). */
  readonly alpha: number;
  /** Dropout on the adapter's input, in [0, 1). */
  readonly dropout: number;
  /** Module names (or name suffixes) to adapt; absent means the architecture's default (DEFAULT_TARGETS). */
  readonly targets?: ReadonlyArray<string>;
  /** scaling = alpha / sqrt(r) instead of alpha / r (Kalajdzievski 2023, PEFT's use_rslora). */
  readonly useRslora?: boolean;
}

/** The schema of LoraSettings (validated and canonically encoded in the train step's config). */
export const LoraSettings: Schema.Schema<LoraSettings> = Schema.Struct({
  r: Schema.Int.pipe(Schema.positive()),
  alpha: Schema.Number.pipe(Schema.positive(), Schema.finite()),
  dropout: Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1)),
  /** Module names (or name suffixes) to adapt; absent means the architecture's default (DEFAULT_TARGETS). */
  targets: Schema.optional(Schema.Array(Schema.String)),
  /** scaling = alpha / sqrt(r) instead of alpha / r (Kalajdzievski 2023, PEFT's use_rslora). */
  useRslora: Schema.optional(Schema.Boolean),
});

/** Every linear projection inside a decoder block, by architecture (what LoRA can target). */
export const ADAPTABLE: Readonly<Record<"llama" | "gpt2", ReadonlyArray<string>>> = {
  llama: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  gpt2: ["c_attn", "c_proj", "c_fc"],
};

const family = (c: ModelConfig): "llama" | "gpt2" => c.architecture === "gpt2" ? "gpt2" : "llama";

/** The default targets: every block projection (what `--lora` without `--lora-targets` adapts). */
export const defaultTargets = (c: ModelConfig): ReadonlyArray<string> => ADAPTABLE[family(c)];

/** True for GPT-2, whose Conv1D weights are stored [in, out]. */
export const fanInFanOut = (c: ModelConfig): boolean => c.architecture === "gpt2";

export const loraScaling = (
  s: { readonly r: number; readonly alpha: number; readonly useRslora?: boolean },
) => s.useRslora ? s.alpha / Math.sqrt(s.r) : s.alpha / s.r;

/** A module adapted by LoRA: its HF path and the in/out features of its base weight. */
export interface LoraModule {
  readonly module: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/**
 * PEFT's matching of target_modules given as a list: a module is targeted when its full name equals a
 * target or ends with "." + target. A string is a regular expression the full name must match entirely.
 */
export const isTargeted = (module: string, targets: ReadonlyArray<string> | string): boolean =>
  typeof targets === "string"
    ? new RegExp(`^(?:${targets})$`).test(module)
    : targets.some((t) => module === t || module.endsWith(`.${t}`));

/**
 * The modules `targets` selects among the block projections of a model with `shapes` (./model.ts
 * paramShapes), in parameter order. Embeddings and the LM head are never adapted.
 */
export const targetModules = (
  c: ModelConfig,
  shapes: ReadonlyMap<string, number[]>,
  targets: ReadonlyArray<string> | string,
): LoraModule[] => {
  const adaptable = new Set(ADAPTABLE[family(c)]);
  const out: LoraModule[] = [];
  for (const [name, shape] of shapes) {
    if (!name.endsWith(".weight") || shape.length !== 2) continue;
    const module = name.slice(0, -".weight".length);
    if (!adaptable.has(module.slice(module.lastIndexOf(".") + 1))) continue;
    if (!isTargeted(module, targets)) continue;
    const [rows, cols] = shape;
    out.push(
      fanInFanOut(c)
        ? { module, inFeatures: rows, outFeatures: cols }
        : { module, inFeatures: cols, outFeatures: rows },
    );
  }
  return out;
};

export const loraAName = (module: string): string => `${module}.lora_A.weight`;
export const loraBName = (module: string): string => `${module}.lora_B.weight`;

/** What the forward pass needs besides A and B. */
export interface LoraRuntime {
  readonly scaling: number;
  readonly dropout: number;
  readonly modules: ReadonlyArray<LoraModule>;
}

const runtimes = new WeakMap<Params, LoraRuntime>();

/** The adapter registered on `params`, if any. */
export const loraOf = (params: Params): LoraRuntime | undefined => runtimes.get(params);

/**
 * Adds an adapter to `params` (mutated and returned): for each module, A and B as trainable variables
 * with the given values, and every base weight marked non-trainable.
 */
export const attachAdapter = (
  params: Params,
  runtime: LoraRuntime,
  values: ReadonlyMap<string, { readonly a: Float32Array; readonly b: Float32Array }>,
  r: number,
): Params => {
  for (const v of params.values()) v.trainable = false;
  for (const { module, inFeatures, outFeatures } of runtime.modules) {
    const ab = values.get(module);
    if (ab === undefined) throw new RangeError(`no LoRA values for ${module}`);
    params.set(loraAName(module), tf.variable(tf.tensor2d(ab.a, [r, inFeatures]), true));
    params.set(loraBName(module), tf.variable(tf.tensor2d(ab.b, [outFeatures, r]), true));
  }
  runtimes.set(params, runtime);
  return params;
};

/**
 * PEFT's default initialisation (init_lora_weights=True): A from kaiming_uniform_(a=sqrt(5)), i.e.
 * U(-1/sqrt(in), 1/sqrt(in)) since the gain sqrt(2 / (1 + 5)) times sqrt(3 / in) is 1/sqrt(in), and B = 0,
 * so a fresh adapter leaves the model's function unchanged. Drawn from `rng` module by module, A row-major.
 */
export const initAdapterValues = (
  modules: ReadonlyArray<LoraModule>,
  r: number,
  rng: Rng,
): Map<string, { a: Float32Array; b: Float32Array }> => {
  const out = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const { module, inFeatures, outFeatures } of modules) {
    const bound = 1 / Math.sqrt(inFeatures);
    const a = new Float32Array(r * inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    out.set(module, { a, b: new Float32Array(outFeatures * r) });
  }
  return out;
};

/** Attaches a fresh adapter (PEFT's initialisation) for `settings` to a base model's params. */
export const attachFreshAdapter = (
  params: Params,
  c: ModelConfig,
  shapes: ReadonlyMap<string, number[]>,
  settings: LoraSettings,
  rng: Rng,
): Params => {
  const modules = targetModules(c, shapes, settings.targets ?? defaultTargets(c));
  if (modules.length === 0) throw new RangeError("LoRA targets select no module");
  return attachAdapter(
    params,
    { scaling: loraScaling(settings), dropout: settings.dropout, modules },
    initAdapterValues(modules, settings.r, rng),
    settings.r,
  );
};

/** The trainable variables of `params` (all of them without an adapter; A and B only with one). */
export const trainableParams = (params: Params): Params =>
  new Map([...params].filter(([, v]) => v.trainable));

let dropoutRng: Rng | undefined;

/**
 * Runs `f` with LoRA dropout active, its masks drawn from `rng` in call order (the forward passes of one
 * optimizer step run in a fixed order, so a step's masks are a function of the rng's seed: resume stays
 * exact). Outside it dropout is the identity (evaluation, generation, scoring), as in PEFT's eval mode.
 */
export const withLoraDropout = <A>(rng: Rng | undefined, f: () => A): A => {
  const previous = dropoutRng;
  dropoutRng = rng;
  try {
    return f();
  } finally {
    dropoutRng = previous;
  }
};

const dropped = (x: tf.Tensor2D, p: number): tf.Tensor2D => {
  if (p === 0 || dropoutRng === undefined) return x;
  const rng = dropoutRng, keep = 1 / (1 - p);
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  return tf.mul(x, tf.tensor2d(mask, x.shape)) as tf.Tensor2D;
};

/**
 * `base` (the module's output for `x`, bias included) plus the module's LoRA term when `params` carries
 * an adapter for it; `base` itself otherwise.
 */
export const withLora = (params: Params, module: string, x: tf.Tensor2D, base: tf.Tensor2D): tf.Tensor2D => {
  const a = params.get(loraAName(module));
  if (a === undefined) return base;
  const b = params.get(loraBName(module));
  const runtime = runtimes.get(params);
  if (b === undefined || runtime === undefined) {
    throw new RangeError(`LoRA tensors of ${module} without a registered adapter`);
  }
  const delta = linear(linear(dropped(x, runtime.dropout), a as tf.Tensor2D), b as tf.Tensor2D);
  return tf.add(base, tf.mul(delta, tf.scalar(runtime.scaling))) as tf.Tensor2D;
};

/**
 * Folds the adapter into the base weights and removes it: W' = W + scaling * B A (its transpose for
 * fan_in_fan_out weights), computed in float64 and rounded once. `params` is mutated and returned, every
 * variable trainable again, as a plain checkpoint's.
 */
export const mergeAdapter = (params: Params, c: ModelConfig): Params => {
  const runtime = runtimes.get(params);
  if (runtime === undefined) return params;
  const r = (params.get(loraAName(runtime.modules[0].module))?.shape[0]) ?? 0;
  for (const { module, inFeatures, outFeatures } of runtime.modules) {
    const wVar = params.get(`${module}.weight`)!;
    const aVar = params.get(loraAName(module))!, bVar = params.get(loraBName(module))!;
    const w = Float32Array.from(wVar.dataSync()), a = aVar.dataSync(), b = bVar.dataSync();
    const transposed = fanInFanOut(c);
    for (let o = 0; o < outFeatures; o++) {
      for (let i = 0; i < inFeatures; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * inFeatures + i];
        const at = transposed ? i * outFeatures + o : o * inFeatures + i;
        w[at] = w[at] + runtime.scaling * s;
      }
    }
    tf.tidy(() => wVar.assign(tf.tensor(w, wVar.shape, "float32")));
    aVar.dispose();
    bVar.dispose();
    params.delete(loraAName(module));
    params.delete(loraBName(module));
  }
  for (const v of params.values()) v.trainable = true;
  runtimes.delete(params);
  return params;
};
