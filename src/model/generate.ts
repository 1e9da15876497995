/**
 * Batched autoregressive generation with a KV cache.
 *
 * Prompts of different lengths are left-padded to a common length; padding positions are never attended
 * to and do not advance RoPE positions (the cache's keyStart), so each row's tokens are exactly those it
 * would get alone (tests check this bit for bit). Each step feeds one token per row and computes the LM
 * head for the last position only.
 */
import * as tf from "@tensorflow/tfjs";
import { type Reading, runReading, runReadingAsync } from "../backend/webgpu.ts";
import type { Rng } from "../util/rng.ts";
import { disposeCache } from "./cache.ts";
import type { ModelConfig } from "./config.ts";
import { createCache, forward, type KvCache, type Params } from "./model.ts";

export interface GenerateOptions {
  /** Upper bound on new tokens per row (0 or less: nothing is generated). */
  readonly maxNewTokens: number;
  /** A row stops when it produces this id, or one of these ids (which is not included in its output). */
  readonly eosId?: number | ReadonlyArray<number>;
  /** 0 or absent: greedy (first maximum on ties). Above 0: sample from softmax(logits / temperature). */
  readonly temperature?: number;
  /**
   * Nucleus sampling (with temperature > 0): sample only among the most probable tokens whose
   * probabilities add up to at least topP (HF's TopPLogitsWarper; the most probable token always stays).
   * 1 or absent: no cut.
   */
  readonly topP?: number;
  /** Required when temperature > 0. Rows draw in order, one number per unfinished row per step. */
  readonly rng?: Rng;
  /**
   * Called after each token a row keeps, with that row's new tokens so far; true stops the row (the
   * token stays in its output). The CLI uses it for stop strings, which need the tokenizer.
   */
  readonly shouldStop?: (row: number, tokens: ReadonlyArray<number>) => boolean;
}

/** Index of the first maximum. */
const argmax = (xs: Float32Array, start: number, n: number): number => {
  let best = 0;
  for (let i = 1; i < n; i++) if (xs[start + i] > xs[start + best]) best = i;
  return best;
};

const sample = (
  xs: Float32Array,
  start: number,
  n: number,
  temperature: number,
  topP: number,
  rng: Rng,
): number => {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, xs[start + i]);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    p[i] = Math.exp((xs[start + i] - max) / temperature);
    sum += p[i];
  }
  // Candidates in decreasing probability (ties by id, so the order is deterministic); with topP < 1 the
  // list ends at the first token whose cumulative probability reaches topP.
  let order = Array.from({ length: n }, (_, i) => i);
  if (topP < 1) {
    order.sort((a, b) => p[b] - p[a] || a - b);
    let cumulative = 0, keep = 0;
    while (keep < n && (keep === 0 || cumulative < topP * sum)) cumulative += p[order[keep++]];
    order = order.slice(0, keep);
    sum = cumulative;
  }
  let u = rng.next() * sum;
  for (const i of order) {
    u -= p[i];
    if (u < 0) return i;
  }
  return order[order.length - 1]; // u landed on the rounding error at the very end
};

/** Next-token logits [batch, 1, vocab] for `ids` [batch, time] continuing `cache`. */
function* step(
  params: Params,
  c: ModelConfig,
  ids: Int32Array,
  batch: number,
  cache: KvCache,
): Generator<Iterable<tf.Tensor>, Float32Array, void> {
  const logits = tf.tidy(() => {
    const t = tf.tensor2d(ids, [batch, ids.length / batch], "int32");
    return forward(params, c, t, cache, { lastPositionOnly: true });
  });
  try {
    yield [logits];
    // Read after the tidy scope (see tidyValues in ./model.ts).
    return logits.dataSync() as Float32Array;
  } finally {
    logits.dispose();
  }
}

/** The generation loop, as a program that yields the logits it reads (src/backend/webgpu.ts). */
function* generation(
  params: Params,
  c: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateOptions,
): Reading<number[][]> {
  const { maxNewTokens } = options;
  const eos = new Set(typeof options.eosId === "number" ? [options.eosId] : options.eosId ?? []);
  const temperature = options.temperature ?? 0, topP = options.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  if (!Number.isInteger(maxNewTokens)) {
    throw new RangeError(`maxNewTokens must be an integer, got ${maxNewTokens}`);
  }
  if (temperature > 0 && options.rng === undefined) {
    throw new RangeError("sampling (temperature > 0) needs an rng");
  }
  if (prompts.some((p) => p.length === 0)) throw new RangeError("cannot generate from an empty prompt");
  const batch = prompts.length;
  const outputs: number[][] = prompts.map(() => []);
  if (batch === 0 || maxNewTokens <= 0) return outputs;

  const width = Math.max(...prompts.map((p) => p.length));
  const padding = prompts.map((p) => width - p.length);
  // The last new token is returned, not fed back, hence - 1.
  const cache = createCache(c, batch, width + maxNewTokens - 1, padding);
  try {
    const ids = new Int32Array(batch * width); // padding id 0: never attended to
    prompts.forEach((p, b) => ids.set(p, b * width + padding[b]));

    const done = new Array<boolean>(batch).fill(false);
    let logits = yield* step(params, c, ids, batch, cache);
    for (let n = 0;; n++) {
      const next = new Int32Array(batch);
      for (let b = 0; b < batch; b++) {
        if (done[b]) continue;
        const v = c.vocabSize, at = b * v;
        const token = temperature > 0
          ? sample(logits, at, v, temperature, topP, options.rng!)
          : argmax(logits, at, v);
        if (eos.has(token)) done[b] = true;
        else {
          outputs[b].push(token);
          next[b] = token;
          if (options.shouldStop?.(b, outputs[b])) done[b] = true;
        }
      }
      if (n + 1 >= maxNewTokens || done.every((d) => d)) return outputs;
      logits = yield* step(params, c, next, batch, cache);
    }
  } finally {
    disposeCache(cache);
  }
}

/**
 * New tokens for each prompt (prompt not included), on a backend that reads synchronously (every one but
 * webgpu). Throws RangeError on an empty prompt, a bad id or count.
 */
export const generate = (
  params: Params,
  c: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateOptions,
): number[][] => runReading(generation(params, c, prompts, options));

/** `generate` on any backend, webgpu included (the cache then stays on the device): it awaits each read. */
export const generateAsync = (
  params: Params,
  c: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateOptions,
): Promise<number[][]> => runReadingAsync(generation(params, c, prompts, options));
