/**
 * The model glue of CFT and S3FT, checked against independent references on a tiny random model:
 * - CFT's replacement tokens at response position t come from the logits that predict that position
 *   (the last row of a forward pass over prompt + response[0..t)), the solution's own token excluded;
 * - CFT's continuations get exactly the budget the solution had left (maxNewTokens minus the prefix's
 *   response tokens), each row the greedy continuation it would get alone;
 * - a generation counts as finished only when the model produced EOS within the limit, and only a
 *   finished generation with the gold answer is accepted (both CFT and S3FT);
 * - S3FT's paraphrase request is the template filled with the prompt and the gold response, EOS dropped.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { loadTokenizer, type TextTokenizer } from "../src/data/tokenizer.ts";
import type { TokenRecord } from "../src/data/records.ts";
import { forward, initParams, type Params } from "../src/model/model.ts";
import { modelAlternatives, modelContinuations, type Prefix } from "../src/steps/critical_tokens.ts";
import { PARAPHRASE_TEMPLATE, paraphrasePrompt } from "../src/steps/s3ft_select.ts";
import { acceptedGeneration, generateAll } from "../src/steps/self_generation.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const config = tinyConfig({ vocabSize: 24, maxPositions: 40 });

/** Larger-than-default weights so greedy continuations are not all the same token. */
const model = (seed: number): Params => {
  const params = initParams(config, Rng.seeded(seed));
  params.forEach((v) => {
    if (v.rank > 1) tf.tidy(() => v.assign(tf.mul(v, 25)));
  });
  return params;
};

/** Logits of the last position of `ids`, from a full forward pass. */
const lastLogits = (params: Params, ids: ReadonlyArray<number>): Float32Array =>
  tf.tidy(() => {
    const logits = forward(params, config, tf.tensor2d([[...ids]], undefined, "int32"));
    return tf.slice(logits, [0, ids.length - 1, 0], [1, 1, -1]).dataSync() as Float32Array;
  });

/** Token ids by decreasing logit (first on ties). */
const ranked = (logits: Float32Array) =>
  Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);

/** Greedy decoding the slow way, stopping before `eos` or after `n` tokens. */
const greedyRecompute = (params: Params, prompt: ReadonlyArray<number>, n: number, eos: number) => {
  const out: number[] = [];
  while (out.length < n) {
    const next = ranked(lastLogits(params, [...prompt, ...out]))[0];
    if (next === eos) break;
    out.push(next);
  }
  return out;
};

Deno.test("cft glue: replacements at position t are the next-best tokens predicted for t", () => {
  const params = model(1);
  const prompt = [3, 4, 5];
  // The model's own greedy tokens (so the top token is excluded at every position), then arbitrary ones.
  const own = greedyRecompute(params, prompt, 3, -1);
  const response = [...own, 7, 11];
  const got = modelAlternatives(params, config, 2)({ prompt, response });
  assertEquals(got.length, response.length);
  response.forEach((token, t) => {
    const expected = ranked(lastLogits(params, [...prompt, ...response.slice(0, t)]))
      .filter((v) => v !== token).slice(0, 2);
    assertEquals(got[t], expected, `position ${t}`);
    assert(!got[t].includes(token));
  });
  params.forEach((v) => v.dispose());
});

