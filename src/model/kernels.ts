/**
 * The model's hot operations as tfjs ops with hand-written forward and backward loops.
 *
 * Why: on the tfjs "cpu" backend every op that broadcasts over a size-1 axis (softmax, RMSNorm's row
 * scale, attention masks), every transpose and every reduction over a non-last axis walks its elements
 * through generic index arithmetic (about 100x slower than a plain loop), and its matMul reaches about a
 * third of what a plain register-blocked JavaScript loop does. Writing these few ops as `tf.customGrad`
 * functions over Float32Arrays keeps tfjs for what it is good at (tape, variables, tensor lifetimes)
 * and makes a training step about 45x faster (0.34 s instead of 15.7 s for D=64, L=2, B=16, T=64).
 * tests/model_kernels.test.ts checks each op and its gradient against the stock formulation
 * (./reference_ops.ts, which other backends use).
 *
 * Every output element is computed by the same loop in the same order whatever the batch composition,
 * so a row's results are bit-identical whether it is computed alone or in a batch (generation relies on
 * this) and runs are deterministic.
 *
 * Layout convention: activations are 2-D [tokens, features] with tokens = batch * time, row-major;
 * heads are contiguous slices of the feature axis (HF's layout before its view/transpose).
 */
import * as tf from "@tensorflow/tfjs";
import { fastGemm, stridedGemm } from "../backend/matmul.ts";

type F32 = Float32Array;

const values = (t: tf.Tensor): F32 => {
  if (t.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${t.dtype}`);
  // On the cpu backend this is the tensor's own buffer (no copy): read it, never write it.
  return t.dataSync() as F32;
};

/**
 * C[m, n] = sum_k A[m, k] * B[n, k] (A times B transposed): both operands are read along contiguous
 * rows. Blocked 4 rows of A by 2 rows of B so each loaded value is used several times; every output still
 * has a single accumulator summed in increasing k, so blocking never changes a result.
 */
export const matmulNT = (a: F32, b: F32, m: number, n: number, k: number): F32 => {
  // A BLAS when one is installed (src/backend/matmul.ts); the loop below otherwise.
  const fast = fastGemm(a, b, m, n, k, false, true);
  if (fast !== undefined) return fast;
  const c = new Float32Array(m * n);
  const dot = (ao: number, bo: number) => {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[ao + p] * b[bo + p];
    return s;
  };
  let i = 0;
  for (; i + 4 <= m; i += 4) {
    const a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
    let j = 0;
    for (; j + 2 <= n; j += 2) {
      const b0 = j * k, b1 = b0 + k;
      let s00 = 0, s10 = 0, s20 = 0, s30 = 0, s01 = 0, s11 = 0, s21 = 0, s31 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = b[b0 + p], x1 = b[b1 + p];
        const y0 = a[a0 + p], y1 = a[a1 + p], y2 = a[a2 + p], y3 = a[a3 + p];
        s00 += y0 * x0;
        s10 += y1 * x0;
        s20 += y2 * x0;
        s30 += y3 * x0;
        s01 += y0 * x1;
        s11 += y1 * x1;
        s21 += y2 * x1;
        s31 += y3 * x1;
      }
      const c0 = i * n + j;
      c[c0] = s00;
      c[c0 + n] = s10;
      c[c0 + 2 * n] = s20;
      c[c0 + 3 * n] = s30;
      c[c0 + 1] = s01;
      c[c0 + n + 1] = s11;
      c[c0 + 2 * n + 1] = s21;
      c[c0 + 3 * n + 1] = s31;
    }
    for (; j < n; j++) {
      for (let r = 0; r < 4; r++) c[(i + r) * n + j] = dot((i + r) * k, j * k);
    }
  }
  for (; i < m; i++) {
    for (let j = 0; j < n; j++) c[i * n + j] = dot(i * k, j * k);
  }
  return c;
};

/** [rows, cols] -> [cols, rows]. A plain loop: tf.transpose is generic and slow on cpu. */
export const transpose = (a: F32, rows: number, cols: number): F32 => {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[o + c];
  }
  return out;
};

/** y = x W^T for x [m, in] and W [out, in] (torch.nn.Linear without bias, HF weight layout). */
export const linear = (x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D => {
  const [m, k] = x.shape;
  const [n, kw] = w.shape;
  if (k !== kw) throw new RangeError(`linear: input has ${k} features, weight expects ${kw}`);
  const op = tf.customGrad((xt, wt) => {
    const xs = values(xt as tf.Tensor), ws = values(wt as tf.Tensor);
    return {
      value: tf.tensor2d(matmulNT(xs, ws, m, n, k), [m, n]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        // dX = dY W  and  dW = dY^T X: a BLAS takes the transposes as flags; the loop needs them as
        // "times a transpose" to reuse matmulNT.
        const dx = fastGemm(g, ws, m, k, n, false, false) ?? matmulNT(g, transpose(ws, n, k), m, k, n);
        const dw = fastGemm(g, xs, n, k, m, true, false) ??
          matmulNT(transpose(g, m, n), transpose(xs, m, k), n, k, m);
        return [tf.tensor2d(dx, [m, k]), tf.tensor2d(dw, [n, k])];
      },
    };
  });
  return op(x, w) as tf.Tensor2D;
};

/** Rows of `table` [vocab, dim] selected by `ids`; the gradient scatter-adds back into the table. */
export const embedding = (table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D => {
  const [vocab, dim] = table.shape;
  for (const id of ids) {
    if (!(id >= 0 && id < vocab)) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${vocab})`);
    }
  }
  const op = tf.customGrad((tt) => {
    const ts = values(tt as tf.Tensor);
    const out = new Float32Array(ids.length * dim);
    ids.forEach((id, i) => out.set(ts.subarray(id * dim, id * dim + dim), i * dim));
    return {
      value: tf.tensor2d(out, [ids.length, dim]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        const dt = new Float32Array(vocab * dim);
        ids.forEach((id, i) => {
          for (let d = 0; d < dim; d++) dt[id * dim + d] += g[i * dim + d];
        });
        return tf.tensor2d(dt, [vocab, dim]);
      },
    };
  });
  return op(table) as tf.Tensor2D;
};

