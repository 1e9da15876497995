/**
 * Data order and batching for training.
 *
 * The order is a pure function of (seed, position): epoch e visits the examples in a permutation drawn
 * from an Rng seeded with (seed, e). The data cursor of optimizer step s is therefore s * batchSize, and a
 * resumed run sees exactly the batches an uninterrupted run would, with nothing to restore but the step.
 */
import { Rng } from "../util/rng.ts";

export interface Sequence {
  readonly ids: ReadonlyArray<number>;
  readonly weights: ReadonlyArray<number>;
}

/** A padded rectangle of sequences: ids and weights are row-major [batch, seqLen]. */
export interface MicroBatch {
  readonly batch: number;
  readonly seqLen: number;
  readonly ids: Int32Array;
  readonly weights: Float32Array;
}

const permutation = (n: number, seed: number, epoch: number): number[] => {
  const order = Array.from({ length: n }, (_, i) => i);
  Rng.seeded(seed * 1_000_003 + epoch).shuffle(order);
  return order;
};

/** Indices of the examples in optimizer step `step` (0-based); epochs wrap with a fresh permutation. */
export const batchIndices = (n: number, batchSize: number, step: number, seed: number): number[] => {
  const out: number[] = [];
  let perm: number[] | undefined;
  let permEpoch = -1;
  for (let j = 0; j < batchSize; j++) {
    const g = step * batchSize + j;
    const epoch = Math.floor(g / n);
    if (epoch !== permEpoch) {
      perm = permutation(n, seed, epoch);
      permEpoch = epoch;
    }
    out.push(perm![g % n]);
  }
  return out;
};

/**
 * Packs sequences into a right-padded rectangle. Padding gets weight 0 and id `padId`; with causal
 * attention, right padding cannot change the logits of the real tokens before it.
 */
export const pad = (seqs: ReadonlyArray<Sequence>, padId: number): MicroBatch => {
  const batch = seqs.length;
  const seqLen = Math.max(...seqs.map((s) => s.ids.length));
  const ids = new Int32Array(batch * seqLen).fill(padId);
  const weights = new Float32Array(batch * seqLen);
  seqs.forEach((s, r) => {
    ids.set(s.ids, r * seqLen);
    weights.set(s.weights, r * seqLen);
  });
  return { batch, seqLen, ids, weights };
};

/** Splits a batch into micro-batches of at most `size` sequences (gradient accumulation). */
export const microBatches = (
  seqs: ReadonlyArray<Sequence>,
  size: number,
  padId: number,
): MicroBatch[] => {
  const out: MicroBatch[] = [];
  for (let i = 0; i < seqs.length; i += size) out.push(pad(seqs.slice(i, i + size), padId));
  return out;
};
