/**
 * Step `train`: token-weighted SFT of a causal LM on a masked dataset. Stage one and stage two of SFTKey
 * are this same step with another mask (the `data` input) and another starting checkpoint (`init`).
 *
 * Resumable: every `checkpointEvery` optimizer steps it writes weights, AdamW moments, the schedule
 * position, the RNG state and the data cursor into its working directory, atomically (a new directory,
 * then the LATEST pointer is swapped by rename). A killed run restarted with the same inputs continues
 * from the last checkpoint and ends with exactly the weights of an uninterrupted run: the data order is
 * a pure function of (seed, step) (train/batches.ts) and tfjs' cpu kernels are deterministic.
 *
 * Output: model/ (a Hugging Face checkpoint: config.json, model.safetensors, tokenizer files),
 * train_log.jsonl (loss, lr, gradient norm, tokens per step) and train_summary.json.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { InvalidConfig, NonFiniteLoss, TokenizerMismatch, WriteFailed } from "../errors.ts";
import { type MaskedRecord, readJsonl } from "../data/records.ts";
import { exists, removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";
import { ModelConfig } from "../model/config.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { disposeParams, initParams, type Params } from "../model/llama.ts";
import { loadOptimizerState, OPTIMIZER_FILE, saveOptimizerState } from "../train/optimizer_state.ts";
import { AdamW } from "../train/adamw.ts";
import { batchIndices, microBatches, type Sequence } from "../train/batches.ts";
import { Rng } from "../train/rng.ts";
import { lrAt } from "../train/schedule.ts";
import { trainStep as optimise } from "../train/step.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());
const NonNegative = Schema.Number.pipe(Schema.nonNegative(), Schema.finite());

export const TrainConfig = Schema.Struct({
  /** Optimizer steps. */
  steps: PositiveInt,
  /** Sequences per optimizer step. */
  batchSize: PositiveInt,
  /** Sequences per forward/backward pass; batchSize / microBatchSize passes are accumulated. */
  microBatchSize: PositiveInt,
  /** Peak learning rate, reached after `warmupSteps` of linear warm-up, then cosine decay. */
  lr: Schema.Number.pipe(Schema.positive(), Schema.finite()),
  warmupSteps: Schema.Int.pipe(Schema.nonNegative()),
  /** The cosine ends at lr * minLrRatio. */
  minLrRatio: NonNegative.pipe(Schema.lessThanOrEqualTo(1)),
  weightDecay: NonNegative,
  /** Global gradient-norm clipping threshold. */
  clipNorm: Schema.Number.pipe(Schema.positive(), Schema.finite()),
  checkpointEvery: PositiveInt,
  seed: Schema.Int,
  /** Architecture of a model trained from scratch; required when `init` is not connected. */
  model: Schema.optional(ModelConfig),
});
export type TrainConfig = typeof TrainConfig.Type;

interface LogRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
}