/** Rows `rows` of x [n, dim] (for computing logits only where a loss needs them); gradient scatters back. */
export const selectRows = (x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D => {
  const [n, dim] = x.shape;
  for (const r of rows) if (!(r >= 0 && r < n)) throw new RangeError(`row ${r} is outside [0, ${n})`);
  const op = tf.customGrad((xt) => {
    const xs = values(xt as tf.Tensor);
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => out.set(xs.subarray(r * dim, r * dim + dim), i * dim));
    return {
      value: tf.tensor2d(out, [rows.length, dim]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy), dx = new Float32Array(n * dim);
        rows.forEach((r, i) => {
          for (let d = 0; d < dim; d++) dx[r * dim + d] += g[i * dim + d];
        });
        return tf.tensor2d(dx, [n, dim]);
      },
    };
  });
  return op(x) as tf.Tensor2D;
};

/** HF LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps), per row of x [rows, dim]. */
export const rmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D => {
  const [rows, dim] = x.shape;
  if (w.shape[0] !== dim) throw new RangeError(`rmsNorm: weight has ${w.shape[0]} entries, input ${dim}`);
  const op = tf.customGrad((xt, wt) => {
    const xs = values(xt as tf.Tensor), ws = values(wt as tf.Tensor);
    const inv = new Float64Array(rows); // 1 / rms per row, reused by the gradient
    const y = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let d = 0; d < dim; d++) ss += xs[o + d] * xs[o + d];
      const ir = 1 / Math.sqrt(ss / dim + eps);
      inv[r] = ir;
      for (let d = 0; d < dim; d++) y[o + d] = ws[d] * (xs[o + d] * ir);
    }
    return {
      value: tf.tensor2d(y, [rows, dim]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        const dx = new Float32Array(rows * dim);
        const dw = new Float64Array(dim);
        for (let r = 0; r < rows; r++) {
          const o = r * dim, ir = inv[r];
          // With u = g * w: dx = ir * u - x * ir^3 * sum(u * x) / dim.
          let ux = 0;
          for (let d = 0; d < dim; d++) {
            ux += g[o + d] * ws[d] * xs[o + d];
            dw[d] += g[o + d] * xs[o + d] * ir;
          }
          const c = ir * ir * ir * ux / dim;
          for (let d = 0; d < dim; d++) dx[o + d] = ir * g[o + d] * ws[d] - xs[o + d] * c;
        }
        return [tf.tensor2d(dx, [rows, dim]), tf.tensor1d(Float32Array.from(dw))];
      },
    };
  });
  return op(x, w) as tf.Tensor2D;
};

