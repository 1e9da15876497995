/**
 * Step `generateCorpus`: the synthetic pretraining corpus of src/data/corpus.ts, `documents` documents
 * drawn with `seed`, as corpus.jsonl (`{"text": ...}` per line, the corpus format every corpus step reads).
 * Deterministic for its config and inputs, so the engine caches it like any other step.
 *
 * Inputs (optional): `exclude` and `excludeAlso`, fine-tuning task files or directories of them (JSONL rows
 * with a `prompt` or `question`): no document contains one of their questions, so pretraining never shows
 * the base a training or test problem of the tasks it is then fine-tuned and measured on.
 *
 * Output: corpus.jsonl, and report.json (documents, characters, documents per kind, excluded questions).
 */
import { Effect, Schema } from "effect";
import { FileUnreadable, InvalidConfig } from "../errors.ts";
import { FORMAT_MARKERS, syntheticDocument } from "../data/corpus.ts";
import { listFiles, writeFileAtomic } from "../io/fs.ts";
import { readJsonl } from "../data/records.ts";
import { defineStep } from "../engine/step.ts";

export const GenerateCorpusConfig = Schema.Struct({
  seed: Schema.Int,
  documents: Schema.Int.pipe(Schema.positive()),
});

/** The `prompt` / `question` of every row of a task file, or of every .jsonl file in a directory. */
const questionsIn = (path: string): Effect.Effect<string[], FileUnreadable> =>
  Effect.gen(function* () {
    const info = yield* Effect.tryPromise({
      try: () => Deno.stat(path),
      catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
    });
    const files = info.isDirectory
      ? (yield* Effect.promise(() => listFiles(path))).filter((f) => f.endsWith(".jsonl")).map((f) =>
        `${path}/${f}`
      )
      : [path];
    const out: string[] = [];
    for (const file of files) {
      for (const row of yield* readJsonl<{ prompt?: unknown; question?: unknown }>(file)) {
        const q = row.prompt ?? row.question;
        if (typeof q === "string") out.push(q);
      }
    }
    return out;
  });

export const generateCorpusStep = defineStep({
  name: "generateCorpus",
  version: 2,
  description: "synthetic arithmetic and word-problem documents for pretraining",
  config: GenerateCorpusConfig,
  inputs: ["exclude", "excludeAlso"] as const,
  optionalInputs: ["exclude", "excludeAlso"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const exclude = new Set<string>();
      for (const path of [inputs.exclude, inputs.excludeAlso]) {
        if (path) { for (const q of yield* questionsIn(path)) exclude.add(q); }
      }
      const lines: string[] = [];
      const kinds: Record<string, number> = {};
      let characters = 0;
      for (let i = 0; i < config.documents; i++) {
        const { kind, text } = syntheticDocument(config.seed, i, exclude);
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
        JSON.stringify(
          { documents: config.documents, characters, kinds, excludedQuestions: exclude.size },
          null,
          2,
        ) + "\n",
      );
      ctx.reporter.log(`[${ctx.node}] ${config.documents} documents, ${characters} characters`);
    }),
});
