/**
 * The model's operations, each dispatched per backend: on "cpu" the hand-written loops of ./kernels.ts
 * (several times faster there), on any other backend (e.g. "tensorflow") the stock tfjs formulations of
 * ./reference_ops.ts, which that backend runs natively. Both compute the same function.
 */
import * as tf from "@tensorflow/tfjs";
import * as fast from "./kernels.ts";
import * as extra from "./kernels_extra.ts";
import * as reference from "./reference_ops.ts";

export type { AttentionShape, RopeTables } from "./kernels.ts";
export { attentionValues, ropeTables } from "./kernels.ts";

const onCpu = (): boolean => tf.getBackend() === "cpu";

export const linear = (x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D =>
  onCpu() ? fast.linear(x, w) : reference.linear(x, w);

export const embedding = (table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D =>
  onCpu() ? fast.embedding(table, ids) : reference.embedding(table, ids);

export const selectRows = (x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D =>
  onCpu() ? fast.selectRows(x, rows) : reference.selectRows(x, rows);

export const rmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D =>
  onCpu() ? fast.rmsNorm(x, w, eps) : reference.rmsNorm(x, w, eps);

export const rope = (x: tf.Tensor2D, tables: fast.RopeTables, heads: number): tf.Tensor2D =>
  onCpu() ? fast.rope(x, tables, heads) : reference.rope(x, tables, heads);

export const causalAttention = (
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  shape: fast.AttentionShape,
): tf.Tensor2D => onCpu() ? fast.causalAttention(q, k, v, shape) : reference.causalAttention(q, k, v, shape);

export const swiglu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D =>
  onCpu() ? fast.swiglu(gate, up) : reference.swiglu(gate, up);

export const addBias = (x: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D =>
  onCpu() ? extra.addBias(x, b) : reference.addBias(x, b);

export const conv1d = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D =>
  onCpu() ? extra.conv1d(x, w, b) : reference.conv1d(x, w, b);

export const columns = (x: tf.Tensor2D, start: number, width: number): tf.Tensor2D =>
  onCpu() ? extra.columns(x, start, width) : reference.columns(x, start, width);

export const layerNorm = (x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D =>
  onCpu() ? extra.layerNorm(x, w, b, eps) : reference.layerNorm(x, w, b, eps);

export const gelu = (x: tf.Tensor2D): tf.Tensor2D => onCpu() ? extra.gelu(x) : reference.gelu(x);