/** cos/sin of the rotary angles for each token: [tokens, headDim / 2] each. */
export interface RopeTables {
  readonly cos: F32;
  readonly sin: F32;
  readonly half: number;
}

/**
 * Rotary tables for the given token positions. Each step rounds to float32 the way HF's
 * LlamaRotaryEmbedding computes in float32, so angles at large positions match HF closely.
 */
export const ropeTables = (positions: ArrayLike<number>, headDim: number, theta: number): RopeTables => {
  const half = headDim / 2;
  const f = Math.fround;
  const invFreq = Array.from({ length: half }, (_, j) => f(1 / f(Math.pow(theta, f((2 * j) / headDim)))));
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let i = 0; i < positions.length; i++) {
    for (let j = 0; j < half; j++) {
      const angle = f(positions[i] * invFreq[j]);
      cos[i * half + j] = Math.cos(angle);
      sin[i * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin, half };
};

/**
 * Rotary position embedding in HF's rotate_half convention: within each head the first half pairs with
 * the second half, y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin. x is [tokens, heads * headDim] and
 * `tables` has one row per token. The gradient is the inverse rotation.
 */
export const rope = (x: tf.Tensor2D, tables: RopeTables, heads: number): tf.Tensor2D => {
  const [rows, width] = x.shape;
  const { cos, sin, half } = tables;
  if (width !== heads * 2 * half || cos.length !== rows * half) {
    throw new RangeError(`rope: input [${rows}, ${width}] does not match ${heads} heads and the tables`);
  }
  const rotate = (src: F32, sign: number): F32 => {
    const out = new Float32Array(src.length);
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < heads; h++) {
        const o = r * width + h * 2 * half;
        for (let j = 0; j < half; j++) {
          const c = cos[r * half + j], s = sign * sin[r * half + j];
          const a = src[o + j], b = src[o + j + half];
          out[o + j] = a * c - b * s;
          out[o + j + half] = b * c + a * s;
        }
      }
    }
    return out;
  };
  const op = tf.customGrad((xt) => ({
    value: tf.tensor2d(rotate(values(xt as tf.Tensor), 1), [rows, width]),
    gradFunc: (dy: tf.Tensor) => tf.tensor2d(rotate(values(dy), -1), [rows, width]),
  }));
  return op(x) as tf.Tensor2D;
};

/**
 * Shape of one attention call. Queries are [batch * tq, heads * headDim]; keys and values are
 * [batch * tk, kvHeads * headDim]. Query t of row b sits at key index qOffset + t and attends to key
 * indices keyStart[b] ..= qOffset + t (causal; keys before keyStart are left padding). Training uses
 * tq = tk, qOffset = 0, keyStart all 0; generation with a cache uses tk = cache capacity.
 */
export interface AttentionShape {
  readonly batch: number;
  readonly tq: number;
  readonly tk: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly qOffset: number;
  readonly keyStart?: Int32Array;
}

