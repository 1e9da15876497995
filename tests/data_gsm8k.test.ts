/**
 * GSM8K keys with real tokenizers, beyond what data_real_keys.test.ts checks (every key located and exact):
 * how the numbers themselves are cut. Qwen2 splits digits one by one, so a key of n digits is n tokens;
 * GPT-2 groups digits, so multi-digit keys take fewer tokens than digits. Both facts matter to stage two,
 * which trains on exactly these tokens. Needs ../shared/data (skipped when absent).
 */
import { assert, assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { readExamples } from "../src/data/formats.ts";
import { locateKey } from "../src/data/locate.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";

const shared = new URL("../../shared/data", import.meta.url).pathname;
const present = await Deno.stat(shared).then(() => true, () => false);
if (!present) console.log(`${shared} absent: GSM8K tokenizer tests skipped`);

/** Key token counts of every GSM8K test example whose key is a plain integer, with the key's digit count. */
const keyTokenCounts = async (tokenizer: string) => {
  const tok = await Effect.runPromise(loadTokenizer(`${shared}/tokenizers/${tokenizer}`));
  const examples = await Effect.runPromise(readExamples(`${shared}/gsm8k/test.jsonl`, "gsm8k"));
  const out: { digits: number; tokens: number; pieces: string[] }[] = [];
  for (const ex of examples) {
    const span = locateKey(ex.response, { kind: "gsm8k" })!;
    const key = ex.response.slice(span.start, span.end);
    if (!/^\d+$/.test(key)) continue;
    const t = tokeniseExample(tok, ex, span, { template: "{prompt}\n", maxLength: 4096 });
    const ids = t.ids.slice(t.key!.start, t.key!.end);
    out.push({ digits: key.length, tokens: ids.length, pieces: ids.map((id) => tok.tokenText(id)) });
  }
  return out;
};

Deno.test({
  name: "GSM8K keys: Qwen2 gives one token per digit, GPT-2 groups digits",
  ignore: !present,
  fn: async () => {
    const qwen = await keyTokenCounts("qwen2");
    const gpt2 = await keyTokenCounts("gpt2/tokenizer.json");
    assert(qwen.length > 1200, `${qwen.length} integer keys`);
    assertEquals(qwen.filter((k) => k.tokens !== k.digits), []);
    assert(qwen.every((k) => k.pieces.every((p) => /^\d$/.test(p))));
    const multi = gpt2.filter((k) => k.digits > 1);
    const grouped = multi.filter((k) => k.tokens < k.digits);
    // Every multi-digit key of this split takes fewer GPT-2 tokens than it has digits.
    assertEquals(grouped.length, multi.length);
    const tokens = (ks: typeof qwen) => ks.reduce((s, k) => s + k.tokens, 0);
    console.log(
      `GSM8K test integer keys: ${qwen.length}; key tokens Qwen2 ${tokens(qwen)}, GPT-2 ${tokens(gpt2)}; ` +
        `${multi.length} multi-digit keys, all grouped by GPT-2`,
    );
  },
});
