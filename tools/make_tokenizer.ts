/**
 * Trains a small byte-level BPE tokenizer and writes it in Hugging Face tokenizer.json form.
 *
 *   npx -y deno@2.9.6 run --allow-read=fixtures --allow-write=fixtures tools/make_tokenizer.ts
 *
 * Reads the string fields of every row of fixtures/arith/train.jsonl and fixtures/gsm8k-mini/train.jsonl,
 * writes fixtures/arith/tokenizer.json and fixtures/arith/tokenizer_config.json.
 * Options: --in FILE (repeatable, replaces the defaults), --out DIR, --merges N (default 150),
 * --min-count N (default 2: a pair seen once is not worth a token).
 *
 * The training and the layout live in src/data/bpe.ts: GPT-2's byte-level layout and split pattern
 * (merges never cross a space/letter/digit/punctuation boundary), "<|endoftext|>" as the only special
 * token, with the last id. The vocabulary stays small (< 512) because the tiny test models size their
 * embedding by it.
 */

import { tokenizerConfig, tokenizerJson, trainBpe } from "../src/data/bpe.ts";

export { byteToChar, EOS, tokenizerConfig, tokenizerJson, trainBpe } from "../src/data/bpe.ts";

/** The string values of every row of the given JSONL files. */
export const readTexts = (files: ReadonlyArray<string>): string[] =>
  files.flatMap((f) =>
    Deno.readTextFileSync(f).split("\n").filter((l) => l.trim() !== "").flatMap((l) =>
      Object.values(JSON.parse(l) as Record<string, unknown>).filter((v): v is string =>
        typeof v === "string"
      )
    )
  );

if (import.meta.main) {
  const args = Deno.args;
  const value = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const inputs = args.flatMap((a, i) => (a === "--in" && i + 1 < args.length ? [args[i + 1]] : []));
  const files = inputs.length ? inputs : ["fixtures/arith/train.jsonl", "fixtures/gsm8k-mini/train.jsonl"];
  const out = value("--out") ?? "fixtures/arith";
  const merges = trainBpe(
    readTexts(files),
    Number(value("--merges") ?? 150),
    Number(value("--min-count") ?? 2),
  );
  const json = tokenizerJson(merges);
  Deno.writeTextFileSync(`${out}/tokenizer.json`, JSON.stringify(json, null, 2) + "\n");
  Deno.writeTextFileSync(`${out}/tokenizer_config.json`, JSON.stringify(tokenizerConfig, null, 2) + "\n");
  console.log(
    `wrote ${out}/tokenizer.json: ${merges.length} merges, vocabulary ${json.added_tokens[0].id + 1}`,
  );
}