/** Copies columns [col, col + width) of rows [row, row + rows) of a matrix with `stride` columns. */
const takeBlock = (src: F32, row: number, rows: number, stride: number, col: number, width: number): F32 => {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    out.set(src.subarray((row + r) * stride + col, (row + r) * stride + col + width), r * width);
  }
  return out;
};

/** Adds a [rows, width] block into `dst` at the same place `takeBlock` took it from. */
const addBlock = (
  dst: F32,
  block: F32,
  row: number,
  rows: number,
  stride: number,
  col: number,
  width: number,
) => {
  for (let r = 0; r < rows; r++) {
    const o = (row + r) * stride + col;
    for (let d = 0; d < width; d++) dst[o + d] += block[r * width + d];
  }
};

/**
 * Grouped-query causal attention on raw arrays: softmax(q k^T / sqrt(headDim)) v, where query head h
 * uses key/value head floor(h / (heads / kvHeads)) like HF's repeat_kv. Computed per (row, head) as
 * small dense matrix products through matmulNT, masked scores getting probability exactly 0 (the
 * backward pass is then the textbook formulas). With `keepProbs` the probabilities
 * ([batch, heads, tq, tk]) are returned for the backward pass. A query with no visible key (a padding
 * position) outputs zeros.
 */
export const attentionValues = (
  q: F32,
  k: F32,
  v: F32,
  s: AttentionShape,
  keepProbs: boolean,
): { out: F32; probs?: F32 } => {
  const { batch, tq, tk, heads, kvHeads, headDim: hd } = s;
  const group = heads / kvHeads, scale = 1 / Math.sqrt(hd), qw = heads * hd, kw = kvHeads * hd;
  const out = new Float32Array(batch * tq * qw);
  const probs = keepProbs ? new Float32Array(batch * heads * tq * tk) : undefined;
  const gemm = stridedGemm(tq, tk, hd);
  if (gemm) {
    // BLAS reads each head's columns in place (leading dimensions qw, kw) and writes O into `out`.
    const scratch = probs ? undefined : new Float32Array(tq * tk);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        const kOff = b * tk * kw + Math.floor(h / group) * hd, qOff = b * tq * qw + h * hd;
        const p = probs ? probs.subarray((b * heads + h) * tq * tk, (b * heads + h + 1) * tq * tk) : scratch!;
        gemm({
          ...NT,
          m: tq,
          n: tk,
          k: hd,
          a: q.subarray(qOff),
          lda: qw,
          b: k.subarray(kOff),
          ldb: kw,
          beta: 0,
          c: p,
          ldc: tk,
        });
        softmaxRows(p, s, b, scale);
        gemm({
          ...NN,
          m: tq,
          n: hd,
          k: tk,
          a: p,
          lda: tk,
          b: v.subarray(kOff),
          ldb: kw,
          beta: 0,
          c: out.subarray(qOff),
          ldc: qw,
        });
      }
    }
    return { out, probs };
  }
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < kvHeads; g++) {
      const kb = takeBlock(k, b * tk, tk, kw, g * hd, hd);
      const vt = transpose(takeBlock(v, b * tk, tk, kw, g * hd, hd), tk, hd);
      for (let h = g * group; h < (g + 1) * group; h++) {
        const qb = takeBlock(q, b * tq, tq, qw, h * hd, hd);
        const p = matmulNT(qb, kb, tq, tk, hd); // scores, turned into probabilities in place
        softmaxRows(p, s, b, scale);
        addBlock(out, matmulNT(p, vt, tq, hd, tk), b * tq, tq, qw, h * hd, hd);
        probs?.set(p, (b * heads + h) * tq * tk);
      }
    }
  }
  return { out, probs };
};

const NT = { transA: false, transB: true } as const;
const NN = { transA: false, transB: false } as const;
const TN = { transA: true, transB: false } as const;

