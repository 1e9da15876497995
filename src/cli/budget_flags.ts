/**
 * Command-line overrides of a pipeline's optimisation budget (pipelines/budget.ts, Budget), so that a
 * shipped method or the comparison runs longer, shorter or at another learning rate without writing code:
 * `--stage-one-steps`, `--stage-two-steps` (a single-stage baseline gets their sum), `--lr` (peak learning
 * rate of stage one and of single-stage methods), `--stage-two-lr`, `--batch-size`, `--micro-batch-size`
 * (gradient accumulation: batch / micro passes per step) and `--checkpoint-every`; when fine-tuning a
 * checkpoint, `--epochs` (stage one, and single-stage methods with stage two's added), `--stage-two-epochs`
 * and `--warmup-ratio` (warm-up as a fraction of each stage's steps); step flags win over epochs. Changing one changes
 * the cache keys of exactly the training steps it reaches, so a rerun retrains those and reuses the rest.
 */
import { Effect, Option } from "effect";
import { optionalFloat, optionalInt, requirePositive } from "./flags.ts";
import { InvalidConfig } from "../errors.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";

export const budgetOptions = {
  stageOneSteps: optionalInt("stage-one-steps", "optimizer steps of stage one (default 400; --quick 30)"),
  stageTwoSteps: optionalInt("stage-two-steps", "optimizer steps of stage two (default 150; --quick 10)"),
  epochs: optionalFloat(
    "epochs",
    "fine-tuning: epochs of stage one; single-stage methods train it plus --stage-two-epochs (default 2)",
  ),
  stageTwoEpochs: optionalFloat("stage-two-epochs", "fine-tuning: epochs of stage two (default 0.5)"),
  warmupRatio: optionalFloat(
    "warmup-ratio",
    "fine-tuning: linear warm-up as a fraction of each stage's steps (default 0.1)",
  ),
  lr: optionalFloat(
    "lr",
    "peak learning rate of stage one and single-stage methods (default 3e-3; fine-tuning 1e-3)",
  ),
  stageTwoLr: optionalFloat("stage-two-lr", "peak learning rate of stage two (default 1e-4)"),
  batchSize: optionalInt("batch-size", "sequences per optimizer step (default 32; fine-tuning 16)"),
  microBatchSize: optionalInt(
    "micro-batch-size",
    "sequences per forward/backward pass (default: the batch size); given with --batch-size, it must divide it",
  ),
  checkpointEvery: optionalInt(
    "checkpoint-every",
    "optimizer steps between training checkpoints (default 50)",
  ),
};

export type BudgetFlags = { readonly [K in keyof typeof budgetOptions]: Option.Option<number> };

const FLAG: { readonly [K in keyof BudgetFlags]: string } = {
  stageOneSteps: "--stage-one-steps",
  stageTwoSteps: "--stage-two-steps",
  epochs: "--epochs",
  stageTwoEpochs: "--stage-two-epochs",
  warmupRatio: "--warmup-ratio",
  lr: "--lr",
  stageTwoLr: "--stage-two-lr",
  batchSize: "--batch-size",
  microBatchSize: "--micro-batch-size",
  checkpointEvery: "--checkpoint-every",
};

/** The budget overrides the flags ask for (undefined when none), checked for range. */
export const budgetFromFlags = (
  a: BudgetFlags,
): Effect.Effect<PipelineOptions["budget"], InvalidConfig> =>
  Effect.gen(function* () {
    const v = (k: keyof BudgetFlags) => Option.getOrUndefined(a[k]);
    yield* requirePositive(
      (Object.keys(FLAG) as Array<keyof BudgetFlags>).map((k) => [FLAG[k], a[k]] as const),
    );
    const ratio = v("warmupRatio");
    if (ratio !== undefined && ratio >= 1) {
      return yield* new InvalidConfig({ where: "--warmup-ratio", reason: `must be below 1, got ${ratio}` });
    }
    const batch = v("batchSize"), micro = v("microBatchSize") ?? batch;
    if (micro !== undefined && batch !== undefined && batch % micro !== 0) {
      return yield* new InvalidConfig({
        where: "--micro-batch-size",
        reason: `${micro} does not divide --batch-size ${batch}`,
      });
    }
    const train = Object.fromEntries(
      Object.entries({
        lr: v("lr"),
        batchSize: batch,
        microBatchSize: micro,
        checkpointEvery: v("checkpointEvery"),
      })
        .filter(([, x]) => x !== undefined),
    );
    const top = Object.fromEntries(
      Object.entries({
        stageOneSteps: v("stageOneSteps"),
        stageTwoSteps: v("stageTwoSteps"),
        stageTwoLr: v("stageTwoLr"),
        stageOneEpochs: v("epochs"),
        stageTwoEpochs: v("stageTwoEpochs"),
        warmupRatio: v("warmupRatio"),
      }).filter(([, x]) => x !== undefined),
    );
    if (Object.keys(train).length === 0 && Object.keys(top).length === 0) return undefined;
    return { ...top, ...(Object.keys(train).length > 0 ? { train } : {}) };
  });
