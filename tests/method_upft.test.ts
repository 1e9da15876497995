/**
 * UPFT (arXiv 2503.02875) data: on a prefix example the mask covers exactly the first k response tokens
 * (all of them when the response is shorter) and the prompt carries the instruction; on the others the
 * whole response with the prompt unchanged. The prefix share follows `share` and the choice is stable
 * for a seed. Examples are tokenised from the fixtures with the real tokenizer and template.
 */
import { Effect } from "effect";
import { answerPartStart, locateKey } from "../src/data/locate.ts";
import type { TokenRecord } from "../src/data/records.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { isPrefixExample, UPFT_INSTRUCTION, upftRecord } from "../src/steps/upft_data.ts";
import { TEMPLATE } from "../pipelines/data.ts";
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname;
const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));

const record = (prompt: string, response: string, source = "t:1"): TokenRecord => {
  const key = locateKey(response, { kind: "answer-tags" })!;
  const t = tokeniseExample(tok, { source, prompt, response }, key, {
    template: TEMPLATE,
    maxLength: 512,
    answerStart: answerPartStart(response, { kind: "answer-tags" }, key),
  });
  return {
    source,
    input_ids: t.ids,
    prompt_length: t.promptLength,
    key: t.key!,
    answer_part: t.answer!,
    answer: response.slice(key.start, key.end),
  };
};

const positions = (w: ReadonlyArray<number>) => w.flatMap((x, t) => (x > 0 ? [t] : []));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

const long = record("What is 9 - 3 + 2?", "<Thinking>9-3=6\n6+2=8</Thinking><Answer>8</Answer>");
const short = record("What is 1 + 1 + 1?", "<Answer>3</Answer>");

Deno.test("upft: a prefix example trains exactly its first k response tokens, all if shorter", () => {
  const config = { k: 8, share: 1, seed: 0, instruction: UPFT_INSTRUCTION };
  const r = upftRecord(long, tok, config);
  assert(r.prefix);
  assertEquals(positions(r.weights), range(r.prompt_length, r.prompt_length + 8));
  // The sequence ends with the k trained response tokens (nothing after them changes their loss), and
  // the prompt is the old one followed by the instruction.
  assertEquals(
    r.input_ids.slice(r.prompt_length),
    long.input_ids.slice(long.prompt_length, long.prompt_length + 8),
  );
  assertEquals(
    tok.decode(r.input_ids.slice(0, r.prompt_length)),
    `What is 9 - 3 + 2?\n${UPFT_INSTRUCTION}\n`,
  );
  // Spans move with the prompt and are clipped to the sequence (this key lies past the 8 tokens).
  assert(long.key.start - long.prompt_length >= 8);
  assertEquals(r.key, { start: r.input_ids.length, end: r.input_ids.length });
  const wide = upftRecord(long, tok, { ...config, k: 64 });
  assertEquals(wide.key.start - wide.prompt_length, long.key.start - long.prompt_length);
  assertEquals(wide.input_ids.slice(wide.prompt_length), long.input_ids.slice(long.prompt_length));

  const s = upftRecord(short, tok, { ...config, k: 64 });
  const responseLength = short.input_ids.length - short.prompt_length;
  assert(responseLength < 64);
  assertEquals(positions(s.weights), range(s.prompt_length, s.prompt_length + responseLength));
});

Deno.test("upft: other examples train the whole response with the prompt unchanged", () => {
  const r = upftRecord(long, tok, { k: 8, share: 0, seed: 0, instruction: UPFT_INSTRUCTION });
  assert(!r.prefix);
  assertEquals(r.input_ids, long.input_ids);
  assertEquals(positions(r.weights), range(long.prompt_length, long.input_ids.length));
});

Deno.test("upft: the prefix share follows `share` and is stable for a seed", async () => {
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).trim().split("\n");
  const prompts = lines.map((l) => tok.encode(`${JSON.parse(l).prompt}\n`));
  const chosen = (seed: number) => prompts.map((p) => isPrefixExample(seed, 0.9, p));
  const a = chosen(0), b = chosen(0), c = chosen(1);
  assertEquals(a, b);
  const share = a.filter(Boolean).length / a.length;
  assert(Math.abs(share - 0.9) < 0.03, `share ${share}`);
  assert(a.some((x, i) => x !== c[i]), "another seed should choose other examples");
});
