/**
 * Step `evaluate`: generation-based evaluation of a model on a test set.
 *
 * - accuracy: greedy generation (KV cache) from each prompt, the answer extracted with the same locator
 *   that found the gold key, exact match after numeric normalisation ("3.50" == "3.5", "1,000" == "1000");
 * - format_rate: share of generations in which the locator finds a well-formed key span at all;
 * - key_loss: mean cross entropy over the gold key tokens, teacher-forced (what stage two optimises).
 *
 * With `samples` k > 1 (and a `temperature` above 0) it draws k seeded samples per prompt instead of the
 * greedy continuation: accuracy and format rate are then means over all samples (accuracy is pass@1), and
 * it adds pass@j for j = 1, 2, 4, ..., k (the unbiased estimator of Chen et al. 2021 from the k samples)
 * and majority_accuracy (the most frequent normalised extracted answer of each prompt, compared with the
 * gold one), and majority_at: the majority vote's accuracy over each prompt's first j samples, for the same
 * j (test-time scaling: accuracy against the number of rollouts voted over). Without `samples`, `temperature` and `seed` the config, the cache key and the output are those
 * of the greedy evaluation.
 *
 * Output: metrics.json and predictions.jsonl (prompt, generation, extracted and gold answer per example;
 * with samples, every sample and the majority answer).
 */
import { Effect, Schema } from "effect";
import { DataFormat, defaultLocator } from "../data/formats.ts";
import { extractAnswer, LocatorSpec, normaliseAnswer } from "../data/locate.ts";
import { type MaskedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { InvalidConfig, type ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { generateAsync } from "../model/generate.ts";
import { teacherForcedLossAsync } from "../train/head_loss.ts";
import { majorityVote, passAtK } from "../report/stats.ts";
import { Rng } from "../util/rng.ts";
import { modelPolicy } from "../train/rftt_model_expander.ts";
import { functionalIds } from "../train/rl_rollouts.ts";
import { searchTraces, TEST_SEARCH_DEFAULTS } from "../train/rftt_test_search.ts";
import { loadModel } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `EvaluateConfig`. */
export const EvaluateConfig: Schema.Schema<EvaluateConfig> = Schema.Struct({
  maxNewTokens: Schema.Int.pipe(Schema.positive()),
  batchSize: Schema.Int.pipe(Schema.positive()),
  format: DataFormat,
  /** Defaults to the format's locator, the one that found the gold keys. */
  locator: Schema.optional(LocatorSpec),
  /** Generations per prompt (default 1). */
  samples: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Sampling temperature (default 0: greedy); more than one sample needs a temperature above 0. */
  temperature: Schema.optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite())),
  /** Seed of the sampling (default 0). */
  seed: Schema.optional(Schema.Int),
  /** RFTT's test-time search: functional-token MCTS rollouts per prompt, voted over (default: none). */
  rollouts: Schema.optional(Schema.Int.pipe(Schema.positive())),
});
/**
 * The `evaluate` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface EvaluateConfig {
  /** Tokens generated per response at most. */
  readonly maxNewTokens: number;
  /** Rows per batched generation call. */
  readonly batchSize: number;
  /** The data format, which also names the default locator. */
  readonly format: DataFormat;
  /** Defaults to the format's locator, the one that found the gold keys. */
  readonly locator?: LocatorSpec;
  /** Generations per prompt (default 1). */
  readonly samples?: number;
  /** Sampling temperature (default 0: greedy); more than one sample needs a temperature above 0. */
  readonly temperature?: number;
  /** Seed of the sampling (default 0). */
  readonly seed?: number;
  /**
   * RFTT's test-time search (`--rollouts N`): N functional-token MCTS rollouts per prompt
   * (../train/rftt_test_search.ts), the answer the majority vote over their `<output>` answers; the
   * temperature, when given, is the steps' (default 0.3). Needs a tokenizer with the functional tokens.
   */
  readonly rollouts?: number;
}

/** The sample counts pass@j is reported for: powers of two below k, and k. */
export const passAtSizes = (k: number): number[] => {
  const out: number[] = [];
  for (let j = 1; j < k; j *= 2) out.push(j);
  out.push(k);
  return out;
};

