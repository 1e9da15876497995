/**
 * What the methods that learn from a model's own outputs share (UPFT's unsupervised setting, CFT, S3FT):
 * batched generation from token-id prompts, the answer-match judge, and turning a generation back into a
 * TokenRecord that the mask and train steps consume like any tokenised example.
 *
 * A generated response is kept as the model's own token ids (never re-tokenised from its text), so
 * training on it trains exactly the tokens the model produced.
 */
import {
  answerPartStart,
  extractAnswer,
  locateKey,
  type LocatorSpec,
  normaliseAnswer,
} from "../data/locate.ts";
import type { TokenRecord } from "../data/records.ts";
import type { TextTokenizer } from "../data/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import type { Params } from "../model/model.ts";
import type { Rng } from "../util/rng.ts";

export interface Generated {
  /** New tokens, EOS not included. */
  readonly ids: number[];
  /** The model ended the response with EOS (rather than running out of tokens). */
  readonly finished: boolean;
}

export interface GenerateAllOptions {
  readonly maxNewTokens: number;
  readonly batchSize: number;
  readonly eosId: number;
  /** 0: greedy. */
  readonly temperature?: number;
  readonly rng?: Rng;
  /** Called after each batch with the number of prompts done. */
  readonly onBatch?: (done: number) => void;
}

/**
 * Generations for every prompt, `batchSize` prompts per batched call. Each row is capped so that prompt
 * and response fit the model's positions.
 */
export const generateAll = (
  params: Params,
  config: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateAllOptions,
): Generated[] => {
  const out: Generated[] = [];
  for (let i = 0; i < prompts.length; i += options.batchSize) {
    const batch = prompts.slice(i, i + options.batchSize);
    const limit = Math.min(
      options.maxNewTokens,
      config.maxPositions - Math.max(...batch.map((p) => p.length)),
    );
    const ids = limit > 0
      ? generate(params, config, batch, {
        maxNewTokens: limit,
        eosId: options.eosId,
        temperature: options.temperature,
        rng: options.rng,
      })
      : batch.map(() => []);
    // generate() stops a row at EOS without returning it; a row shorter than the limit therefore ended so.
    for (const g of ids) out.push({ ids: g, finished: g.length < limit });
    options.onBatch?.(Math.min(i + options.batchSize, prompts.length));
  }
  return out;
};

/** The judge of every self-generating method: the answer the locator extracts matches the gold answer. */
export const answerMatches = (text: string, gold: string, locator: LocatorSpec): boolean => {
  const predicted = extractAnswer(text, locator);
  return predicted !== undefined && normaliseAnswer(predicted) === normaliseAnswer(gold);
};

/**
 * The rule every self-generating method accepts a generation by: it ended with EOS and the judge accepts
 * its answer. A cut-off generation is never accepted, even with the right answer in it: training on it
 * would teach the model not to stop.
 */
export const acceptedGeneration = (
  tok: TextTokenizer,
  g: Generated,
  gold: string,
  locator: LocatorSpec,
): boolean => g.finished && g.ids.length > 0 && answerMatches(tok.decode(g.ids), gold, locator);

/**
 * Token span [start, end) of the tokens that overlap the character span [from, to) of the text that
 * `ids` decode to; `charEnd[i]` is the length of the decoding of ids[0..i].
 */
const tokenSpan = (charEnd: ReadonlyArray<number>, from: number, to: number) => {
  let start = charEnd.findIndex((e) => e > from);
  if (start < 0) start = charEnd.length;
  let end = charEnd.findIndex((e) => e >= to);
  end = end < 0 ? charEnd.length : end + 1;
  return { start, end: Math.max(start, end) };
};

/**
 * A TokenRecord for `prompt` followed by a generated response (and EOS when the model ended it). The key
 * and answer-part spans are found by running the locator on the decoded response and mapping characters
 * back to the tokens that overlap them; both are empty spans at the end of the sequence when the locator
 * finds no key (only response-wide masks make sense on such a record).
 */
export const generatedRecord = (
  tok: TextTokenizer,
  locator: LocatorSpec,
  source: string,
  prompt: ReadonlyArray<number>,
  response: Generated,
  answer: string,
): TokenRecord => {
  const ids = [...prompt, ...response.ids, ...(response.finished ? [tok.eosId] : [])];
  const p = prompt.length;
  const charEnd = response.ids.map((_, i) => tok.decode(response.ids.slice(0, i + 1)).length);
  const text = tok.decode(response.ids);
  const effective: LocatorSpec = locator.kind === "field" ? { kind: "answer-tags" } : locator;
  const key = locateKey(text, effective);
  if (key === undefined || key.end <= key.start) {
    const none = { start: ids.length, end: ids.length };
    return { source, input_ids: ids, prompt_length: p, key: none, answer_part: none, answer };
  }
  const k = tokenSpan(charEnd, key.start, key.end);
  const a = tokenSpan(charEnd, answerPartStart(text, effective, key), text.length);
  return {
    source,
    input_ids: ids,
    prompt_length: p,
    key: { start: p + k.start, end: p + k.end },
    answer_part: { start: p + Math.min(a.start, k.start), end: ids.length },
    answer,
  };
};
