/**
 * A Llama-architecture decoder (HF LlamaForCausalLM semantics) in tfjs: token embedding, then per layer
 * x += o_proj(attention(rope(q_proj(norm(x))), rope(k_proj(..)), v_proj(..))) and
 * x += down_proj(silu(gate_proj(norm(x))) * up_proj(norm(x))), a final RMSNorm and the LM head.
 *
 * Parameters live in a Map keyed by HF tensor names with HF layouts, so checkpoints map one to one to
 * model.safetensors. Activations are 2-D [batch * time, features]; the ops come from ./ops.ts (hand-written
 * loops on the cpu backend, see ./kernels.ts for why).
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../train/rng.ts";
import { headDim, type ModelConfig } from "./config.ts";
import {
  attentionValues,
  causalAttention,
  embedding,
  linear,
  rmsNorm,
  rope,
  type RopeTables,
  ropeTables,
  selectRows,
  swiglu,
} from "./ops.ts";

/** Trainable parameters by HF tensor name. */
export type Params = Map<string, tf.Variable>;

/** Every parameter's HF name and shape, in a fixed order (the order `initParams` draws them in). */
export const paramShapes = (c: ModelConfig): Map<string, number[]> => {
  const d = c.hiddenSize, kv = c.numKvHeads * headDim(c), ff = c.intermediateSize;
  const shapes = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocabSize, d]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    shapes.set(`${p}input_layernorm.weight`, [d]);
    shapes.set(`${p}self_attn.q_proj.weight`, [d, d]);
    shapes.set(`${p}self_attn.k_proj.weight`, [kv, d]);
    shapes.set(`${p}self_attn.v_proj.weight`, [kv, d]);
    shapes.set(`${p}self_attn.o_proj.weight`, [d, d]);
    shapes.set(`${p}post_attention_layernorm.weight`, [d]);
    shapes.set(`${p}mlp.gate_proj.weight`, [ff, d]);
    shapes.set(`${p}mlp.up_proj.weight`, [ff, d]);
    shapes.set(`${p}mlp.down_proj.weight`, [d, ff]);
  }
  shapes.set("model.norm.weight", [d]);
  if (!c.tieEmbeddings) shapes.set("lm_head.weight", [c.vocabSize, d]);
  return shapes;
};

/** Number of scalar parameters. */
export const countParams = (c: ModelConfig): number =>
  [...paramShapes(c).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

/** Wraps Float32Arrays (taken, not copied) as parameters; names and sizes must match `paramShapes`. */
export const paramsFromArrays = (c: ModelConfig, arrays: ReadonlyMap<string, Float32Array>): Params => {
  const params: Params = new Map();
  for (const [name, shape] of paramShapes(c)) {
    const data = arrays.get(name);
    if (data === undefined) throw new RangeError(`missing parameter ${name}`);
    params.set(name, tf.tidy(() => tf.variable(tf.tensor(data, shape, "float32"), true)));
  }
  return params;
};

/**
 * Fresh parameters drawn from `rng`: every matrix N(0, 0.02^2) (HF's initializer_range), every norm
 * weight 1. Deterministic given the rng state.
 */
export const initParams = (c: ModelConfig, rng: Rng): Params => {
  const arrays = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(c)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 0.02;
    arrays.set(name, data);
  }
  return paramsFromArrays(c, arrays);
};

/** Copies of the current parameter values, by name. */
export const paramsToArrays = (params: Params): Map<string, { shape: number[]; data: Float32Array }> =>
  new Map(
    [...params].map(([name, v]) => [name, { shape: [...v.shape], data: Float32Array.from(v.dataSync()) }]),
  );

/** Releases the parameters' memory. */
export const disposeParams = (params: Params): void => params.forEach((v) => v.dispose());

/**
 * Keys and values of past positions for incremental decoding. Row b's tokens are left-padded by
 * `keyStart[b]` positions, which are never attended to and do not count for RoPE positions, so a row
 * gives the same results as it would alone. `forward` appends to it and advances `length`.
 */
export interface KvCache {
  readonly batch: number;
  readonly capacity: number;
  /** Per layer, [batch, capacity, kvHeads * headDim]. */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  readonly keyStart: Int32Array;
  length: number;
}

/** An empty cache for `batch` rows of up to `capacity` positions (left padding included). */
export const createCache = (
  c: ModelConfig,
  batch: number,
  capacity: number,
  leftPadding: ArrayLike<number> = new Int32Array(batch),
): KvCache => {
  const size = batch * capacity * c.numKvHeads * headDim(c);
  return {
    batch,
    capacity,
    keys: Array.from({ length: c.numLayers }, () => new Float32Array(size)),
    values: Array.from({ length: c.numLayers }, () => new Float32Array(size)),
    keyStart: Int32Array.from(leftPadding),
    length: 0,
  };
};

const param = (params: Params, name: string): tf.Variable => {
  const v = params.get(name);
  if (v === undefined) throw new RangeError(`missing parameter ${name}`);
  return v;
};

/** Attention of the new tokens against everything in the cache (no gradient: generation only). */
const cachedAttention = (
  cache: KvCache,
  layer: number,
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  c: ModelConfig,
  tq: number,
): tf.Tensor2D => {
  const width = k.shape[1], ks = k.dataSync(), vs = v.dataSync();
  for (let b = 0; b < cache.batch; b++) {
    const dst = (b * cache.capacity + cache.length) * width, src = b * tq * width;
    cache.keys[layer].set(ks.subarray(src, src + tq * width), dst);
    cache.values[layer].set(vs.subarray(src, src + tq * width), dst);
  }
  const { out } = attentionValues(q.dataSync() as Float32Array, cache.keys[layer], cache.values[layer], {
    batch: cache.batch,
    tq,
    tk: cache.capacity,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: headDim(c),
    qOffset: cache.length,
    keyStart: cache.keyStart,
  }, false);
  return tf.tensor2d(out, q.shape);
};

