/**
 * Growing a model's vocabulary: the token embedding and, when it is not tied to it, the LM head get more
 * rows; every other parameter is unchanged. The rows of existing token ids are copied bit for bit, so
 * the logits of every old token are unchanged.
 *
 * New rows are the mean of the existing rows (per matrix: the embedding's mean for the embedding, the
 * head's for the head). transformers' `resize_token_embeddings(mean_resizing=True)` samples them from a
 * normal distribution around that mean with covariance 1e-9 times the rows' covariance, and uses the plain
 * mean when that covariance is not positive definite; we always use the plain mean: the noise is about
 * 3e-5 standard deviations, too small to matter, and the mean is deterministic and needs no d x d matrix.
 */
import type { ModelConfig } from "./config.ts";
import { type Params, paramsFromArrays } from "./model.ts";

/** The HF names of the embedding and (untied) LM head of a configuration. */
export const vocabularyMatrices = (c: ModelConfig): string[] => [
  c.architecture === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight",
  ...(c.tieEmbeddings ? [] : ["lm_head.weight"]),
];

/** The mean of the rows of a [rows, width] matrix, accumulated in float64. */
export const rowMean = (data: Float32Array, rows: number, width: number): Float32Array => {
  const sum = new Float64Array(width);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < width; j++) sum[j] += data[r * width + j];
  }
  return Float32Array.from(sum, (s) => s / rows);
};

/**
 * New parameters for a vocabulary of `vocabSize` rows (at least the current one). Rows from the old
 * size up, and the rows listed in `reinitialise` (ids of new tokens that fall inside an embedding padded
 * beyond its tokenizer), are set to the mean of the old rows. The old parameters are left as they are
 * (the caller disposes them).
 */
export const growVocabulary = (
  c: ModelConfig,
  params: Params,
  vocabSize: number,
  reinitialise: ReadonlyArray<number> = [],
): { config: ModelConfig; params: Params } => {
  const old = c.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < old) {
    throw new RangeError(`cannot grow a vocabulary of ${old} to ${vocabSize}`);
  }
  for (const id of reinitialise) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`row ${id} is outside [0, ${vocabSize})`);
    }
  }
  const config: ModelConfig = { ...c, vocabSize };
  const grown = new Set(vocabularyMatrices(c));
  const arrays = new Map<string, Float32Array>();
  for (const [name, v] of params) {
    const data = v.dataSync() as Float32Array;
    if (!grown.has(name)) {
      arrays.set(name, Float32Array.from(data));
      continue;
    }
    const width = v.shape[1]!;
    const mean = rowMean(data, old, width);
    const out = new Float32Array(vocabSize * width);
    out.set(data.subarray(0, old * width));
    for (let r = old; r < vocabSize; r++) out.set(mean, r * width);
    for (const r of reinitialise) out.set(mean, r * width);
    arrays.set(name, out);
  }
  return { config, params: paramsFromArrays(config, arrays) };
};
