/** What each architecture's decoder provides to ./model.ts, which dispatches on `config.architecture`. */
import type * as tf from "@tensorflow/tfjs";
import type { KvCache } from "./cache.ts";
import type { ModelConfig } from "./config.ts";
import type { Params } from "./params.ts";

/** One forward call's tokens, already validated: ids in the vocabulary, positions in range. */
export interface DecoderInput {
  /** [batch * tq] token ids, row-major. */
  readonly tokens: Int32Array;
  readonly batch: number;
  readonly tq: number;
  /** Position of each token (negative for left padding, which nothing attends to). */
  readonly positions: Int32Array;
  /** Appended to (not advanced: the caller advances `length`). */
  readonly cache?: KvCache;
}

export interface Decoder {
  /** Every parameter's HF name and shape, in a fixed order (the order `initParams` draws them in). */
  readonly shapes: (c: ModelConfig) => Map<string, number[]>;
  /** Hidden states [batch * tq, hidden] after the last block, before the final norm. */
  readonly hidden: (params: Params, c: ModelConfig, input: DecoderInput) => tf.Tensor2D;
  /** The final norm: [n, hidden] -> [n, hidden], the input of the LM head. */
  readonly finalNorm: (params: Params, c: ModelConfig, x: tf.Tensor2D) => tf.Tensor2D;
  /** The LM head's weight [vocab, hidden] (the token embedding when tied): logits = norm(x) W^T. */
  readonly headWeight: (params: Params, c: ModelConfig) => tf.Tensor2D;
}
