/**
 * Step `generateCorpus`: the synthetic pretraining corpus of src/data/corpus.ts, `documents` documents
 * drawn with `seed`, as corpus.jsonl (`{"text": ...}` per line, the corpus format every corpus step reads).
 * Deterministic for its config, so the engine caches it like any other step.
 *
 * Output: corpus.jsonl, and report.json (documents, characters, documents per kind).
 */
import { Effect, Schema } from "effect";
import { InvalidConfig } from "../errors.ts";
import { FORMAT_MARKERS, syntheticDocument } from "../data/corpus.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";

export const GenerateCorpusConfig = Schema.Struct({
  seed: Schema.Int,
  documents: Schema.Int.pipe(Schema.positive()),
});

export const generateCorpusStep = defineStep({
  name: "generateCorpus",
  version: 1,
  description: "synthetic arithmetic and word-problem documents for pretraining",
  config: GenerateCorpusConfig,
  inputs: [] as const,
  run: (config, _inputs, ctx) =>
    Effect.gen(function* () {
      const lines: string[] = [];
      const kinds: Record<string, number> = {};
      let characters = 0;
      for (let i = 0; i < config.documents; i++) {
        const { kind, text } = syntheticDocument(config.seed, i);
        // The corpus must leave the fine-tuning formats for fine-tuning to teach (see corpus.ts).
        const marker = FORMAT_MARKERS.find((m) => text.includes(m));
        if (marker) {
          return yield* new InvalidConfig({
            where: `${ctx.node}`,
            reason: `document ${i} (${kind}) contains the fine-tuning marker "${marker}"`,
          });
        }
        lines.push(JSON.stringify({ text }));
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        characters += text.length;
      }
      yield* writeFileAtomic(`${ctx.dir}/corpus.jsonl`, lines.join("\n") + "\n");
      yield* writeFileAtomic(
        `${ctx.dir}/report.json`,
        JSON.stringify({ documents: config.documents, characters, kinds }, null, 2) + "\n",
      );
      ctx.reporter.log(`[${ctx.node}] ${config.documents} documents, ${characters} characters`);
    }),
});