/** One decoder layer on x [batch * tq, hidden]. */
const block = (
  params: Params,
  c: ModelConfig,
  layer: number,
  x: tf.Tensor2D,
  tables: RopeTables,
  batch: number,
  tq: number,
  cache: KvCache | undefined,
): tf.Tensor2D => {
  const p = (name: string) => param(params, `model.layers.${layer}.${name}`);
  const a = rmsNorm(x, p("input_layernorm.weight") as tf.Tensor1D, c.rmsNormEps);
  const q = rope(linear(a, p("self_attn.q_proj.weight") as tf.Tensor2D), tables, c.numHeads);
  const k = rope(linear(a, p("self_attn.k_proj.weight") as tf.Tensor2D), tables, c.numKvHeads);
  const v = linear(a, p("self_attn.v_proj.weight") as tf.Tensor2D);
  const att = cache ? cachedAttention(cache, layer, q, k, v, c, tq) : causalAttention(q, k, v, {
    batch,
    tq,
    tk: tq,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: headDim(c),
    qOffset: 0,
  });
  const h = tf.add(x, linear(att, p("self_attn.o_proj.weight") as tf.Tensor2D)) as tf.Tensor2D;
  const m = rmsNorm(h, p("post_attention_layernorm.weight") as tf.Tensor1D, c.rmsNormEps);
  const gate = linear(m, p("mlp.gate_proj.weight") as tf.Tensor2D);
  const up = linear(m, p("mlp.up_proj.weight") as tf.Tensor2D);
  return tf.add(h, linear(swiglu(gate, up), p("mlp.down_proj.weight") as tf.Tensor2D)) as tf.Tensor2D;
};

/** Final hidden states [batch * time, hidden] (before the last norm); appends to `cache` if given. */
const hiddenStates = (params: Params, c: ModelConfig, ids: tf.Tensor2D, cache?: KvCache): tf.Tensor2D => {
  if (ids.dtype !== "int32") throw new TypeError(`ids must be int32, got ${ids.dtype}`);
  const [batch, tq] = ids.shape;
  if (cache && (cache.batch !== batch || cache.length + tq > cache.capacity)) {
    throw new RangeError(
      `cache of ${cache.batch} x ${cache.capacity} cannot take ${batch} x ${tq} more tokens`,
    );
  }
  const tokens = ids.dataSync() as Int32Array;
  for (const id of tokens) {
    if (!(id >= 0 && id < c.vocabSize)) throw new RangeError(`token id ${id} is outside [0, ${c.vocabSize})`);
  }
  const offset = cache?.length ?? 0;
  const positions = new Int32Array(batch * tq);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < tq; t++) positions[b * tq + t] = offset + t - (cache?.keyStart[b] ?? 0);
  }
  const tables = ropeTables(positions, headDim(c), c.ropeTheta);
  let x = embedding(param(params, "model.embed_tokens.weight") as tf.Tensor2D, tokens);
  for (let layer = 0; layer < c.numLayers; layer++) x = block(params, c, layer, x, tables, batch, tq, cache);
  if (cache) cache.length += tq;
  return x;
};

/** Final norm and LM head on hidden states [n, hidden] -> logits [n, vocab]. */
const head = (params: Params, c: ModelConfig, x: tf.Tensor2D): tf.Tensor2D => {
  const h = rmsNorm(x, param(params, "model.norm.weight") as tf.Tensor1D, c.rmsNormEps);
  const w = param(params, c.tieEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return linear(h, w as tf.Tensor2D);
};

export interface ForwardOptions {
  /** Return logits for the last position of each row only ([batch, 1, vocab]); what generation needs. */
  readonly lastPositionOnly?: boolean;
}

/**
 * Logits [batch, time, vocab] for token ids [batch, time] (int32; RangeError outside the vocabulary).
 * Without a cache every row starts at position 0 and attends causally within itself. With a cache the
 * ids continue the cached sequence: they are appended to the cache (which is mutated) and attend to
 * everything before them. Intermediates are released; the caller owns (and disposes) the result.
 */
export const forward = (
  params: Params,
  c: ModelConfig,
  ids: tf.Tensor2D,
  cache?: KvCache,
  options: ForwardOptions = {},
): tf.Tensor3D =>
  tf.tidy(() => {
    const [batch, tq] = ids.shape;
    let x = hiddenStates(params, c, ids, cache);
    if (options.lastPositionOnly) {
      x = selectRows(
        x,
        Int32Array.from({ length: batch }, (_, b) => b * tq + tq - 1),
      );
    }
    return tf.reshape(head(params, c, x), [batch, options.lastPositionOnly ? 1 : tq, c.vocabSize]);
  });

/**
 * Logits [rows.length, vocab] at the flattened positions `rows` (b * time + t) only. The same values as
 * the matching rows of `forward`, without paying the LM head (often the largest matrix) for positions
 * no loss looks at; training uses it for the positions with a non-zero weight.
 */
export const logitsAt = (params: Params, c: ModelConfig, ids: tf.Tensor2D, rows: Int32Array): tf.Tensor2D =>
  tf.tidy(() => head(params, c, selectRows(hiddenStates(params, c, ids), rows)));
