/**
 * The boxed locator on the real MATH-500 test set: the last top-level \boxed{...} of every solution must
 * equal the row's own "answer" field; and prompts keep their LaTeX exactly through the prompt template.
 * Needs ../shared/data (skipped when absent). Tokenisation of the keys: data_real_keys.test.ts.
 */
import { assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { readExamples } from "../src/data/formats.ts";
import { extractAnswer } from "../src/data/locate.ts";
import { renderPrompt } from "../src/data/tokenise.ts";

const file = new URL("../../shared/data/math500/test.jsonl", import.meta.url).pathname;
const present = await Deno.stat(file).then(() => true, () => false);
if (!present) console.log(`${file} absent: MATH-500 locator test skipped`);

Deno.test({
  name: "MATH-500: boxed locator equals the answer field on every solution",
  ignore: !present,
  fn: async () => {
    const examples = await Effect.runPromise(readExamples(file, "math"));
    const answers = Deno.readTextFileSync(file).split("\n").filter((l) => l.trim() !== "")
      .map((l) => (JSON.parse(l) as { answer: string }).answer);
    const mismatches = examples.filter((ex, i) =>
      extractAnswer(ex.response, { kind: "boxed" }) !== answers[i]
    );
    console.log(
      `MATH-500: ${examples.length} solutions, ${
        examples.length - mismatches.length
      } boxed answers equal the answer field`,
    );
    assertEquals(mismatches.map((e) => e.source), []);
  },
});

Deno.test({
  name: "MATH-500: prompts with $` and $' (LaTeX quotes) survive the prompt template unchanged",
  ignore: !present,
  fn: async () => {
    const examples = await Effect.runPromise(readExamples(file, "math"));
    // String.replace would expand these as "text before/after the match" in a replacement string.
    const special = examples.filter((ex) => /\$[`'&]/.test(ex.prompt));
    console.log(`MATH-500: ${special.length} prompts contain $\`, $' or $&`);
    assertEquals(special.length > 0, true);
    for (const ex of examples) {
      assertEquals(renderPrompt("Q: {prompt}\nA:", ex.prompt), `Q: ${ex.prompt}\nA:`);
    }
  },
});
