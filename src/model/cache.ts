/**
 * The key/value cache for incremental decoding, shared by every architecture (all of them attend with
 * the same grouped-query causal attention; RoPE, when used, is applied before keys enter the cache).
 */
import * as tf from "@tensorflow/tfjs";
import { attentionValues } from "./ops.ts";

/**
 * Keys and values of past positions. Row b's tokens are left-padded by `keyStart[b]` positions, which
 * are never attended to and do not count as positions, so a row gives the same results as it would
 * alone. `forward` appends to it and advances `length`.
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

/** An empty cache of `layers` layers for `batch` rows of up to `capacity` positions of `width` floats. */
export const emptyCache = (
  layers: number,
  width: number,
  batch: number,
  capacity: number,
  leftPadding: ArrayLike<number>,
): KvCache => {
  const size = batch * capacity * width;
  return {
    batch,
    capacity,
    keys: Array.from({ length: layers }, () => new Float32Array(size)),
    values: Array.from({ length: layers }, () => new Float32Array(size)),
    keyStart: Int32Array.from(leftPadding),
    length: 0,
  };
};

/** Head layout of one attention call. */
export interface Heads {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/**
 * Stores the new keys/values of `layer` and attends the new queries q [batch * tq, heads * headDim]
 * against everything in the cache. No gradient: generation and scoring only. Does not advance `length`.
 */
export const cachedAttention = (
  cache: KvCache,
  layer: number,
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  h: Heads,
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
    ...h,
    qOffset: cache.length,
    keyStart: cache.keyStart,
  }, false);
  return tf.tensor2d(out, q.shape);
};
