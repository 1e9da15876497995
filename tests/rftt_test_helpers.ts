/** Shared helpers of the tests/rftt_*.test.ts files. */
import { Effect } from "effect";
import { FUNCTIONAL_TOKENS } from "../src/data/functional_tokens.ts";
import { loadTokenizer, type TextTokenizer } from "../src/data/tokenizer.ts";
import { growTokenizer } from "../src/data/tokenizer_grow.ts";
import { functionalTokenIds } from "../src/train/rftt_model_expander.ts";

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
