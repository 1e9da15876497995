/**
 * Property: for any text with a key span, locating the key on characters and tokenising segment-wise
 * gives back exactly the same characters — the key tokens decode to the key, the prompt tokens to the
 * rendered prompt, the response tokens to the response — for any Unicode (the fixture's tokenizer is
 * byte-level, so every code point has an encoding). Strings mix arbitrary code points with the pieces
 * the locators look for (tags, "####", newlines, whitespace, the EOS token's text) to reach edge cases.
 */
import fc from "fast-check";
import { Effect } from "effect";
import { assertEquals } from "./assert.ts";
import { answerPartStart, locateKey, type LocatorSpec } from "../src/data/locate.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";

const root = new URL("..", import.meta.url).pathname;
const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));
const TEMPLATE = "Q: {prompt}\nA:";

const piece = fc.constantFrom(
  "<Answer>",
  "</Answer>",
  "<Thinking>",
  "</Thinking>",
  "#### ",
  "\n",
  " ",
  "\t",
  "<|endoftext|>",
  "{",
  "}",
);
const text = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
    { weight: 3, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: piece },
  ),
  maxLength: 24,
});
/** Keys are what locators can return: non-empty, no surrounding whitespace. */
const key = text.filter((k) => k.length > 0 && !/^\s|\s$/.test(k));

/** Checks the round trip of one example whose key `expected` the locator should find. */
const roundTrip = (prompt: string, response: string, spec: LocatorSpec, expected: string) => {
  const span = locateKey(response, spec);
  assertEquals(span && response.slice(span.start, span.end), expected);
  const ex = { source: "prop:1", prompt, response };
  const t = tokeniseExample(tok, ex, span!, {
    template: TEMPLATE,
    maxLength: 100_000,
    answerStart: answerPartStart(response, spec, span!),
  });
  const ids = t.ids;
  assertEquals(tok.decode(ids.slice(t.key!.start, t.key!.end)), expected);
  assertEquals(tok.decode(ids.slice(0, t.promptLength)), TEMPLATE.replace("{prompt}", () => prompt));
  assertEquals(ids.at(-1), tok.eosId);
  assertEquals(tok.decode(ids.slice(t.promptLength, -1)), response);
  const answerStart = answerPartStart(response, spec, span!);
  assertEquals(tok.decode(ids.slice(t.answer!.start, -1)), response.slice(answerStart));
};

Deno.test("property: answer-tag keys round-trip through locate and segment-wise tokenising", () => {
  fc.assert(
    fc.property(
      text,
      text,
      key.filter((k) => !k.includes("<Answer>") && !k.includes("</Answer>")),
      text.filter((t) => !t.includes("</Answer>")),
      (prompt, thinking, k, after) => {
        const response = `<Thinking>${thinking}</Thinking><Answer>${k}</Answer>${after}`;
        roundTrip(prompt, response, { kind: "answer-tags" }, k);
      },
    ),
    // "$&" in a prompt: String.replace's special patterns must not reach the rendered template.
    { numRuns: 300, examples: [["$&", "", "!", ""]] },
  );
});

Deno.test("property: GSM8K keys (after the last '#### ' line) round-trip", () => {
  fc.assert(
    fc.property(
      text,
      text,
      key.filter((k) => !k.includes("\n")),
      (prompt, work, k) => roundTrip(prompt, `${work}\n#### ${k}`, { kind: "gsm8k" }, k),
    ),
    { numRuns: 300 },
  );
});
