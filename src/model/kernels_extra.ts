/**
 * Hand-written cpu kernels for the operations GPT-2 and Qwen2 add to the Llama set of ./kernels.ts:
 * bias add, LayerNorm, GELU (tanh approximation), GPT-2's Conv1D (x W + b with W stored [in, out]) and
 * taking a block of columns (splitting GPT-2's fused q/k/v projection).
 *
 * Same reasons and conventions as ./kernels.ts: the tfjs cpu backend's broadcasting ops and transposes
 * walk elements through generic index arithmetic, so these are `tf.customGrad` loops over Float32Arrays,
 * each output computed by one loop in one order (a row's result never depends on the batch around it).
 * tests/model_kernels_extra.test.ts checks values and gradients against ./reference_ops.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { matmulNT, transpose } from "./kernels.ts";

type F32 = Float32Array;

const values = (t: tf.Tensor): F32 => {
  if (t.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${t.dtype}`);
  // On the cpu backend this is the tensor's own buffer (no copy): read it, never write it.
  return t.dataSync() as F32;
};

/** Column sums of g [rows, cols], accumulated in float64 (a bias gradient). */
const columnSums = (g: F32, rows: number, cols: number): F32 => {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += g[o + c];
  }
  return Float32Array.from(acc);
};

/** y = x + b for x [rows, cols] and b [cols] (the bias of torch.nn.Linear). */
export const addBias = (x: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D => {
  const [rows, cols] = x.shape;
  if (b.shape[0] !== cols) throw new RangeError(`addBias: bias has ${b.shape[0]} entries, input ${cols}`);
  const op = tf.customGrad((xt, bt) => {
    const xs = values(xt as tf.Tensor), bs = values(bt as tf.Tensor);
    const y = new Float32Array(xs.length);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) y[o + c] = xs[o + c] + bs[c];
    }
    return {
      value: tf.tensor2d(y, [rows, cols]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        return [tf.tensor2d(Float32Array.from(g), [rows, cols]), tf.tensor1d(columnSums(g, rows, cols))];
      },
    };
  });
  return op(x, b) as tf.Tensor2D;
};

/**
 * HF GPT-2's Conv1D: y = x W + b for x [m, in], W [in, out] (note: the transpose of torch.nn.Linear's
 * layout) and b [out]. The products go through matmulNT so they share its speed and summation order.
 */
export const conv1d = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D => {
  const [m, k] = x.shape;
  const [kw, n] = w.shape;
  if (k !== kw) throw new RangeError(`conv1d: input has ${k} features, weight expects ${kw}`);
  if (b.shape[0] !== n) throw new RangeError(`conv1d: bias has ${b.shape[0]} entries, output ${n}`);
  const op = tf.customGrad((xt, wt, bt) => {
    const xs = values(xt as tf.Tensor), ws = values(wt as tf.Tensor), bs = values(bt as tf.Tensor);
    const y = matmulNT(xs, transpose(ws, k, n), m, n, k);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) y[r * n + c] += bs[c];
    return {
      value: tf.tensor2d(y, [m, n]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        // dX = dY W^T (W's rows are already the contiguous operand) and dW = X^T dY.
        const dx = matmulNT(g, ws, m, k, n);
        const dw = matmulNT(transpose(xs, m, k), transpose(g, m, n), k, n, m);
        return [tf.tensor2d(dx, [m, k]), tf.tensor2d(dw, [k, n]), tf.tensor1d(columnSums(g, m, n))];
      },
    };
  });
  return op(x, w, b) as tf.Tensor2D;
};

