/** Shared helpers of the tests/rftt_*.test.ts files. */
import { Effect } from "effect";
import { FUNCTIONAL_TOKENS } from "../src/data/functional_tokens.ts";
import { loadTokenizer, type TextTokenizer } from "../src/data/tokenizer.ts";
import { growTokenizer } from "../src/data/tokenizer_grow.ts";
import { functionalTokenIds, type Policy } from "../src/train/rftt_model_expander.ts";

/**
 * The arithmetic fixture's tokenizer grown by the 16 functional tokens (written to a temporary
 * directory), each token's id, and `id(token)`.
 */
export const grownArithTokenizer = async (): Promise<{
  readonly tok: TextTokenizer;
  readonly ids: ReadonlyMap<string, number>;
  readonly id: (token: string) => number;
  /** The temporary directory holding it. */
  readonly dir: string;
}> => {
  const fixture = new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname;
  const tmp = await Deno.makeTempDir();
  const grown = await Effect.runPromise(growTokenizer(fixture, FUNCTIONAL_TOKENS));
  for (const [name, text] of Object.entries(grown.files)) await Deno.writeTextFile(`${tmp}/${name}`, text);
  const tok = await Effect.runPromise(loadTokenizer(`${tmp}/tokenizer.json`));
  const ids = functionalTokenIds(tok);
  return { tok, ids, id: (t) => ids.get(t)!, dir: tmp };
};

/**
 * A scripted policy over `tok`: fixed next-token `logits` (token -> logit, every other token 0), and after
 * an opening functional tag it writes `content(tag, prompt)` then a newline and the tag's closing token
 * (EOS when `content` returns undefined).
 */
export const scriptedPolicy = (
  tok: TextTokenizer,
  logits: Readonly<Record<string, number>>,
  content: (tag: string, prompt: ReadonlyArray<number>) => string | undefined,
): Policy => {
  const ids = functionalTokenIds(tok);
  const id = (t: string) => ids.get(t)!;
  const nl = tok.encode("\n");
  return {
    nextLogits: () => {
      const l = new Float32Array(tok.vocabSize);
      for (const [token, logit] of Object.entries(logits)) l[id(token)] = logit;
      return l;
    },
    continue: (prompts) =>
      prompts.map((p) => {
        const open = [...p].reverse().find((x) => ids.has(tok.decode([x])))!;
        const tag = tok.decode([open]);
        const text = content(tag, p);
        return text === undefined ? [tok.eosId] : [...tok.encode(text), ...nl, id(`</${tag.slice(1)}`)];
      }),
  };
};
