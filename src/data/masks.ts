/**
 * Loss masks: which tokens of a TokenisedExample the loss is taken on, and with what weight.
 *
 * Conventions (shared with the training loop):
 * - `mask[t]` is the weight of the loss on PREDICTING `ids[t]`, i.e. on the logits at position t-1. A loop
 *   that computes logits for positions 0..n-2 uses `mask.subarray(1)` as the weights of its targets
 *   `ids[1..n-1]`.
 * - `mask[0]` is always 0 (nothing predicts the first token) and every prompt position
 *   (`t < promptLength`) is 0: SFT never trains the model to produce the prompt.
 * - "response" covers every response token including the final EOS (if it survived truncation).
 * - "key" covers the key (answer) tokens only; "answer" covers the answer part, from the end of the
 *   thinking part to the end of the sequence (`<Answer>…</Answer>` and EOS): SFTKey's stage two.
 * - A mask that selects nothing (for example "key" on an example without a key) is all zeros rather than
 *   an error; callers drop such examples by checking `maskWeightSum(mask) === 0`.
 */
import { Schema } from "effect";
import type { TokenisedExample } from "./tokenise.ts";

/** Which tokens a mask weighs, as plain data (see above). */
export type MaskSpec =
  | { readonly kind: "response" }
  | { readonly kind: "key" }
  | { readonly kind: "answer" }
  | { readonly kind: "prefix"; readonly k: number }
  | { readonly kind: "mix"; readonly parts: ReadonlyArray<MixPart> };

/** One part of a "mix" mask: `weight` times the weights of `mask`. */
export interface MixPart {
  /** Non-negative factor. */
  readonly weight: number;
  /** The mask it scales. */
  readonly mask: MaskSpec;
}

const MixPartSchema: Schema.Schema<MixPart> = Schema.Struct({
  weight: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  mask: Schema.suspend((): Schema.Schema<MaskSpec> => MaskSpec),
});

/** Decoder for mask specs in configuration, tagged by `kind`. */
export const MaskSpec: Schema.Schema<MaskSpec> = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("response") }),
  Schema.Struct({ kind: Schema.Literal("key") }),
  Schema.Struct({ kind: Schema.Literal("answer") }),
  Schema.Struct({ kind: Schema.Literal("prefix"), k: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)) }),
  Schema.Struct({ kind: Schema.Literal("mix"), parts: Schema.Array(MixPartSchema).pipe(Schema.minItems(1)) }),
);

/** Set `weight` on positions [from, to), never touching position 0 or the prompt. */
const fill = (m: Float32Array, ex: TokenisedExample, from: number, to: number, weight: number) => {
  const lo = Math.max(from, ex.promptLength, 1);
  const hi = Math.min(to, m.length);
  for (let t = lo; t < hi; t++) m[t] += weight;
};

const addMask = (m: Float32Array, spec: MaskSpec, ex: TokenisedExample, weight: number): void => {
  switch (spec.kind) {
    case "response":
      fill(m, ex, ex.promptLength, ex.ids.length, weight);
      return;
    case "key":
      if (ex.key !== undefined) fill(m, ex, ex.key.start, ex.key.end, weight);
      return;
    case "answer":
      if (ex.answer !== undefined) fill(m, ex, ex.answer.start, ex.answer.end, weight);
      return;
    case "prefix":
      fill(m, ex, ex.promptLength, ex.promptLength + spec.k, weight);
      return;
    case "mix":
      for (const part of spec.parts) addMask(m, part.mask, ex, weight * part.weight);
      return;
  }
};

/** Per-token loss weights for `ex` (length `ex.ids.length`); see the conventions at the top of the file. */
export const buildMask = (spec: MaskSpec, ex: TokenisedExample): Float32Array => {
  const m = new Float32Array(ex.ids.length);
  addMask(m, spec, ex, 1);
  return m;
};

/** Total weight of a mask; 0 means the example contributes nothing to the loss. */
export const maskWeightSum = (m: Float32Array): number => {
  let s = 0;
  for (const w of m) s += w;
  return s;
};
