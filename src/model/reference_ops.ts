/**
 * The model's operations written with stock tfjs ops only. They are used on backends other than "cpu"
 * (where tfjs's own kernels are fast and the hand-written loops of ./kernels.ts would only force copies
 * to the host), and they are the oracle tests/model_kernels.test.ts compares the fast ops against.
 * Signatures match ./kernels.ts.
 */
import * as tf from "@tensorflow/tfjs";
import type { AttentionShape, RopeTables } from "./kernels.ts";

export const linear = (x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D => tf.matMul(x, w, false, true);

export const embedding = (table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D =>
  tf.tidy(() => tf.gather(table, tf.tensor1d(ids, "int32")));

export const selectRows = (x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D =>
  tf.tidy(() => tf.gather(x, tf.tensor1d(rows, "int32")));

export const rmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D =>
  tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w));

export const rope = (x: tf.Tensor2D, tables: RopeTables, heads: number): tf.Tensor2D =>
  tf.tidy(() => {
    const [rows, width] = x.shape, half = tables.half;
    const x3 = tf.reshape(x, [rows, heads, 2 * half]);
    const cos = tf.tensor3d(tables.cos, [rows, 1, half]), sin = tf.tensor3d(tables.sin, [rows, 1, half]);
    const x1 = tf.slice(x3, [0, 0, 0], [rows, heads, half]);
    const x2 = tf.slice(x3, [0, 0, half], [rows, heads, half]);
    const y1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
    const y2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
    return tf.reshape(tf.concat([y1, y2], 2), [rows, width]);
  });

export const causalAttention = (
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  s: AttentionShape,
): tf.Tensor2D =>
  tf.tidy(() => {
    const { batch, tq, tk, heads, kvHeads, headDim: hd, qOffset } = s;
    const group = heads / kvHeads;
    const qh = tf.transpose(tf.reshape(q, [batch, tq, heads, hd]), [0, 2, 1, 3]);
    // repeat_kv: kv head g serves query heads g * group .. g * group + group - 1. (Tile stays rank 3:
    // tfjs has no tile gradient above rank 4.)
    const expand = (t: tf.Tensor2D) => {
      const perKv = tf.transpose(tf.reshape(t, [batch, tk, kvHeads, hd]), [0, 2, 1, 3]);
      const repeated = tf.tile(tf.reshape(perKv, [batch * kvHeads, 1, tk * hd]), [1, group, 1]);
      return tf.reshape(repeated, [batch, heads, tk, hd]);
    };
    const scores = tf.mul(tf.matMul(qh, expand(k), false, true), 1 / Math.sqrt(hd));
    const allowed = new Float32Array(batch * tq * tk);
    const hasKey = new Float32Array(batch * tq);
    for (let b = 0; b < batch; b++) {
      const start = s.keyStart ? s.keyStart[b] : 0;
      for (let t = 0; t < tq; t++) {
        for (let j = start; j <= qOffset + t && j < tk; j++) allowed[(b * tq + t) * tk + j] = 1;
        if (qOffset + t >= start) hasKey[b * tq + t] = 1;
      }
    }
    const mask = tf.tensor4d(allowed, [batch, 1, tq, tk]);
    const masked = tf.where(tf.cast(mask, "bool"), scores, tf.fill(scores.shape, -1e30));
    const out = tf.matMul(tf.softmax(masked), expand(v)); // [batch, heads, tq, hd]
    const rowsOut = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * tq, heads * hd]);
    // A query with no visible key (padding) outputs zeros, like the fast kernel.
    return tf.mul(rowsOut, tf.tensor2d(hasKey, [batch * tq, 1]));
  });

export const swiglu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));

// The GPT-2 / Qwen2 additions (fast versions in ./kernels_extra.ts).

export const addBias = (x: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D => tf.add(x, b);

export const conv1d = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D =>
  tf.tidy(() => tf.add(tf.matMul(x, w), b));

export const columns = (x: tf.Tensor2D, start: number, width: number): tf.Tensor2D =>
  tf.slice(x, [0, start], [x.shape[0], width]);

export const layerNorm = (x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D =>
  tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), w), b);
  });

export const gelu = (x: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