Deno.test("cft glue: a continuation gets the budget its solution had left, as it would alone", () => {
  const params = model(2);
  const maxNewTokens = 9;
  const eos = 23;
  const prefixes: Prefix[] = [
    { prompt: [1, 2], response: [5] },
    { prompt: [6, 7, 8, 9], response: [10, 11, 12, 13] },
    { prompt: [2], response: [14, 15, 16, 17, 18, 19, 20, 21] },
    { prompt: [4, 3], response: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, // the replacement was the last token allowed
  ];
  let reported = 0;
  const got = modelContinuations(params, config, eos, maxNewTokens, (n) => (reported += n))(prefixes);
  assertEquals(reported, prefixes.length);
  prefixes.forEach((p, k) => {
    const budget = maxNewTokens - p.response.length; // 8, 5, 1, 0
    const alone = greedyRecompute(params, [...p.prompt, ...p.response], budget, eos);
    assertEquals(got[k], alone, `prefix ${k}`);
    assert(p.response.length + got[k].length <= maxNewTokens);
  });
  // The budget is what limits the rows here, not EOS: the first row uses all 8 of its tokens.
  assertEquals(got.map((g) => g.length), [8, 5, 1, 0]);
  params.forEach((v) => v.dispose());
});

Deno.test("finished rule: a generation is finished exactly when EOS came within the limit", () => {
  const params = model(3);
  const prompt = [2, 9, 4];
  const free = greedyRecompute(params, prompt, 8, -1);
  // Make the k-th greedy token (its first occurrence, k >= 1) the EOS.
  const k = free.findIndex((v, i) => i >= 1 && !free.slice(0, i).includes(v));
  assert(k >= 1, `greedy tokens ${free}`);
  const eos = free[k];
  const run = (maxNewTokens: number) =>
    generateAll(params, config, [prompt], { maxNewTokens, batchSize: 1, eosId: eos })[0];
  // EOS is the last token the limit allows: finished, EOS not included.
  assertEquals(run(k + 1), { ids: free.slice(0, k), finished: true });
  assertEquals(run(k + 4), { ids: free.slice(0, k), finished: true });
  // The limit ends the generation one token before EOS: not finished.
  assertEquals(run(k), { ids: free.slice(0, k), finished: false });
  // The model's positions are a limit too: a prompt that leaves room for k tokens only is cut off.
  const long = [...Array(config.maxPositions - prompt.length - k).fill(0), ...prompt];
  const cut = generateAll(params, config, [long], { maxNewTokens: 20, batchSize: 1, eosId: -1 })[0];
  assertEquals([cut.ids.length, cut.finished], [k, false]);
  params.forEach((v) => v.dispose());
});

const root = new URL("..", import.meta.url).pathname;
const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));
const tags = { kind: "answer-tags" } as const;

Deno.test("finished rule: only a finished generation with the gold answer is accepted", () => {
  const right = tok.encode("<Thinking>2+2=4</Thinking><Answer>4</Answer>");
  const wrong = tok.encode("<Thinking>2+2=5</Thinking><Answer>5</Answer>");
  assertEquals(acceptedGeneration(tok, { ids: right, finished: true }, "4", tags), true);
  // The same correct text, cut off by the token limit before the model ended it: rejected.
  assertEquals(acceptedGeneration(tok, { ids: right, finished: false }, "4", tags), false);
  assertEquals(acceptedGeneration(tok, { ids: wrong, finished: true }, "4", tags), false);
  assertEquals(acceptedGeneration(tok, { ids: [], finished: true }, "4", tags), false);
});

/** A character-level tokenizer (id = code point, EOS 0): the prompt text is independent of any vocabulary. */
const chars: TextTokenizer = {
  path: "chars",
  vocabSize: 0x10000,
  eosId: 0,
  encode: (text) => Array.from(text, (c) => c.codePointAt(0)!),
  decode: (ids) => String.fromCodePoint(...ids),
  tokenText: (id) => String.fromCodePoint(id),
} as TextTokenizer;

const record = (prompt: string, response: string, eos: boolean): TokenRecord => {
  const p = chars.encode(prompt);
  const ids = [...p, ...chars.encode(response), ...(eos ? [chars.eosId] : [])];
  const end = { start: ids.length, end: ids.length };
  return { source: "t:1", input_ids: ids, prompt_length: p.length, key: end, answer_part: end, answer: "" };
};

Deno.test("s3ft glue: the paraphrase request is the prompt and the gold response, EOS dropped", () => {
  const r = record("Q: What is 7 + 5?\nA: ", "<Thinking>7+5=12</Thinking><Answer>12</Answer>", true);
  assertEquals(
    paraphrasePrompt(chars, PARAPHRASE_TEMPLATE, r),
    "Q: What is 7 + 5?\nA: Reference solution: <Thinking>7+5=12</Thinking><Answer>12</Answer>\n" +
      "The same solution in other words:\n",
  );
  // A truncated gold response (no EOS) loses nothing.
  assertEquals(
    paraphrasePrompt(chars, "[{response}|{prompt}]", record("P", "R1", false)),
    "[R1|P]",
  );
  // Texts go in as they are: "$" patterns (GSM8K writes "$$<<4*15=60.00>>60.00") are not expanded,
  // and a prompt that contains "{response}" is not filled in.
  assertEquals(
    paraphrasePrompt(
      chars,
      "{prompt}:{response}",
      record("cost $& {response}?", "$$<<4*15=60>>60 $' $`", true),
    ),
    "cost $& {response}?:$$<<4*15=60>>60 $' $`",
  );
});