/** Scores [tq, tk] of row b -> causal softmax of scale * scores, in place; invisible keys get exactly 0. */
const softmaxRows = (p: F32, s: AttentionShape, b: number, scale: number) => {
  const { tq, tk } = s;
  const first = s.keyStart ? s.keyStart[b] : 0;
  for (let t = 0; t < tq; t++) {
    const last = Math.min(s.qOffset + t, tk - 1), o = t * tk;
    // Invisible keys get exactly 0 (and add nothing to the sum, so only visible ones are summed).
    if (last < first) {
      p.fill(0, o, o + tk);
      continue;
    }
    p.fill(0, o, o + first);
    p.fill(0, o + last + 1, o + tk);
    let max = -Infinity;
    for (let j = o + first; j <= o + last; j++) {
      const x = p[j] * scale;
      if (x > max) max = x;
    }
    let sum = 0;
    for (let j = o + first; j <= o + last; j++) {
      p[j] = Math.exp(p[j] * scale - max);
      sum += p[j];
    }
    for (let j = o + first; j <= o + last; j++) p[j] /= sum;
  }
};

/** dP [tq, tk] -> dS = scale * P * (dP - rowsum(P * dP)), in place (softmax backward; masked P are 0). */
const softmaxBackwardRows = (p: F32, ds: F32, tq: number, tk: number, scale: number) => {
  for (let t = 0; t < tq; t++) {
    let pdp = 0;
    for (let j = 0; j < tk; j++) pdp += p[t * tk + j] * ds[t * tk + j];
    for (let j = 0; j < tk; j++) ds[t * tk + j] = p[t * tk + j] * (ds[t * tk + j] - pdp) * scale;
  }
};

