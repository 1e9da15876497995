/**
 * Step `tokeniseCorpus`: the token ids of every document of a corpus (a file or directory in the corpus
 * format of src/data/corpus.ts, e.g. generateCorpus's artifact), without special tokens; packBlocks joins
 * them with EOS.
 *
 * Output: documents.jsonl (`{"source", "input_ids"}` per document) and report.json (documents, tokens,
 * characters per token, the tokenizer's EOS id).
 */
import { Effect, Schema } from "effect";
import { EmptyDataset } from "../errors.ts";
import { readCorpus } from "../data/corpus.ts";
import { writeJsonl } from "../data/records.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";

export const TokeniseCorpusConfig = Schema.Struct({});

export const tokeniseCorpusStep = defineStep({
  name: "tokeniseCorpus",
  version: 1,
  description: "token ids of every corpus document",
  config: TokeniseCorpusConfig,
  inputs: ["corpus", "tokenizer"] as const,
  run: (_config, inputs, ctx) =>
    Effect.gen(function* () {
      const tok = yield* loadTokenizer(inputs.tokenizer!);
      const docs = yield* readCorpus(inputs.corpus!);
      if (docs.length === 0) {
        return yield* new EmptyDataset({ what: inputs.corpus!, reason: "the corpus has no document" });
      }
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const started = performance.now();
      const rows: Array<{ source: string; input_ids: number[] }> = [];
      let tokens = 0, characters = 0;
      for (let i = 0; i < docs.length; i++) {
        const ids = tok.encode(docs[i].text);
        rows.push({ source: docs[i].source, input_ids: ids });
        tokens += ids.length;
        characters += docs[i].text.length;
        if (i % 1000 === 999 || i === docs.length - 1) {
          progress.update({
            done: i + 1,
            total: docs.length,
            rate: (i + 1) / ((performance.now() - started) / 1000),
            unit: "docs",
          });
        }
      }
      progress.finish();
      yield* writeJsonl(`${ctx.dir}/documents.jsonl`, rows);
      const report = {
        documents: docs.length,
        tokens,
        charactersPerToken: characters / tokens,
        eosId: tok.eosId,
        vocabSize: tok.vocabSize,
      };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
      ctx.reporter.log(`[${ctx.node}] ${docs.length} documents, ${tokens} tokens`);
    }),
});
