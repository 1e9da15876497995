/** Shared helpers of the tests/method_*.test.ts files. */
import { Rng } from "../src/util/rng.ts";

/** Softmax of one row in float64. */
export const softmax64 = (row: ArrayLike<number>): Float64Array => {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) max = Math.max(max, row[v]);
  const p = Float64Array.from({ length: row.length }, (_, v) => Math.exp(row[v] - max));
  const sum = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / sum);
};

/** Random logits [rows, vocab], targets and weights (one weight 0, the others in (0, 2]). */
export const randomCase = (seed: number, rows: number, vocab: number) => {
  const rng = Rng.seeded(seed);
  const logits = Float32Array.from({ length: rows * vocab }, () => 2 * rng.normal());
  const targets = Int32Array.from({ length: rows }, () => Math.floor(rng.next() * vocab));
  const weights = Float32Array.from({ length: rows }, (_, i) => (i === 1 ? 0 : 0.25 + 1.75 * rng.next()));
  return { logits, targets, weights, rows, vocab };
};
