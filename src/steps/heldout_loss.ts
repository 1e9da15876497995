/**
 * Step `heldoutLoss`: a model's token-weighted cross entropy on held-out rows (packBlocks' held-out split),
 * teacher-forced, and its perplexity exp(loss). The loss is the train step's own (src/train/loss.ts) over
 * the positions whose weight is positive, summed over all rows and divided by the total weight, so it is
 * directly comparable with the training loss.
 *
 * Output: heldout_metrics.json ({heldout_loss, perplexity, tokens, rows}), copied into the run directory
 * when the run ends. (Not metrics.json: the summary's metrics table is for models that answer test
 * questions.)
 */
import { Effect, Schema } from "effect";
import { EmptyDataset } from "../errors.ts";
import { type MaskedRecord, readJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { modelDirOf } from "./shared.ts";
import { disposeParams } from "../model/model.ts";
import { teacherForcedLossAsync } from "../train/head_loss.ts";

export const HeldoutLossConfig = Schema.Struct({
  /** Rows per forward pass. */
  batchSize: Schema.Int.pipe(Schema.positive()),
});

export const HELDOUT_FILE = "heldout_metrics.json";

export const heldoutLossStep = defineStep({
  name: "heldoutLoss",
  version: 1,
  description: "teacher-forced cross entropy and perplexity on held-out rows",
  config: HeldoutLossConfig,
  inputs: ["model", "data"] as const,
  publishes: [HELDOUT_FILE],
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const { config: modelConfig, params } = yield* loadCheckpoint(
        yield* Effect.promise(() => modelDirOf(inputs.model!)),
      );
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
      const rows = yield* readJsonl<MaskedRecord>(`${inputs.data}/masked.jsonl`);
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const started = performance.now();
      let lossSum = 0, weightSum = 0;
      for (let i = 0; i < rows.length; i += config.batchSize) {
        const batch = rows.slice(i, i + config.batchSize);
        const l = yield* Effect.promise(() =>
          teacherForcedLossAsync(
            params,
            modelConfig,
            batch.map((r) => ({ ids: r.input_ids, weights: r.weights })),
          )
        );
        lossSum += l.lossSum;
        weightSum += l.weightSum;
        const done = Math.min(i + config.batchSize, rows.length);
        progress.update({
          done,
          total: rows.length,
          rate: weightSum / ((performance.now() - started) / 1000),
        });
      }
      progress.finish();
      if (!(weightSum > 0)) {
        return yield* new EmptyDataset({
          what: inputs.data!,
          reason: "no held-out token has a positive weight",
        });
      }
      const heldoutLoss = lossSum / weightSum;
      const metrics = {
        heldout_loss: heldoutLoss,
        perplexity: Math.exp(heldoutLoss),
        tokens: weightSum,
        rows: rows.length,
        backend: ctx.backend,
      };
      yield* writeFileAtomic(`${ctx.dir}/${HELDOUT_FILE}`, JSON.stringify(metrics, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] held-out loss ${heldoutLoss.toFixed(4)}, perplexity ${
          metrics.perplexity.toFixed(3)
        } ` +
          `(${weightSum} tokens)`,
      );
    }),
});
