/**
 * Generates the fine-tuning target tasks: multi-step word problems with worked chains of thought, in the
 * SFTKey tag format and in GSM8K format. These are the sets the shipped base model (fixtures/base/) is
 * fine-tuned on: the base learned the arithmetic and prose word problems in pretraining, never these
 * formats, so fine-tuning has to teach where the reasoning and the answer go.
 *
 *   npx -y deno@2.9.6 run --allow-write=fixtures tools/make_word_problems.ts
 *       writes fixtures/word-tags/{train,test}.jsonl   ("tags" format)
 *   npx -y deno@2.9.6 run --allow-write=fixtures tools/make_word_problems.ts --gsm8k
 *       writes fixtures/word-gsm8k/{train,test}.jsonl  ("gsm8k" format, with <<a+b=c>> calculator notes)
 *
 * Options: --out DIR, --train N (default 1000), --test N (default 500), --seed N, --min-steps N,
 * --max-steps N (operations per problem), --max-start N (largest starting quantity). Output is a pure
 * function of the options.
 *
 * Why these problems: the SFTKey paper's premise is that the key (the answer) is a small share of the
 * response tokens while the chain of thought is long. Each problem here takes 3-5 operations, each written
 * as a sentence with its arithmetic ("Mei has 14+5=19 stickers."), and the answer is one number, so the
 * key is a few percent of the response. The problems themselves are drawn in src/data/word_problems.ts,
 * which the pretraining corpus shares (it writes the solutions as prose and never uses a fixture's
 * question). Train and test never share a question.
 */

import { DEFAULTS, makeWordProblems, type WordProblemOptions } from "../src/data/word_problems.ts";

const parseArgs = (args: string[]): WordProblemOptions & { out: string } => {
  const gsm8k = args.includes("--gsm8k");
  const int = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    const v = i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : fallback;
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`);
    return v;
  };
  const i = args.indexOf("--out");
  const f = args.indexOf("--families");
  const families = f >= 0 ? args[f + 1] : "mixed";
  if (families !== "mixed" && families !== "tally") throw new Error("--families must be mixed or tally");
  return {
    gsm8k,
    families,
    out: i >= 0 ? args[i + 1] : gsm8k ? "fixtures/word-gsm8k" : "fixtures/word-tags",
    train: int("--train", DEFAULTS.train),
    test: int("--test", DEFAULTS.test),
    seed: int("--seed", gsm8k ? 12 : 11),
    minSteps: int("--min-steps", DEFAULTS.minSteps),
    maxSteps: int("--max-steps", DEFAULTS.maxSteps),
    maxStart: int("--max-start", DEFAULTS.maxStart),
    maxOperand: int("--max-operand", DEFAULTS.maxOperand),
  };
};

if (import.meta.main) {
  const opts = parseArgs(Deno.args);
  const { train, test } = makeWordProblems(opts);
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  Deno.mkdirSync(opts.out, { recursive: true });
  Deno.writeTextFileSync(`${opts.out}/train.jsonl`, jsonl(train));
  Deno.writeTextFileSync(`${opts.out}/test.jsonl`, jsonl(test));
  console.log(`wrote ${train.length} train and ${test.length} test rows to ${opts.out}`);
}
