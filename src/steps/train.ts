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
 * train_log.jsonl (loss, lr, gradient norm, tokens per step), train_summary.json, and train.meta.json
 * (wall time, backend: run facts, excluded from the content digest).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { describeError, InvalidConfig, NonFiniteLoss, TokenizerMismatch, WriteFailed } from "../errors.ts";
import { type MaskedRecord, readJsonl } from "../data/records.ts";
import { exists, readJson, removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { checkSeal, SEAL, sealOf } from "../io/sealed.ts";
import { defineStep } from "../engine/step.ts";
import { contextLength, ModelConfig } from "../model/config.ts";
import { loadCheckpoint, modelDirOf, saveCheckpoint } from "../model/checkpoint.ts";
import { disposeParams, initParams, type Params } from "../model/llama.ts";
import { loadOptimizerState, OPTIMIZER_FILE, saveOptimizerState } from "../train/optimizer_state.ts";
import { AdamW } from "../train/adamw.ts";
import { batchIndices, microBatches, type Sequence } from "../train/batches.ts";
import { Rng } from "../train/rng.ts";
import { Objective } from "../train/objectives.ts";
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
  /**
   * The per-token objective (src/train/objectives.ts). Absent means "ce"; it is left out of the encoded
   * config then, so the cache keys of runs made before objectives existed stay valid.
   */
  objective: Schema.optional(Objective),
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

// Other steps import it from here; it lives with the checkpoint code.
export { modelDirOf } from "../model/checkpoint.ts";

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
    // Sealed last: a resume trusts only a checkpoint whose files all match their digests.
    yield* writeFileAtomic(`${tmp}/${SEAL}`, yield* Effect.promise(() => sealOf(tmp)));
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

/**
 * The latest checkpoint, or undefined when there is none or it cannot be trusted. A checkpoint that fails
 * its seal or does not load (a crash while old checkpoints were deleted, a flipped byte, a truncated file)
 * is reported and removed, and the stage restarts from its beginning, which ends with the same weights;
 * failing instead would block every later attempt, and loading it regardless could resume from wrong weights.
 */
const loadTrainingCheckpoint = (dir: string, log: (line: string) => void) =>
  Effect.gen(function* () {
    const root = checkpointDir(dir);
    const latest = (yield* Effect.promise(() => Deno.readTextFile(`${root}/LATEST`).catch(() => "")))
      .trim();
    if (!latest) return undefined;
    const path = `${root}/${latest}`;
    const load = Effect.gen(function* () {
      const problem = /^step-\d+$/.test(latest)
        ? yield* Effect.promise(() => checkSeal(path))
        : `LATEST names "${latest.slice(0, 40)}"`;
      if (problem) return yield* Effect.fail(problem);
      const { config, params } = yield* loadCheckpoint(path);
      const rest = Effect.gen(function* () {
        const optimizer = yield* loadOptimizerState(`${path}/${OPTIMIZER_FILE}`, params);
        const state = yield* Effect.try(() =>
          JSON.parse(Deno.readTextFileSync(`${path}/state.json`)) as TrainState
        );
        return { path, config, params, optimizer, state };
      });
      return yield* Effect.tapError(rest, () => Effect.sync(() => disposeParams(params)));
    });
    const result = yield* Effect.either(load);
    if (result._tag === "Right") return result.right;
    const why = typeof result.left === "string"
      ? result.left
      : "_tag" in result.left && result.left._tag !== "UnknownException"
      ? describeError(result.left)
      : String(result.left);
    log(`checkpoint ${path} cannot be used (${why}); restarting this stage from its beginning`);
    yield* Effect.promise(() => removeIfExists(root));
    return undefined;
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
      const resumed = ctx.resumed
        ? yield* loadTrainingCheckpoint(ctx.dir, (line) => ctx.reporter.log(`[${ctx.node}] ${line}`))
        : undefined;
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
      if (longest > contextLength(modelConfig)) {
        return yield* new InvalidConfig({
          where: `${ctx.node}`,
          reason: `a sequence of ${longest} tokens exceeds the ${
            contextLength(modelConfig)
          } positions the model computes exactly`,
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
            objective: config.objective,
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

      // A model fine-tuned from a Hugging Face checkpoint keeps that checkpoint's other config.json fields
      // (eos_token_id, ...) and side files (generation_config.json, tokenizer files).
      const initDir = inputs.init ? yield* Effect.promise(() => modelDirOf(inputs.init!)) : undefined;
      const baseConfig = initDir
        ? (yield* readJson(`${initDir}/config.json`).pipe(Effect.orElseSucceed(() => undefined))) as
          | Record<string, unknown>
          | undefined
        : undefined;
      yield* saveCheckpoint(`${ctx.dir}/model`, modelConfig, params, {}, {
        baseConfig,
        copySideFilesFrom: initDir,
      });
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
            objective: config.objective ?? "ce",
            finalLoss: state.log.at(-1)?.loss,
          },
          null,
          2,
        ),
      );
      // Timings and the backend describe this run, not the model: kept out of the content digest.
      yield* writeFileAtomic(
        `${ctx.dir}/train.meta.json`,
        JSON.stringify({
          seconds: state.seconds,
          backend: ctx.backend,
          numTensorsAtEnd: tf.memory().numTensors,
        }),
      );
      yield* Effect.promise(() => removeIfExists(checkpointDir(ctx.dir)));
      return { resumed: resumed !== undefined };
    }),
});

/**
 * Copies tokenizer.json (and tokenizer_config.json beside it) so model/ is a complete HF checkpoint. The
 * tokenizer is a file, or a directory holding one (a trainTokenizer artifact).
 */
const copyTokenizerFiles = (tokenizerPath: string, modelDir: string) =>
  Effect.tryPromise({
    try: async () => {
      const isDir = (await Deno.stat(tokenizerPath)).isDirectory;
      const file = isDir ? `${tokenizerPath}/tokenizer.json` : tokenizerPath;
      const dir = file.slice(0, file.lastIndexOf("/") + 1) || "./";
      await Deno.copyFile(file, `${modelDir}/tokenizer.json`);
      if (await exists(`${dir}tokenizer_config.json`)) {
        await Deno.copyFile(`${dir}tokenizer_config.json`, `${modelDir}/tokenizer_config.json`);
      }
    },
    catch: (e) => new WriteFailed({ path: modelDir, reason: reason(e) }),
  });
