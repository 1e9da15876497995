/** Where the tokenizer of a command comes from: --tokenizer, else the --model directory's own files. */
import { Effect } from "effect";
import { tokenizerFileIn } from "../data/tokenizer_files.ts";
import { InvalidConfig } from "../errors.ts";

/**
 * The tokenizer a run uses: --tokenizer, else the one in --model. A directory stands for the file in it
 * that loadTokenizer starts from (tokenizer.json, else vocab.json beside merges.txt), so that the cache key
 * covers the tokenizer files rather than everything in the directory.
 */
export const tokenizerPathOf = (
  tokenizer: string | undefined,
  modelDir: string | undefined,
): Effect.Effect<string | undefined, InvalidConfig> =>
  Effect.gen(function* () {
    const isDir = (p: string) => Deno.stat(p).then((i) => i.isDirectory, () => false);
    if (tokenizer !== undefined) {
      return (yield* Effect.promise(() => isDir(tokenizer)))
        ? tokenizerFileIn(tokenizer) ?? tokenizer
        : tokenizer;
    }
    if (modelDir === undefined) return undefined;
    const found = tokenizerFileIn(modelDir);
    if (found === undefined) {
      return yield* new InvalidConfig({
        where: "--model",
        reason: `${modelDir} has no tokenizer.json and no vocab.json + merges.txt; give --tokenizer`,
      });
    }
    return found;
  });