/**
 * The `evaluate` step's inputs: the model, the test set with key masks, the tokenizer, and optionally a
 * LoRA adapter merged into the model first (`deno task eval --adapter`, a pipeline's base and its
 * --adapter); unconnected, a node's key is what it was before the input existed.
 */
export type EvaluateInput = "model" | "data" | "tokenizer" | "adapter";

/** The `evaluate` step: generation, answer extraction and exact match; format rate; key-token loss; pass@k. */
export const evaluateStep: Step<EvaluateConfig, EvaluateInput, ToolkitError> = defineStep({
  name: "evaluate",
  version: 1,
  description: "greedy generation, answer extraction and exact match; format rate; key-token loss",
  config: EvaluateConfig,
  inputs: ["model", "data", "tokenizer", "adapter"] as const,
  optionalInputs: ["adapter"] as const,
  producesMetrics: true,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const { tok, config: modelConfig, params } = yield* loadModel(
        inputs.model!,
        inputs.tokenizer!,
        inputs.adapter,
      );
      const rows = yield* readJsonl<MaskedRecord>(`${inputs.data}/masked.jsonl`);

      if (config.rollouts !== undefined) {
        if (config.samples !== undefined) {
          return yield* new InvalidConfig({
            where: `${ctx.node}.config.samples`,
            reason: "samples and rollouts are two ways of voting; give one",
          });
        }
        if (functionalIds(tok) === undefined) {
          return yield* new InvalidConfig({
            where: `${ctx.node}.config.rollouts`,
            reason:
              `the test-time search writes functional-token traces, and ${tok.path} has no functional tokens (an RFTT model's tokenizer has them)`,
          });
        }
        if (ctx.backend === "webgpu") {
          return yield* new InvalidConfig({
            where: `${ctx.node}.config.rollouts`,
            reason: "the test-time search runs on the cpu, cpu-blas and tensorflow backends, not on webgpu",
          });
        }
      }
      const k = config.rollouts ?? config.samples ?? 1;
      const temperature = config.temperature ??
        (config.rollouts !== undefined ? TEST_SEARCH_DEFAULTS.stepTemperature : 0);
      if (config.rollouts === undefined && k > 1 && temperature === 0) {
        return yield* new InvalidConfig({
          where: `${ctx.node}.config.temperature`,
          reason: `${k} samples per prompt need a temperature above 0 (greedy samples are all the same)`,
        });
      }
      const rng = temperature > 0 || config.rollouts !== undefined ? Rng.seeded(config.seed ?? 0) : undefined;
      const policy = config.rollouts !== undefined ? modelPolicy(params, modelConfig) : undefined;
      const sizes = passAtSizes(k);
      const passSums = sizes.map(() => 0);
      const majoritySums = sizes.map(() => 0);
      let majorityCorrect = 0;
      // batchSize counts generated sequences: each prompt of a batch is generated k times.
      const rowsPerBatch = Math.max(1, Math.floor(config.batchSize / k));

      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const predictions: Array<Record<string, unknown>> = [];
      let correct = 0;
      let formatted = 0;
      let keyLossSum = 0;
      let keyTokens = 0;
      const started = performance.now();
      for (let i = 0; i < rows.length; i += rowsPerBatch) {
        const batch = rows.slice(i, i + rowsPerBatch);
        const prompts = batch.map((r) => r.input_ids.slice(0, r.prompt_length));
        let longestPrompt = 0;
        for (const p of prompts) longestPrompt = Math.max(longestPrompt, p.length);
        // Asynchronous (generation and the key loss) so that evaluation also runs on webgpu.
        // The test-time search writes traces step by step (synchronous: the cpu backends only).
        const searched = policy
          ? prompts.map((p) =>
            searchTraces(policy, tok, p, {
              ...TEST_SEARCH_DEFAULTS,
              rollouts: k,
              stepTemperature: temperature,
            }, rng!)
          )
          : undefined;
        const outputs = searched ? [] : yield* Effect.promise(() =>
          generateAsync(
            params,
            modelConfig,
            prompts.flatMap((p) => Array.from({ length: k }, () => p)),
            {
              maxNewTokens: Math.min(config.maxNewTokens, modelConfig.maxPositions - longestPrompt),
              eosId: tok.eosId,
              ...(rng ? { temperature, rng } : {}),
            },
          )
        );
        batch.forEach((r, j) => {
          const gold = normaliseAnswer(r.answer);
          const samples = searched
            ? searched[j].map((t) => ({
              text: t.text,
              predicted: t.answer,
              ok: t.answer !== undefined && normaliseAnswer(t.answer) === gold,
            }))
            : outputs.slice(j * k, (j + 1) * k).map((ids) => {
              const text = tok.decode(ids);
              const predicted = extractAnswer(text, locator);
              return { text, predicted, ok: predicted !== undefined && normaliseAnswer(predicted) === gold };
            });
          const right = samples.filter((x) => x.ok).length;
          formatted += samples.filter((x) => x.predicted !== undefined).length;
          correct += right;
          const prompt = tok.decode(prompts[j]);
          if (k === 1) {
            predictions.push({
              source: r.source,
              prompt,
              generated: samples[0].text,
              predicted: samples[0].predicted ?? null,
              gold: r.answer,
              correct: samples[0].ok,
            });
            return;
          }
          const answers = samples.map((x) =>
            x.predicted === undefined ? undefined : normaliseAnswer(x.predicted)
          );
          sizes.forEach((size, at) => {
            // A tree's rollouts are not independent samples: pass@j is then whether one of the first j
            // rollouts is right (exact), not the unbiased estimator.
            passSums[at] += searched
              ? (samples.slice(0, size).some((x) => x.ok) ? 1 : 0)
              : passAtK(k, right, size);
            if (majorityVote(answers.slice(0, size)) === gold) majoritySums[at]++;
          });
          const majority = majorityVote(answers);
          if (majority === gold) majorityCorrect++;
          predictions.push({
            source: r.source,
            prompt,
            gold: r.answer,
            correct_samples: right,
            majority: majority ?? null,
            majority_correct: majority === gold,
            [searched ? "rollouts" : "samples"]: samples.map((x) => ({
              generated: x.text,
              predicted: x.predicted ?? null,
              correct: x.ok,
            })),
          });
        });
        // Teacher-forced loss on the gold key tokens (weights are the key mask).
        const key = yield* Effect.promise(() =>
          teacherForcedLossAsync(
            params,
            modelConfig,
            batch.map((r) => ({ ids: r.input_ids, weights: r.weights })),
          )
        );
        keyLossSum += key.lossSum;
        keyTokens += key.weightSum;
        const done = Math.min(i + rowsPerBatch, rows.length);
        progress.update({
          done,
          total: rows.length,
          rate: done / ((performance.now() - started) / 1000),
          unit: "ex",
        });
      }
      progress.finish();
      const n = rows.length;
      const metrics = {
        // The search's answer is its vote; sampling's accuracy is the mean over samples (pass@1).
        accuracy: policy && k > 1 ? majorityCorrect / n : correct / (n * k),
        ...(policy ? { rollout_accuracy: correct / (n * k) } : {}),
        format_rate: formatted / (n * k),
        key_loss: keyLossSum / keyTokens,
        n,
        correct,
        backend: ctx.backend,
        locator: locator.kind,
        ...(policy
          ? { rollouts: k, temperature, seed: config.seed ?? 0 }
          : rng
          ? { samples: k, temperature, seed: config.seed ?? 0 }
          : {}),
        ...(k > 1
          ? {
            pass_at: Object.fromEntries(sizes.map((size, at) => [String(size), passSums[at] / n])),
            majority_accuracy: majorityCorrect / n,
            majority_at: Object.fromEntries(sizes.map((size, at) => [String(size), majoritySums[at] / n])),
          }
          : {}),
      };
      yield* writeJsonl(`${ctx.dir}/predictions.jsonl`, predictions);
      yield* writeFileAtomic(`${ctx.dir}/metrics.json`, JSON.stringify(metrics, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] accuracy ${(100 * metrics.accuracy).toFixed(1)}%  format ${
          (100 * metrics.format_rate).toFixed(1)
        }%  key loss ${metrics.key_loss.toFixed(4)}  (n=${n})${
          metrics.pass_at
            ? `  pass@${k} ${(100 * metrics.pass_at[String(k)]).toFixed(1)}%  majority ${
              (100 * metrics.majority_accuracy!).toFixed(1)
            }%`
            : ""
        }`,
      );
    }),
});
