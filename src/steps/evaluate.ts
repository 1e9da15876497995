/**
 * Step `evaluate`: generation-based evaluation of a model on a test set.
 *
 * - accuracy: greedy generation (KV cache) from each prompt, the answer extracted with the same locator
 *   that found the gold key, exact match after numeric normalisation ("3.50" == "3.5", "1,000" == "1000");
 * - format_rate: share of generations in which the locator finds a well-formed key span at all;
 * - key_loss: mean cross entropy over the gold key tokens, teacher-forced (what stage two optimises).
 *
 * Output: metrics.json and predictions.jsonl (prompt, generation, extracted and gold answer per example).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { DataFormat, defaultLocator } from "../data/formats.ts";
import { extractAnswer, LocatorSpec, normaliseAnswer } from "../data/locate.ts";
import { type MaskedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import type { ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { generate } from "../model/generate.ts";
import { logitsAt } from "../model/model.ts";
import { weightedCrossEntropy, weightedPositions } from "../train/loss.ts";
import { pad } from "../train/batches.ts";
import { loadModel } from "./shared.ts";

export const EvaluateConfig = Schema.Struct({
  maxNewTokens: Schema.Int.pipe(Schema.positive()),
  batchSize: Schema.Int.pipe(Schema.positive()),
  format: DataFormat,
  /** Defaults to the format's locator, the one that found the gold keys. */
  locator: Schema.optional(LocatorSpec),
});

/** The `evaluate` step: greedy generation, answer extraction and exact match; format rate; key-token loss. */
export const evaluateStep: Step<typeof EvaluateConfig.Type, "model" | "data" | "tokenizer", ToolkitError> =
  defineStep({
    name: "evaluate",
    version: 1,
    description: "greedy generation, answer extraction and exact match; format rate; key-token loss",
    config: EvaluateConfig,
    inputs: ["model", "data", "tokenizer"] as const,
    producesMetrics: true,
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const locator = config.locator ?? defaultLocator[config.format];
        const { tok, config: modelConfig, params } = yield* loadModel(inputs.model!, inputs.tokenizer!);
        const rows = yield* readJsonl<MaskedRecord>(`${inputs.data}/masked.jsonl`);

        const progress = ctx.reporter.progress(`[${ctx.node}]`);
        const predictions: Array<Record<string, unknown>> = [];
        let correct = 0;
        let formatted = 0;
        let keyLossSum = 0;
        let keyTokens = 0;
        const started = performance.now();
        for (let i = 0; i < rows.length; i += config.batchSize) {
          const batch = rows.slice(i, i + config.batchSize);
          const prompts = batch.map((r) => r.input_ids.slice(0, r.prompt_length));
          const outputs = generate(params, modelConfig, prompts, {
            maxNewTokens: Math.min(
              config.maxNewTokens,
              modelConfig.maxPositions - Math.max(...prompts.map((p) => p.length)),
            ),
            eosId: tok.eosId,
          });
          batch.forEach((r, j) => {
            const text = tok.decode(outputs[j]);
            const predicted = extractAnswer(text, locator);
            const ok = predicted !== undefined && normaliseAnswer(predicted) === normaliseAnswer(r.answer);
            if (predicted !== undefined) formatted++;
            if (ok) correct++;
            predictions.push({
              source: r.source,
              prompt: tok.decode(prompts[j]),
              generated: text,
              predicted: predicted ?? null,
              gold: r.answer,
              correct: ok,
            });
          });
          // Teacher-forced loss on the gold key tokens (weights are the key mask), with the LM head applied
          // only at the positions that predict a key token: the full logits of a batch would be
          // [rows x length, vocab], gigabytes for a 50k vocabulary, to read a handful of rows.
          const mb = pad(batch.map((r) => ({ ids: r.input_ids, weights: r.weights })), 0);
          const at = weightedPositions(mb.ids, mb.weights, mb.batch, mb.seqLen);
          if (at.rows.length > 0) {
            let weightSum = 0;
            const loss = tf.tidy(() => {
              const ids = tf.tensor2d(mb.ids, [mb.batch, mb.seqLen], "int32");
              const l = weightedCrossEntropy(
                logitsAt(params, modelConfig, ids, at.rows),
                at.targets,
                at.weights,
              );
              weightSum = l.weightSum;
              return l.loss;
            });
            keyLossSum += loss.dataSync()[0] * weightSum;
            keyTokens += weightSum;
            loss.dispose();
          }
          const done = Math.min(i + config.batchSize, rows.length);
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
          accuracy: correct / n,
          format_rate: formatted / n,
          key_loss: keyLossSum / keyTokens,
          n,
          correct,
          backend: ctx.backend,
          locator: locator.kind,
        };
        yield* writeJsonl(`${ctx.dir}/predictions.jsonl`, predictions);
        yield* writeFileAtomic(`${ctx.dir}/metrics.json`, JSON.stringify(metrics, null, 2) + "\n");
        ctx.reporter.log(
          `[${ctx.node}] accuracy ${(100 * metrics.accuracy).toFixed(1)}%  format ${
            (100 * metrics.format_rate).toFixed(1)
          }%  key loss ${metrics.key_loss.toFixed(4)}  (n=${n})`,
        );
      }),
  });
