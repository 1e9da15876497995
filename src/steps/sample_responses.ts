/**
 * Step `sampleResponses`: replaces every training example's response by the model's own, generated from
 * the example's prompt (greedy at temperature 0, else sampled with a seeded RNG). Used by UPFT's
 * unsupervised setting (arXiv 2503.02875: one sample per question, not verified).
 *
 * With `maxExamples` only a seeded subset of the examples is kept (smoke runs).
 *
 * Output: tokens.jsonl in the tokenise step's format (prompt ids unchanged, the generated ids, EOS when the
 * model ended the response), so buildMasks and the method steps consume it like gold data, and
 * report.json (how many samples ended with EOS and how many the answer-match judge would accept; the
 * judge's verdict is recorded, never used to filter).
 */
import { Effect, Schema } from "effect";
import { DataFormat, defaultLocator } from "../data/formats.ts";
import { LocatorSpec } from "../data/locate.ts";
import { readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { stableSubset } from "../data/select.ts";
import { writeFileAtomic } from "../io/fs.ts";
import type { ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { Rng } from "../util/rng.ts";
import { answerMatches, generateAll, generatedRecord } from "./self_generation.ts";
import { loadModel } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `SampleResponsesConfig`. */
export const SampleResponsesConfig: Schema.Schema<SampleResponsesConfig> = Schema.Struct({
  format: DataFormat,
  /** Defaults to the format's locator, the one that found the gold keys. */
  locator: Schema.optional(LocatorSpec),
  maxNewTokens: Schema.Int.pipe(Schema.positive()),
  batchSize: Schema.Int.pipe(Schema.positive()),
  /** 0 is greedy decoding. */
  temperature: Schema.Number.pipe(Schema.nonNegative(), Schema.finite()),
  seed: Schema.Int,
  /** Keep only this many examples, chosen by a seeded hash of the prompt (src/data/select.ts). */
  maxExamples: Schema.optional(Schema.Int.pipe(Schema.positive())),
});

/**
 * The `sampleResponses` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface SampleResponsesConfig {
  /** The data format, which also names the default locator. */
  readonly format: DataFormat;
  /** Defaults to the format's locator, the one that found the gold keys. */
  readonly locator?: LocatorSpec;
  /** Tokens generated per response at most. */
  readonly maxNewTokens: number;
  /** Rows per batched generation call. */
  readonly batchSize: number;
  /** 0 is greedy decoding. */
  readonly temperature: number;
  /** Seed of the random choices. */
  readonly seed: number;
  /** Keep only this many examples, chosen by a seeded hash of the prompt (src/data/select.ts). */
  readonly maxExamples?: number;
}

/** The `sampleResponses` step: replace each response by one the model generates from the prompt (unverified). */
export const sampleResponsesStep: Step<
  SampleResponsesConfig,
  "model" | "data" | "tokenizer",
  ToolkitError
> = defineStep({
  name: "sampleResponses",
  version: 1,
  description: "replace each response by one the model generates from the prompt (unverified)",
  config: SampleResponsesConfig,
  inputs: ["model", "data", "tokenizer"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const { tok, config: modelConfig, params } = yield* loadModel(inputs.model!, inputs.tokenizer!);
      const all = yield* readJsonl<TokenRecord>(`${inputs.data}/tokens.jsonl`);
      const allPrompts = all.map((r) => r.input_ids.slice(0, r.prompt_length));
      const chosen = config.maxExamples === undefined
        ? all.map((_, i) => i)
        : stableSubset(config.seed, allPrompts, config.maxExamples).sort((a, b) => a - b);
      const rows = chosen.map((i) => all[i]);
      const prompts = chosen.map((i) => allPrompts[i]);
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const started = performance.now();
      const samples = generateAll(params, modelConfig, prompts, {
        maxNewTokens: config.maxNewTokens,
        batchSize: config.batchSize,
        eosId: tok.eosId,
        temperature: config.temperature,
        rng: Rng.seeded(config.seed),
        onBatch: (done) =>
          progress.update({
            done,
            total: rows.length,
            rate: done / ((performance.now() - started) / 1000),
            unit: "ex",
          }),
      });
      progress.finish();
      const out = rows.map((r, i) =>
        generatedRecord(tok, locator, r.source, prompts[i], samples[i], r.answer)
      );
      const accepted = samples.filter((s, i) =>
        answerMatches(tok.decode(s.ids), rows[i].answer, locator)
      ).length;
      yield* writeJsonl(`${ctx.dir}/tokens.jsonl`, out);
      const report = {
        examples: rows.length,
        endedWithEos: samples.filter((s) => s.finished).length,
        judgedCorrect: accepted,
        meanResponseTokens: samples.reduce((n, s) => n + s.ids.length, 0) / Math.max(1, samples.length),
        temperature: config.temperature,
      };
      // No wall time here: report.json is content, and its digest keys what follows (the manifest has the
      // seconds; engine/store.ts).
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(
        `[${ctx.node}] ${rows.length} responses sampled, ${report.endedWithEos} ended with EOS, ` +
          `${accepted} would be judged correct (not used to filter)`,
      );
    }),
});
