/**
 * The on-disk records that flow between the data steps, one JSON object per line (JSONL), so a user
 * can open any intermediate and see exactly what the next step consumed.
 *
 *   locateKey  -> located.jsonl  LocatedRecord   prompt/response text, the key's character span and
 *                                                where the answer part begins
 *   tokenise   -> tokens.jsonl   TokenRecord     token ids with the prompt length, key and answer spans
 *   buildMasks -> masked.jsonl   MaskedRecord    token ids with a loss weight per token
 */
import { Effect } from "effect";
import { FileUnreadable, type WriteFailed } from "../errors.ts";
import { writeFileAtomic } from "../io/fs.ts";
import type { ChatMessage } from "./chat.ts";

export interface LocatedRecord {
  /** file:line of the row this came from. */
  readonly source: string;
  readonly prompt: string;
  readonly response: string;
  /** Character span [start, end) of the key inside `response`. */
  readonly key: { readonly start: number; readonly end: number };
  /** The key text, response.slice(key.start, key.end): the gold answer. */
  readonly answer: string;
  /** Where the answer part (everything after the thinking part) begins in `response`. */
  readonly answer_start: number;
  /** "messages" format: the conversation before the response (the last assistant turn's content). */
  readonly chat?: ReadonlyArray<ChatMessage>;
}

export interface TokenRecord {
  readonly source: string;
  readonly input_ids: ReadonlyArray<number>;
  /** Tokens [0, prompt_length) are the prompt; the rest is the response, ending with EOS unless truncated. */
  readonly prompt_length: number;
  /** Token span [start, end) of the key. */
  readonly key: { readonly start: number; readonly end: number };
  /** Token span [start, end) of the answer part: from the end of the thinking part to the end (EOS). */
  readonly answer_part: { readonly start: number; readonly end: number };
  readonly answer: string;
}

export interface MaskedRecord extends TokenRecord {
  /** weights[t] is the loss weight on predicting input_ids[t] from the tokens before it. */
  readonly weights: ReadonlyArray<number>;
}

export const writeJsonl = (path: string, rows: ReadonlyArray<unknown>): Effect.Effect<void, WriteFailed> =>
  writeFileAtomic(path, rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : ""));

/** Reads a JSONL file this toolkit wrote itself (already validated when it was written). */
export const readJsonl = <T>(path: string): Effect.Effect<T[], FileUnreadable> =>
  Effect.tryPromise({
    try: async () =>
      (await Deno.readTextFile(path)).split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as T),
    catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
  });
