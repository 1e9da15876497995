/**
 * The locator + segment-wise tokenisation on the real GSM8K test set with GPT-2's tokenizer: every key must
 * be found and its tokens must decode to exactly the text after "#### ". Needs ../shared/data (skipped
 * when absent, e.g. outside the team's machines).
 */
import { assert, assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { readExamples } from "../src/data/formats.ts";
import { locateKey } from "../src/data/locate.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";

const shared = new URL("../../shared/data", import.meta.url).pathname;
const present = await Deno.stat(shared).then(() => true, () => false);
if (!present) console.log(`${shared} absent: GSM8K/GPT-2 data test skipped`);

Deno.test({
  name: "GSM8K test set + GPT-2: every key located, key tokens decode to the '#### ' text",
  ignore: !present,
  fn: async () => {
    const tok = await Effect.runPromise(loadTokenizer(`${shared}/tokenizers/gpt2/tokenizer.json`));
    const examples = await Effect.runPromise(readExamples(`${shared}/gsm8k/test.jsonl`, "gsm8k"));
    assert(examples.length > 1000);
    let located = 0;
    let exact = 0;
    let keyTokens = 0;
    for (const ex of examples) {
      const expected = ex.response.split("\n").filter((l) => l.startsWith("#### ")).at(-1)!.slice(5).trim();
      const span = locateKey(ex.response, { kind: "gsm8k" });
      if (span === undefined) continue;
      located++;
      const t = tokeniseExample(tok, ex, span, { template: "{prompt}\n", maxLength: 1024 });
      const decoded = tok.decode(t.ids.slice(t.key!.start, t.key!.end));
      if (decoded === expected) exact++;
      else {console.log(
          `${ex.source}: expected ${JSON.stringify(expected)}, key tokens give ${JSON.stringify(decoded)}`,
        );}
      keyTokens += t.key!.end - t.key!.start;
    }
    console.log(
      `GSM8K test: ${examples.length} examples, ${located} keys located, ${exact} exact, ` +
        `${(keyTokens / located).toFixed(2)} key tokens on average`,
    );
    assertEquals([located, exact], [examples.length, examples.length]);
  },
});
