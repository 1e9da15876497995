/**
 * Step `convertCheckpoint`: a model checkpoint re-saved with its weights in another dtype (BF16 halves the
 * size of a checkpoint that is committed or shipped), config.json and tokenizer files kept. Loading widens
 * BF16 back to float32, so the result is the model that is actually shipped; evaluate this node, not the
 * float32 one, to report the shipped model's numbers.
 *
 * Output: model/ (a Hugging Face checkpoint).
 */
import { Effect, Schema } from "effect";
import { defineStep } from "../engine/step.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { modelDirOf } from "./shared.ts";
import { disposeParams } from "../model/model.ts";
import { readJson } from "../io/fs.ts";

export const ConvertCheckpointConfig = Schema.Struct({
  dtype: Schema.Literal("F32", "BF16"),
});

export const convertCheckpointStep = defineStep({
  name: "convertCheckpoint",
  version: 1,
  description: "a checkpoint re-saved in another weight dtype",
  config: ConvertCheckpointConfig,
  inputs: ["model"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const from = yield* Effect.promise(() => modelDirOf(inputs.model!));
      const { config: modelConfig, params } = yield* loadCheckpoint(from);
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
      const baseConfig = (yield* readJson(`${from}/config.json`)) as Record<string, unknown>;
      yield* saveCheckpoint(`${ctx.dir}/model`, modelConfig, params, {}, {
        baseConfig,
        copySideFilesFrom: from,
        dtype: config.dtype,
      });
      ctx.reporter.log(`[${ctx.node}] saved in ${config.dtype}`);
    }),
});
