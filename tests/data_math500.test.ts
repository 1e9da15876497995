/**
 * The boxed locator on the real MATH-500 test set: the last top-level \boxed{...} of every solution must
 * equal the row's own "answer" field. Needs ../shared/data (skipped when absent).
 */
import { assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { readExamples } from "../src/data/formats.ts";
import { extractAnswer } from "../src/data/locate.ts";

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
