/**
 * A generated response becomes a TokenRecord like a tokenised example: the model's ids kept as they are,
 * EOS appended only when the model ended the response, and key / answer-part spans mapped back from the
 * decoded text so that the key tokens decode to the answer.
 */
import { Effect } from "effect";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { answerMatches, generatedRecord } from "../src/steps/self_generation.ts";
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname;
const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));
const tags = { kind: "answer-tags" } as const;

Deno.test("generatedRecord: ids kept, EOS only when finished, spans found in the generated text", () => {
  const prompt = tok.encode("What is 9 - 3 + 2?\n");
  const ids = tok.encode("<Thinking>9-3=6\n6+2=8</Thinking><Answer>8</Answer>");
  const done = generatedRecord(tok, tags, "s", prompt, { ids, finished: true }, "8");
  assertEquals(done.input_ids, [...prompt, ...ids, tok.eosId]);
  assertEquals(tok.decode(done.input_ids.slice(done.key.start, done.key.end)), "8");
  // The model's own tokens are never split: "><" straddles the end of the thinking part and, overlapping
  // the answer part, belongs to it.
  assertEquals(
    tok.decode(done.input_ids.slice(done.answer_part.start, done.answer_part.end - 1)),
    "><Answer>8</Answer>",
  );
  assertEquals(done.answer_part.end, done.input_ids.length);

  const cut = generatedRecord(tok, tags, "s", prompt, { ids: ids.slice(0, 5), finished: false }, "8");
  assertEquals(cut.input_ids, [...prompt, ...ids.slice(0, 5)]);
  // No key in the text: empty spans at the end.
  assertEquals(cut.key, { start: cut.input_ids.length, end: cut.input_ids.length });
});

Deno.test("answerMatches: the judge compares normalised extracted answers", () => {
  assert(answerMatches("<Thinking>x</Thinking><Answer>1,000</Answer>", "1000", tags));
  assert(!answerMatches("<Thinking>x</Thinking><Answer>7</Answer>", "8", tags));
  assert(!answerMatches("no answer here", "8", tags));
});
