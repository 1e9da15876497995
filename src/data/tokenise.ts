/**
 * Turning a RawExample into token ids with the prompt length and the key's token span.
 *
 * Why segment-wise encoding: the text is cut at the prompt/response boundary and at both ends of the key,
 * each piece is encoded on its own, and the ids are concatenated:
 *
 *   template(prompt) | response[0:answerStart] | response[answerStart:keyStart] | response[keyStart:keyEnd]
 *     | response[keyEnd:] | EOS
 *
 * Encoding the whole text at once lets BPE merge across those boundaries: GPT-2 encodes "#### 72" as
 * "####", " 72", so no token boundary falls where the key "72" starts, and the key would have to be
 * widened to " 72" or narrowed to nothing. Cutting first guarantees that the prompt is exactly the first
 * `promptLength` tokens and that the key tokens decode to exactly the key characters, which is what
 * stage two of SFTKey trains on. The cost is a tokenisation that can differ slightly from what the
 * tokenizer would produce for the joined text at those two or three boundaries; the same segmentation is
 * used for both training stages, so they see identical sequences.
 */
import { Schema } from "effect";
import type { RawExample } from "./formats.ts";
import type { CharSpan } from "./locate.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** A token span, `end` exclusive. */
export interface TokenSpan {
  readonly start: number;
  readonly end: number;
}

export interface TokenisedExample {
  readonly source: string;
  readonly ids: number[];
  /** Number of leading tokens that belong to the templated prompt (never more than ids.length). */
  readonly promptLength: number;
  /**
   * Token positions of the key. After truncation it is clipped to the kept tokens (absent if none of it
   * is kept); `keyTruncated` tells whether that happened.
   */
  readonly key?: TokenSpan;
  /** Token positions of the answer part (from the end of the thinking part to the end, EOS included). */
  readonly answer?: TokenSpan;
  /** The full sequence (prompt, response and EOS) was longer than maxLength and was cut. */
  readonly truncated: boolean;
  /** Part of the key was cut off by maxLength. */
  readonly keyTruncated: boolean;
}

export interface TokeniseOptions {
  /** Prompt template; `{prompt}` is replaced by the prompt (every occurrence). */
  readonly template: string;
  /** Maximum number of tokens kept, EOS included. */
  readonly maxLength: number;
  /**
   * Character offset in the response where the answer part begins (see locate.ts answerPartStart); the
   * text is cut there too, and `answer` spans from there to the end of the sequence.
   */
  readonly answerStart?: number;
}

/** A prompt template must contain the `{prompt}` placeholder, or the prompt would silently be dropped. */
export const PromptTemplate = Schema.String.pipe(
  Schema.filter((t) => t.includes("{prompt}"), { message: () => "must contain {prompt}" }),
);

/** A replacer function, because a replacement string would expand `$'`, `$&`, ... found in LaTeX prompts. */
export const renderPrompt = (template: string, prompt: string): string =>
  template.replaceAll("{prompt}", () => prompt);

/**
 * Tokenise one example segment-wise (see the file comment). `keySpan` is a character span in
 * `ex.response` (from locateKey); undefined means the example has no key.
 */
export const tokeniseExample = (
  tok: TextTokenizer,
  ex: RawExample,
  keySpan: CharSpan | undefined,
  opts: TokeniseOptions,
): TokenisedExample => {
  if (!Number.isInteger(opts.maxLength) || opts.maxLength < 1) {
    throw new RangeError(`maxLength must be a positive integer, got ${opts.maxLength}`);
  }
  const r = ex.response;
  if (
    keySpan !== undefined && !(0 <= keySpan.start && keySpan.start <= keySpan.end && keySpan.end <= r.length)
  ) {
    throw new RangeError(`key span ${keySpan.start}..${keySpan.end} is outside the response of ${ex.source}`);
  }
  // Empty segments are skipped so they cannot add tokens (some tokenizers encode "" as a prefix space).
  const enc = (text: string): number[] => (text.length === 0 ? [] : tok.encode(text));

  const promptIds = enc(renderPrompt(opts.template, ex.prompt));
  const hasKey = keySpan !== undefined && keySpan.end > keySpan.start;
  const cut = hasKey ? Math.min(Math.max(opts.answerStart ?? keySpan.start, 0), keySpan.start) : r.length;
  const thinking = enc(r.slice(0, cut));
  const lead = hasKey ? enc(r.slice(cut, keySpan.start)) : [];
  const keyIds = hasKey ? enc(r.slice(keySpan.start, keySpan.end)) : [];
  const after = hasKey ? enc(r.slice(keySpan.end)) : [];
  const full = [...promptIds, ...thinking, ...lead, ...keyIds, ...after, tok.eosId];

  const answerStart = promptIds.length + thinking.length;
  const keyStart = answerStart + lead.length;
  const keyEnd = keyStart + keyIds.length;
  const max = opts.maxLength;
  const ids = full.length > max ? full.slice(0, max) : full;
  const key = hasKey && keyIds.length > 0 && keyStart < max
    ? { start: keyStart, end: Math.min(keyEnd, max) }
    : undefined;
  const answer = key ? { start: answerStart, end: ids.length } : undefined;
  return {
    source: ex.source,
    ids,
    promptLength: Math.min(promptIds.length, ids.length),
    ...(key === undefined ? {} : { key }),
    ...(answer === undefined ? {} : { answer }),
    truncated: full.length > max,
    keyTruncated: hasKey && keyEnd > max,
  };
};