/** `attentionValues` as a differentiable tfjs op (see there for the layout). */
export const causalAttention = (
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  s: AttentionShape,
): tf.Tensor2D => {
  const { batch, tq, tk, heads, kvHeads, headDim: hd } = s;
  if (heads % kvHeads !== 0) throw new RangeError(`heads ${heads} not divisible by kvHeads ${kvHeads}`);
  if (q.shape[0] !== batch * tq || q.shape[1] !== heads * hd) throw new RangeError("attention: bad q shape");
  if (k.shape[0] !== batch * tk || k.shape[1] !== kvHeads * hd) {
    throw new RangeError("attention: bad k shape");
  }
  const op = tf.customGrad((qt, kt, vt) => {
    const qs = values(qt as tf.Tensor), ks = values(kt as tf.Tensor), vs = values(vt as tf.Tensor);
    const { out, probs } = attentionValues(qs, ks, vs, s, true);
    const P = probs ?? new Float32Array(0);
    return {
      value: tf.tensor2d(out, [batch * tq, heads * hd]),
      gradFunc: (dy: tf.Tensor) => {
        const g = values(dy);
        const group = heads / kvHeads, scale = 1 / Math.sqrt(hd), qw = heads * hd, kw = kvHeads * hd;
        const dq = new Float32Array(qs.length),
          dk = new Float32Array(ks.length),
          dv = new Float32Array(vs.length);
        const gemm = stridedGemm(tq, tk, hd);
        if (gemm) {
          // dP = dO V^T; dS from the softmax backward; dQ = dS K; dK += dS^T Q; dV += P^T dO (the heads of
          // a group add into the same key/value columns, hence beta 1 there).
          const ds = new Float32Array(tq * tk);
          for (let b = 0; b < batch; b++) {
            for (let h = 0; h < heads; h++) {
              const kOff = b * tk * kw + Math.floor(h / group) * hd, qOff = b * tq * qw + h * hd;
              const p = P.subarray((b * heads + h) * tq * tk, (b * heads + h + 1) * tq * tk);
              gemm({
                ...NT,
                m: tq,
                n: tk,
                k: hd,
                a: g.subarray(qOff),
                lda: qw,
                b: vs.subarray(kOff),
                ldb: kw,
                beta: 0,
                c: ds,
                ldc: tk,
              });
              softmaxBackwardRows(p, ds, tq, tk, scale);
              gemm({
                ...NN,
                m: tq,
                n: hd,
                k: tk,
                a: ds,
                lda: tk,
                b: ks.subarray(kOff),
                ldb: kw,
                beta: 0,
                c: dq.subarray(qOff),
                ldc: qw,
              });
              gemm({
                ...TN,
                m: tk,
                n: hd,
                k: tq,
                a: ds,
                lda: tk,
                b: qs.subarray(qOff),
                ldb: qw,
                beta: 1,
                c: dk.subarray(kOff),
                ldc: kw,
              });
              gemm({
                ...TN,
                m: tk,
                n: hd,
                k: tq,
                a: p,
                lda: tk,
                b: g.subarray(qOff),
                ldb: qw,
                beta: 1,
                c: dv.subarray(kOff),
                ldc: kw,
              });
            }
          }
          return [tf.tensor2d(dq, q.shape), tf.tensor2d(dk, k.shape), tf.tensor2d(dv, v.shape)];
        }
        for (let b = 0; b < batch; b++) {
          for (let kv = 0; kv < kvHeads; kv++) {
            const kb = takeBlock(ks, b * tk, tk, kw, kv * hd, hd), kbT = transpose(kb, tk, hd);
            const vb = takeBlock(vs, b * tk, tk, kw, kv * hd, hd);
            for (let h = kv * group; h < (kv + 1) * group; h++) {
              const p = P.subarray((b * heads + h) * tq * tk, (b * heads + h + 1) * tq * tk);
              const go = takeBlock(g, b * tq, tq, qw, h * hd, hd);
              const qb = takeBlock(qs, b * tq, tq, qw, h * hd, hd);
              const ds = matmulNT(go, vb, tq, tk, hd);
              softmaxBackwardRows(p, ds, tq, tk, scale);
              const dsT = transpose(ds, tq, tk);
              addBlock(dq, matmulNT(ds, kbT, tq, hd, tk), b * tq, tq, qw, h * hd, hd);
              addBlock(dk, matmulNT(dsT, transpose(qb, tq, hd), tk, hd, tq), b * tk, tk, kw, kv * hd, hd);
              addBlock(
                dv,
                matmulNT(transpose(p, tq, tk), transpose(go, tq, hd), tk, hd, tq),
                b * tk,
                tk,
                kw,
                kv * hd,
                hd,
              );
            }
          }
        }
        return [tf.tensor2d(dq, q.shape), tf.tensor2d(dk, k.shape), tf.tensor2d(dv, v.shape)];
      },
    };
  });
  return op(q, k, v) as tf.Tensor2D;
};

/** HF LlamaMLP's activation: silu(gate) * up, elementwise on equal shapes. */
export const swiglu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D => {
  const shape = gate.shape;
  const op = tf.customGrad((gt, ut) => {
    const gs = values(gt as tf.Tensor), us = values(ut as tf.Tensor);
    // sigmoid(gate) is kept for the backward pass: exp is most of this op's time.
    const sig = new Float64Array(gs.length);
    const y = new Float32Array(gs.length);
    for (let i = 0; i < gs.length; i++) {
      const e = 1 + Math.exp(-gs[i]);
      sig[i] = 1 / e;
      y[i] = (gs[i] / e) * us[i];
    }
    return {
      value: tf.tensor2d(y, shape),
      gradFunc: (dy: tf.Tensor) => {
        const d = values(dy);
        const dg = new Float32Array(gs.length), du = new Float32Array(gs.length);
        for (let i = 0; i < gs.length; i++) {
          const sg = sig[i];
          du[i] = d[i] * gs[i] * sg;
          dg[i] = d[i] * us[i] * sg * (1 + gs[i] * (1 - sg));
        }
        return [tf.tensor2d(dg, shape), tf.tensor2d(du, shape)];
      },
    };
  });
  return op(gate, up) as tf.Tensor2D;
};