interface TrainState {
  /** Optimizer steps completed. */
  readonly step: number;
  /** Index of the next training example in the epoch-wise shuffled stream. */
  readonly cursor: number;
  readonly rng: number[];
  readonly log: LogRow[];
  readonly seconds: number;
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The model directory inside a train artifact, or a plain checkpoint directory given as a source. */
export const modelDirOf = async (dir: string) =>
  (await exists(`${dir}/model/config.json`)) ? `${dir}/model` : dir;

const checkpointDir = (dir: string) => `${dir}/checkpoints`;

const saveTrainingCheckpoint = (
  dir: string,
  config: ModelConfig,
  params: Params,
  optimizer: AdamW,
  state: TrainState,
) =>
  Effect.gen(function* () {
    const root = checkpointDir(dir);
    const name = `step-${String(state.step).padStart(7, "0")}`;
    const tmp = `${root}/${name}.tmp`;
    yield* Effect.tryPromise({
      try: () => removeIfExists(tmp).then(() => Deno.mkdir(tmp, { recursive: true })),
      catch: (e) => new WriteFailed({ path: tmp, reason: reason(e) }),
    });
    yield* saveCheckpoint(tmp, config, params);
    yield* saveOptimizerState(`${tmp}/${OPTIMIZER_FILE}`, optimizer.exportState());
    yield* writeFileAtomic(`${tmp}/state.json`, JSON.stringify(state));
    yield* Effect.tryPromise({
      try: async () => {
        await removeIfExists(`${root}/${name}`);
        await Deno.rename(tmp, `${root}/${name}`);
      },
      catch: (e) => new WriteFailed({ path: `${root}/${name}`, reason: reason(e) }),
    });
    yield* writeFileAtomic(`${root}/LATEST`, name);
    // Older checkpoints are no longer needed once LATEST points past them.
    yield* Effect.promise(async () => {
      for await (const e of Deno.readDir(root)) {
        if (e.isDirectory && e.name !== name) await removeIfExists(`${root}/${e.name}`);
      }
    });
    return `${root}/${name}`;
  });

const loadTrainingCheckpoint = (dir: string) =>
  Effect.gen(function* () {
    const root = checkpointDir(dir);
    const latest = yield* Effect.promise(() => Deno.readTextFile(`${root}/LATEST`).catch(() => undefined));
    if (!latest) return undefined;
    const path = `${root}/${latest.trim()}`;
    const { config, params } = yield* loadCheckpoint(path);
    const optimizer = yield* loadOptimizerState(`${path}/${OPTIMIZER_FILE}`, params);
    const state = JSON.parse(
      yield* Effect.promise(() => Deno.readTextFile(`${path}/state.json`)),
    ) as TrainState;
    return { path, config, params, optimizer, state };
  });

export const trainStep = defineStep({
  name: "train",
  version: 1,
  description: "token-weighted SFT with AdamW, warm-up + cosine, clipping, accumulation and checkpoints",
  config: TrainConfig,
  inputs: ["data", "init", "tokenizer"] as const,
  optionalInputs: ["init", "tokenizer"] as const,
  resumable: true,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const rows = yield* readJsonl<MaskedRecord>(`${inputs.data}/masked.jsonl`);
      const data: Sequence[] = rows.map((r) => ({ ids: r.input_ids, weights: r.weights }));

      // The starting point: a resumed checkpoint, else the init checkpoint, else a fresh model.
      const resumed = ctx.resumed ? yield* loadTrainingCheckpoint(ctx.dir) : undefined;
      let modelConfig: ModelConfig;
      let params: Params;
      if (resumed) {
        modelConfig = resumed.config;
        params = resumed.params;
      } else if (inputs.init) {
        const loaded = yield* loadCheckpoint(yield* Effect.promise(() => modelDirOf(inputs.init!)));
        modelConfig = loaded.config;
        params = loaded.params;
      } else if (config.model) {
        modelConfig = config.model;
        params = initParams(modelConfig, Rng.seeded(config.seed));
      } else {
        return yield* new InvalidConfig({
          where: `${ctx.node}.config.model`,
          reason: "no starting checkpoint is connected, so a model architecture is required",
        });
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));

      const maxId = Math.max(...rows.map((r) => Math.max(...r.input_ids)));
      if (maxId >= modelConfig.vocabSize) {
        return yield* new TokenizerMismatch({
          path: inputs.tokenizer ?? inputs.data!,
          reason: `token id ${maxId} does not fit the model's vocabulary of ${modelConfig.vocabSize}`,
        });
      }
      const longest = Math.max(...rows.map((r) => r.input_ids.length));
      if (longest > modelConfig.maxPositions) {
        return yield* new InvalidConfig({
          where: `${ctx.node}`,
          reason:
            `a sequence of ${longest} tokens exceeds the model's maxPositions ${modelConfig.maxPositions}`,
        });
      }

      const optimizer = new AdamW(params, { weightDecay: config.weightDecay });
      let state: TrainState = {
        step: 0,
        cursor: 0,
        rng: Rng.seeded(config.seed).state(),
        log: [],
        seconds: 0,
      };
      let lastCheckpoint = "(none yet)";
      if (resumed) {
        optimizer.importState(resumed.optimizer);
        state = resumed.state;
        lastCheckpoint = resumed.path;
        ctx.reporter.log(`[${ctx.node}] resuming at optimizer step ${state.step}/${config.steps}`);
      }

      const padId = 0;
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const started = performance.now() - state.seconds * 1000;
      let windowStart = performance.now();
      let windowTokens = 0;
      while (state.step < config.steps) {
        const batch = batchIndices(data.length, config.batchSize, state.step, config.seed).map((i) =>
          data[i]
        );
        const lr = lrAt(state.step, {
          lr: config.lr,
          warmupSteps: config.warmupSteps,
          totalSteps: config.steps,
          minLrRatio: config.minLrRatio,
        });
        const result = optimise(
          params,
          modelConfig,
          optimizer,
          microBatches(batch, config.microBatchSize, padId),
          {
            lr,
            clipNorm: config.clipNorm,
          },
        );
        if (!Number.isFinite(result.loss)) {
          return yield* new NonFiniteLoss({
            step: state.step + 1,
            loss: result.loss,
            checkpoint: lastCheckpoint,
          });
        }
        const row: LogRow = {
          step: state.step + 1,
          loss: result.loss,
          lr,
          gradNorm: result.gradNorm,
          tokens: result.tokens,
        };
        state = {
          step: state.step + 1,
          cursor: (state.step + 1) * config.batchSize,
          rng: state.rng,
          log: [...state.log, row],
          seconds: (performance.now() - started) / 1000,
        };
        windowTokens += result.tokens;
        const elapsed = (performance.now() - windowStart) / 1000;
        progress.update({
          done: state.step,
          total: config.steps,
          loss: result.loss,
          rate: windowTokens / elapsed,
        });
        if (elapsed > 20) {
          windowStart = performance.now();
          windowTokens = 0;
        }
        if (state.step % config.checkpointEvery === 0 && state.step < config.steps) {
          lastCheckpoint = yield* saveTrainingCheckpoint(ctx.dir, modelConfig, params, optimizer, state);
        }
      }
      progress.finish();

      yield* saveCheckpoint(`${ctx.dir}/model`, modelConfig, params);
      if (inputs.tokenizer) yield* copyTokenizerFiles(inputs.tokenizer, `${ctx.dir}/model`);
      yield* writeFileAtomic(
        `${ctx.dir}/train_log.jsonl`,
        state.log.map((r) => JSON.stringify(r)).join("\n") + "\n",
      );
      const tokens = state.log.reduce((s, r) => s + r.tokens, 0);
      yield* writeFileAtomic(
        `${ctx.dir}/train_summary.json`,
        JSON.stringify(
          {
            steps: state.step,
            examples: data.length,
            weightedTokens: tokens,
            finalLoss: state.log.at(-1)?.loss,
            seconds: state.seconds,
            backend: ctx.backend,
            numTensorsAtEnd: tf.memory().numTensors,
          },
          null,
          2,
        ),
      );
      yield* Effect.promise(() => removeIfExists(checkpointDir(ctx.dir)));
      return { resumed: resumed !== undefined };
    }),
});

/** Copies tokenizer.json (and tokenizer_config.json beside it) so model/ is a complete HF checkpoint. */
const copyTokenizerFiles = (tokenizerPath: string, modelDir: string) =>
  Effect.tryPromise({
    try: async () => {
      const dir = tokenizerPath.slice(0, tokenizerPath.lastIndexOf("/") + 1) || "./";
      await Deno.copyFile(tokenizerPath, `${modelDir}/tokenizer.json`);
      if (await exists(`${dir}tokenizer_config.json`)) {
        await Deno.copyFile(`${dir}tokenizer_config.json`, `${modelDir}/tokenizer_config.json`);
      }
    },
    catch: (e) => new WriteFailed({ path: modelDir, reason: reason(e) }),
  });
