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
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { EmptyDataset } from "../errors.ts";
import { type MaskedRecord, readJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { modelDirOf } from "./shared.ts";
import { disposeParams, headInputAt, lmHeadWeight } from "../model/model.ts";
import { headLoss } from "../train/head_loss.ts";
import { weightedPositions } from "../train/loss.ts";
import { pad } from "../train/batches.ts";

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
        const mb = pad(batch.map((r) => ({ ids: r.input_ids, weights: r.weights })), 0);
        const at = weightedPositions(mb.ids, mb.weights, mb.batch, mb.seqLen);
        if (at.rows.length === 0) continue;
        let w = 0;
        const loss = tf.tidy(() => {
          const ids = tf.tensor2d(mb.ids, [mb.batch, mb.seqLen], "int32");
          // The fused head + loss: [tokens x vocabulary] logits are never held at once.
          const l = headLoss(
            headInputAt(params, modelConfig, ids, at.rows),
            lmHeadWeight(params, modelConfig),
            at.targets,
            at.weights,
            { eagerGradient: false },
          );
          w = l.weightSum;
          return l.loss;
        });
        lossSum += loss.dataSync()[0] * w;
        weightSum += w;
        loss.dispose();
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
