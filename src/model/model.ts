/**
 * The model's entry points for every architecture (see ./config.ts): parameter shapes and
 * initialisation, the forward pass (training, scoring, and incremental decoding with a KV cache) and
 * logits at chosen positions. Each dispatches on `config.architecture` to a decoder
 * (./decoder_llama.ts, ./decoder_gpt2.ts); callers never see which.
 *
 * Activations are 2-D [batch * time, features]; the ops come from ./ops.ts (hand-written loops on the
 * cpu backend, stock tfjs elsewhere).
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../util/rng.ts";
import { emptyCache, type KvCache } from "./cache.ts";
import { contextLength, headDim, type ModelConfig } from "./config.ts";
import type { Decoder } from "./decoder.ts";
import { gpt2Decoder } from "./decoder_gpt2.ts";
import { llamaDecoder } from "./decoder_llama.ts";
import { selectRows } from "./ops.ts";
import { type Params, wrapArrays } from "./params.ts";

export type { KvCache } from "./cache.ts";
export { disposeParams, type Params, paramsToArrays } from "./params.ts";

const decoderOf = (c: ModelConfig): Decoder => c.architecture === "gpt2" ? gpt2Decoder : llamaDecoder;

/** Every parameter's HF name and shape, in a fixed order (the order `initParams` draws them in). */
export const paramShapes = (c: ModelConfig): Map<string, number[]> => decoderOf(c).shapes(c);

/** Number of scalar parameters. */
export const countParams = (c: ModelConfig): number =>
  [...paramShapes(c).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

/** Wraps Float32Arrays (taken, not copied) as parameters; names and sizes must match `paramShapes`. */
export const paramsFromArrays = (c: ModelConfig, arrays: ReadonlyMap<string, Float32Array>): Params =>
  wrapArrays(paramShapes(c), arrays);

/**
 * Fresh parameters drawn from `rng`: every matrix N(0, 0.02^2) (HF's initializer_range), every bias 0,
 * every other vector (norm weights) 1. Deterministic given the rng state.
 */
export const initParams = (c: ModelConfig, rng: Rng): Params => {
  const arrays = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(c)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(name.endsWith(".bias") ? 0 : 1);
    else for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 0.02;
    arrays.set(name, data);
  }
  return paramsFromArrays(c, arrays);
};

/**
 * An empty cache for `batch` rows of up to `capacity` positions (left padding included). Row b's first
 * `leftPadding[b]` positions are padding: never attended to and not counted as positions.
 */
export const createCache = (
  c: ModelConfig,
  batch: number,
  capacity: number,
  leftPadding: ArrayLike<number> = new Int32Array(batch),
): KvCache => emptyCache(c.numLayers, c.numKvHeads * headDim(c), batch, capacity, leftPadding);

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
  let last = -1;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < tq; t++) {
      positions[b * tq + t] = offset + t - (cache?.keyStart[b] ?? 0);
      last = Math.max(last, positions[b * tq + t]);
    }
  }
  // RoPE models extrapolate past max_position_embeddings as HF does; a position table (gpt2) or a
  // sliding window (computed here as full attention) cannot.
  const limit = c.architecture === "gpt2" ? c.maxPositions : c.slidingWindow;
  if (limit !== undefined && last >= limit) {
    throw new RangeError(
      `a sequence of ${last + 1} tokens exceeds the ${contextLength(c)} positions this ${c.architecture} ` +
        "model computes exactly",
    );
  }
  const x = decoderOf(c).hidden(params, c, { tokens, batch, tq, positions, cache });
  if (cache) cache.length += tq;
  return x;
};

export interface ForwardOptions {
  /** Return logits for the last position of each row only ([batch, 1, vocab]); what generation needs. */
  readonly lastPositionOnly?: boolean;
}

/**
 * Logits [batch, time, vocab] for token ids [batch, time] (int32; RangeError outside the vocabulary or
 * past the positions the model computes). Without a cache every row starts at position 0 and attends
 * causally within itself. With a cache the ids continue the cached sequence: they are appended to the
 * cache (which is mutated) and attend to everything before them. Intermediates are released; the caller
 * owns (and disposes) the result.
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
      x = selectRows(x, Int32Array.from({ length: batch }, (_, b) => b * tq + tq - 1));
    }
    const logits = decoderOf(c).head(params, c, x);
    return tf.reshape(logits, [batch, options.lastPositionOnly ? 1 : tq, c.vocabSize]);
  });

/**
 * The values of the tensor `f` computes, with every intermediate tensor freed. The values are read after
 * the tidy scope closes: a typed array returned from inside `tf.tidy` is walked element by element as a
 * possible tensor container, which took 90% of generation time with a 50k vocabulary.
 */
export const tidyValues = (f: () => tf.Tensor): Float32Array => {
  const t = tf.tidy(f);
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
};

/**
 * Logits [rows.length, vocab] at the flattened positions `rows` (b * time + t) only. The same values as
 * the matching rows of `forward`, without paying the LM head (often the largest matrix) for positions
 * no loss looks at; training uses it for the positions with a non-zero weight.
 */
export const logitsAt = (params: Params, c: ModelConfig, ids: tf.Tensor2D, rows: Int32Array): tf.Tensor2D =>
  tf.tidy(() => decoderOf(c).head(params, c, selectRows(hiddenStates(params, c, ids), rows)));
