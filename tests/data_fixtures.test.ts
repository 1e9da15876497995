import { assert, assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { defaultLocator, readExamples } from "../src/data/formats.ts";
import type { DataFormat } from "../src/data/formats.ts";
import { locateKey } from "../src/data/locate.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { makeArith } from "../tools/make_arith.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const tok = await Effect.runPromise(loadTokenizer(`${fixtures}arith/tokenizer.json`));

const sets: Array<
  { dir: string; format: DataFormat; sizes: [number, number]; gsm8k: boolean; seed: number }
> = [
  { dir: "arith", format: "tags", sizes: [2000, 200], gsm8k: false, seed: 7 },
  { dir: "gsm8k-mini", format: "gsm8k", sizes: [1000, 100], gsm8k: true, seed: 8 },
];

for (const set of sets) {
  Deno.test(`fixtures/${set.dir}: regenerates identically, splits disjoint, every key located and exact`, async () => {
    const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
    const made = makeArith({ gsm8k: set.gsm8k, train: set.sizes[0], test: set.sizes[1], seed: set.seed });
    assertEquals(Deno.readTextFileSync(`${fixtures}${set.dir}/train.jsonl`), jsonl(made.train));
    assertEquals(Deno.readTextFileSync(`${fixtures}${set.dir}/test.jsonl`), jsonl(made.test));

    const train = await Effect.runPromise(readExamples(`${fixtures}${set.dir}/train.jsonl`, set.format));
    const test = await Effect.runPromise(readExamples(`${fixtures}${set.dir}/test.jsonl`, set.format));
    assertEquals([train.length, test.length], set.sizes);
    const trainPrompts = new Set(train.map((e) => e.prompt));
    assert(test.every((e) => !trainPrompts.has(e.prompt)), "test problems must not appear in train");

    let tokens = 0;
    for (const ex of [...train, ...test]) {
      const span = locateKey(ex.response, defaultLocator[set.format], ex.answerField);
      assert(span !== undefined, ex.source);
      const answer = ex.response.slice(span.start, span.end);
      assert(/^\d+$/.test(answer) && Number(answer) <= 27, `${ex.source}: ${answer}`);
      assert(ex.response.length < 60, `${ex.source} response too long`);
      const t = tokeniseExample(tok, ex, span, { template: "{prompt}\n", maxLength: 64 });
      assert(!t.truncated);
      assertEquals(tok.decode(t.ids.slice(t.key!.start, t.key!.end)), answer);
      tokens += t.ids.length;
    }
    const n = train.length + test.length;
    console.log(
      `${set.dir}: ${set.sizes.join("/")} rows, ${
        (tokens / n).toFixed(1)
      } tokens per example (template "{prompt}\\n", EOS)`,
    );
  });
}
