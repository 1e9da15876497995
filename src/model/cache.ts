/**
 * The key/value cache for incremental decoding, shared by every architecture (all of them attend with
 * the same grouped-query causal attention; RoPE, when used, is applied before keys enter the cache).
 */
import * as tf from "@tensorflow/tfjs";
import { readsSynchronously } from "../backend/webgpu.ts";
import { attentionValues } from "./ops.ts";
import { causalAttention } from "./reference_ops.ts";

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
  /**
   * On a backend that cannot read tensors synchronously (webgpu, src/backend/webgpu.ts): per layer the keys
   * and values so far, [batch, length, kvHeads * headDim], kept on the device (the host arrays above are
   * then empty) and attended to with stock tfjs ops. `disposeCache` frees them.
   */
  readonly device?: {
    readonly keys: (tf.Tensor3D | undefined)[];
    readonly values: (tf.Tensor3D | undefined)[];
  };
}

/** An empty cache of `layers` layers for `batch` rows of up to `capacity` positions of `width` floats. */
export const emptyCache = (
  layers: number,
  width: number,
  batch: number,
  capacity: number,
  leftPadding: ArrayLike<number>,
): KvCache => {
  const onDevice = !readsSynchronously();
  const size = onDevice ? 0 : batch * capacity * width;
  return {
    batch,
    capacity,
    keys: Array.from({ length: layers }, () => new Float32Array(size)),
    values: Array.from({ length: layers }, () => new Float32Array(size)),
    keyStart: Int32Array.from(leftPadding),
    length: 0,
    ...(onDevice
      ? { device: { keys: new Array(layers).fill(undefined), values: new Array(layers).fill(undefined) } }
      : {}),
  };
};

/** Frees the device tensors of a cache (nothing to do for a host cache). */
export const disposeCache = (cache: KvCache): void => {
  for (const t of [...cache.device?.keys ?? [], ...cache.device?.values ?? []]) t?.dispose();
  cache.device?.keys.fill(undefined);
  cache.device?.values.fill(undefined);
};

/** Appends x [batch * tq, width] to a device cache's tensor along time; the result is kept past tf.tidy. */
const append = (
  list: (tf.Tensor3D | undefined)[],
  layer: number,
  x: tf.Tensor2D,
  batch: number,
  tq: number,
) => {
  const x3 = tf.reshape(x, [batch, tq, x.shape[1]]) as tf.Tensor3D;
  const previous = list[layer];
  const all = tf.keep(previous ? tf.concat([previous, x3], 1) : tf.clone(x3));
  previous?.dispose();
  list[layer] = all;
  return tf.reshape(all, [batch * all.shape[1], x.shape[1]]) as tf.Tensor2D;
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
  if (cache.device) {
    const keys = append(cache.device.keys, layer, k, cache.batch, tq);
    const values = append(cache.device.values, layer, v, cache.batch, tq);
    return causalAttention(q, keys, values, {
      batch: cache.batch,
      tq,
      tk: cache.length + tq,
      ...h,
      qOffset: cache.length,
      keyStart: cache.keyStart,
    });
  }
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