/** Columns [start, start + width) of x [rows, cols]; the gradient lands back in those columns. */
export const columns = (x: tf.Tensor2D, start: number, width: number): tf.Tensor2D => {
  const [rows, cols] = x.shape;
  if (!(start >= 0 && width >= 0 && start + width <= cols)) {
    throw new RangeError(`columns: [${start}, ${start + width}) is outside [0, ${cols})`);
  }
  const op = tf.customGrad((xt) => {
    const xs = values(xt as tf.Tensor);
    const y = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) y.set(xs.subarray(r * cols + start, r * cols + start + width), r * width);
    return {
      value: tf.tensor2d(y, [rows, width]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy), dx = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) dx.set(g.subarray(r * width, r * width + width), r * cols + start);
        return tf.tensor2d(dx, [rows, cols]);
      },
    };
  });
  return op(x) as tf.Tensor2D;
};

/**
 * torch.nn.LayerNorm over the last axis: y = (x - mean) / sqrt(var + eps) * w + b with the biased
 * variance, per row of x [rows, dim]. Statistics in float64.
 */
export const layerNorm = (x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D => {
  const [rows, dim] = x.shape;
  if (w.shape[0] !== dim || b.shape[0] !== dim) {
    throw new RangeError(`layerNorm: weight/bias have ${w.shape[0]}/${b.shape[0]} entries, input ${dim}`);
  }
  const op = tf.customGrad((xt, wt, bt) => {
    const xs = values(xt as tf.Tensor), ws = values(wt as tf.Tensor), bs = values(bt as tf.Tensor);
    const xhat = new Float32Array(rows * dim); // normalised input, reused by the gradient
    const inv = new Float64Array(rows); // 1 / sqrt(var + eps) per row
    const y = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let mean = 0;
      for (let d = 0; d < dim; d++) mean += xs[o + d];
      mean /= dim;
      let v = 0;
      for (let d = 0; d < dim; d++) v += (xs[o + d] - mean) * (xs[o + d] - mean);
      const ir = 1 / Math.sqrt(v / dim + eps);
      inv[r] = ir;
      for (let d = 0; d < dim; d++) {
        xhat[o + d] = (xs[o + d] - mean) * ir;
        y[o + d] = xhat[o + d] * ws[d] + bs[d];
      }
    }
    return {
      value: tf.tensor2d(y, [rows, dim]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        const dx = new Float32Array(rows * dim);
        const dw = new Float64Array(dim), db = new Float64Array(dim);
        for (let r = 0; r < rows; r++) {
          const o = r * dim;
          // With u = g * w: dx = ir * (u - mean(u) - xhat * mean(u * xhat)).
          let su = 0, sux = 0;
          for (let d = 0; d < dim; d++) {
            const u = g[o + d] * ws[d];
            su += u;
            sux += u * xhat[o + d];
            dw[d] += g[o + d] * xhat[o + d];
            db[d] += g[o + d];
          }
          su /= dim;
          sux /= dim;
          for (let d = 0; d < dim; d++) {
            dx[o + d] = inv[r] * (g[o + d] * ws[d] - su - xhat[o + d] * sux);
          }
        }
        return [
          tf.tensor2d(dx, [rows, dim]),
          tf.tensor1d(Float32Array.from(dw)),
          tf.tensor1d(Float32Array.from(db)),
        ];
      },
    };
  });
  return op(x, w, b) as tf.Tensor2D;
};

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation (HF's "gelu_new" / NewGELUActivation, GPT-2's activation):
 * 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
 */
export const gelu = (x: tf.Tensor2D): tf.Tensor2D => {
  const shape = x.shape;
  const op = tf.customGrad((xt) => {
    const xs = values(xt as tf.Tensor);
    const y = new Float32Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i];
      y[i] = 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
    }
    return {
      value: tf.tensor2d(y, shape),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy), dx = new Float32Array(xs.length);
        for (let i = 0; i < xs.length; i++) {
          const v = xs[i], t = Math.tanh(GELU_C * (v + 0.044715 * v * v * v));
          const dInner = GELU_C * (1 + 3 * 0.044715 * v * v);
          dx[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner);
        }
        return tf.tensor2d(dx, shape);
      },
    };
  });
  return op(x) as tf.Tensor2D;
};
