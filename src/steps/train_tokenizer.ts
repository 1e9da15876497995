/**
 * Step `trainTokenizer`: a byte-level BPE (src/data/bpe.ts) learned on a corpus, written as a Hugging Face
 * tokenizer.json + tokenizer_config.json, with `vocabSize` ids in all (256 bytes, the merges, and
 * `<|endoftext|>` last). Merges are learned on every `stride`-th document only: the pair statistics of a
 * templated corpus settle long before its end, and the greedy trainer's time grows with the text.
 *
 * The vocabulary may end smaller than `vocabSize` when no pair is frequent enough (`minCount`); a model
 * sized by `vocabSize` then has embedding rows no id uses, which is harmless. report.json says which.
 */
import { Effect, Schema } from "effect";
import { InvalidConfig } from "../errors.ts";
import { tokenizerConfig, tokenizerJson, trainBpe } from "../data/bpe.ts";
import { readCorpus } from "../data/corpus.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";

/** 256 byte symbols and the end-of-sequence token are always there. */
const FIXED_IDS = 257;

export const TrainTokenizerConfig = Schema.Struct({
  /** Ids in all: bytes, merges and EOS. */
  vocabSize: Schema.Int.pipe(Schema.greaterThan(FIXED_IDS)),
  /** A pair must occur this often (in the sample) to become a token. */
  minCount: Schema.Int.pipe(Schema.positive()),
  /** Learn merges on documents 0, stride, 2 * stride, ... */
  stride: Schema.Int.pipe(Schema.positive()),
  digits: Schema.Literal("grouped", "single"),
});

export const trainTokenizerStep = defineStep({
  name: "trainTokenizer",
  version: 1,
  description: "byte-level BPE learned on a corpus, in tokenizer.json form",
  config: TrainTokenizerConfig,
  inputs: ["corpus"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const docs = yield* readCorpus(inputs.corpus!);
      const sample = docs.filter((_, i) => i % config.stride === 0).map((d) => d.text);
      if (sample.length === 0) {
        return yield* new InvalidConfig({ where: `${ctx.node}`, reason: "the corpus has no document" });
      }
      const merges = trainBpe(sample, config.vocabSize - FIXED_IDS, config.minCount, config.digits);
      const json = tokenizerJson(merges, config.digits);
      const size = json.added_tokens[0].id + 1;
      yield* writeFileAtomic(`${ctx.dir}/tokenizer.json`, JSON.stringify(json, null, 2) + "\n");
      yield* writeFileAtomic(
        `${ctx.dir}/tokenizer_config.json`,
        JSON.stringify(tokenizerConfig, null, 2) + "\n",
      );
      const report = {
        vocabSize: size,
        requested: config.vocabSize,
        merges: merges.length,
        documents: sample.length,
      };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] ${merges.length} merges learned on ${sample.length} documents: vocabulary ${size}` +
          (size < config.vocabSize
            ? ` (of ${config.vocabSize}: no pair left occurs ${config.minCount} times)`
            : ""),
      );
    }),
});
