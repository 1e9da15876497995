import { assert, assertEquals, assertThrows } from "./assert.ts";
import { Effect, Either, Schema } from "effect";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { PromptTemplate, tokeniseExample } from "../src/data/tokenise.ts";
import { locateKey } from "../src/data/locate.ts";
import type { RawExample } from "../src/data/formats.ts";

const tok = await Effect.runPromise(
  loadTokenizer(new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname),
);
const gpt2Path = new URL("../../shared/data/tokenizers/gpt2/tokenizer.json", import.meta.url).pathname;
// The GPT-2 test skips only when the shared tokenizer is not on this machine; a tokenizer that is there but
// fails to load fails the test.
const gpt2Present = (() => {
  try {
    return Deno.statSync(gpt2Path).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
})();

const ex: RawExample = {
  source: "t:1",
  prompt: "What is 7 + 5 - 3?",
  response: "<Thinking>7+5=12\n12-3=9</Thinking><Answer>9</Answer>",
};
const opts = { template: "Q: {prompt}\nA: ", maxLength: 128 };

Deno.test("prompt tokens come first; key tokens decode to exactly the key; EOS last", () => {
  const span = locateKey(ex.response, { kind: "answer-tags" })!;
  const t = tokeniseExample(tok, ex, span, opts);
  assertEquals(t.ids.slice(0, t.promptLength), tok.encode("Q: What is 7 + 5 - 3?\nA: "));
  assertEquals(tok.decode(t.ids.slice(t.promptLength, -1)), ex.response);
  assertEquals(t.ids.at(-1), tok.eosId);
  assert(t.key !== undefined);
  assertEquals(tok.decode(t.ids.slice(t.key.start, t.key.end)), "9");
  assertEquals(tok.decode(t.ids.slice(t.key.end, -1)), "</Answer>");
  assertEquals([t.truncated, t.keyTruncated, t.source], [false, false, "t:1"]);
});

Deno.test("no key span: whole response, no key", () => {
  const t = tokeniseExample(tok, ex, undefined, opts);
  assertEquals(t.key, undefined);
  assertEquals(t.keyTruncated, false);
  assertEquals(tok.decode(t.ids.slice(t.promptLength)), ex.response + "<|endoftext|>");
});

Deno.test("key at the very end or start of the response: empty segments add nothing", () => {
  const atEnd = { ...ex, response: "so 42" };
  const t = tokeniseExample(tok, atEnd, { start: 3, end: 5 }, opts);
  assertEquals(tok.decode(t.ids.slice(t.key!.start, t.key!.end)), "42");
  assertEquals(t.key!.end, t.ids.length - 1, "EOS directly follows the key");
  const atStart = tokeniseExample(tok, { ...ex, response: "42 is it" }, { start: 0, end: 2 }, opts);
  assertEquals(atStart.key!.start, atStart.promptLength);
});

Deno.test("truncation flags and clipping", () => {
  const span = locateKey(ex.response, { kind: "answer-tags" })!;
  const full = tokeniseExample(tok, ex, span, opts);
  const n = full.ids.length;
  // Exactly fits.
  const fits = tokeniseExample(tok, ex, span, { ...opts, maxLength: n });
  assertEquals([fits.truncated, fits.keyTruncated], [false, false]);
  // Only the EOS and the closing tag are cut: the key survives.
  const afterKey = tokeniseExample(tok, ex, span, { ...opts, maxLength: full.key!.end });
  assertEquals([afterKey.truncated, afterKey.keyTruncated, afterKey.ids.length], [
    true,
    false,
    full.key!.end,
  ]);
  assertEquals(afterKey.key, full.key);
  // Cut inside the thinking: key entirely gone.
  const beforeKey = tokeniseExample(tok, ex, span, { ...opts, maxLength: full.key!.start });
  assertEquals([beforeKey.truncated, beforeKey.keyTruncated, beforeKey.key], [true, true, undefined]);
  // Prompt longer than maxLength: promptLength is clamped, there is no response left.
  const tiny = tokeniseExample(tok, ex, span, { ...opts, maxLength: 2 });
  assertEquals([tiny.ids.length, tiny.promptLength, tiny.keyTruncated], [2, 2, true]);
  assertThrows(() => tokeniseExample(tok, ex, span, { ...opts, maxLength: 0 }), RangeError);
  assertThrows(() => tokeniseExample(tok, ex, { start: 0, end: 999 }, opts), RangeError);
});

Deno.test("multi-token key is partially truncated", () => {
  const longKey = { ...ex, response: "<Answer>123456789 123456789</Answer>" };
  const span = locateKey(longKey.response, { kind: "answer-tags" })!;
  const full = tokeniseExample(tok, longKey, span, opts);
  assert(full.key!.end - full.key!.start >= 2);
  const cut = tokeniseExample(tok, longKey, span, { ...opts, maxLength: full.key!.start + 1 });
  assertEquals([cut.keyTruncated, cut.key], [true, { start: full.key!.start, end: full.key!.start + 1 }]);
});

Deno.test({
  name:
    "GPT-2 (skipped when shared/data/tokenizers/gpt2 is absent): segment-wise key is exact where joint encoding would merge the leading space",
  ignore: !gpt2Present,
  fn: async () => {
    const g = await Effect.runPromise(loadTokenizer(gpt2Path));
    const e = { source: "g:1", prompt: "q", response: "5*9=<<5*9=45>>45\n45+27=72\n#### 72" };
    const span = locateKey(e.response, { kind: "gsm8k" })!;
    const t = tokeniseExample(g, e, span, { template: "{prompt}\n", maxLength: 512 });
    assertEquals(g.decode(t.ids.slice(t.key!.start, t.key!.end)), "72");
    // Joint encoding puts the space and the number in one token: no token boundary at the key.
    assert(g.encode(e.response).includes(g.encode(" 72")[0]));
  },
});

Deno.test("PromptTemplate requires {prompt}", () => {
  assert(Either.isRight(Schema.decodeUnknownEither(PromptTemplate)("{prompt}\n")));
  assert(Either.isLeft(Schema.decodeUnknownEither(PromptTemplate)("Question:\n")));
});
