/**
 * Step `train`: token-weighted SFT of a causal LM on a masked dataset. Stage one and stage two of SFTKey
 * are this same step with another mask (the `data` input) and another starting checkpoint (`init`).
 *
 * Resumable: every `checkpointEvery` optimizer steps it writes weights, AdamW moments and the step count
 * (with the loss log so far) into its working directory, atomically (a new directory, then the LATEST
 * pointer is swapped by rename). No RNG state or data cursor is saved because none is needed: the data
 * order is a pure function of (seed, step) (train/batches.ts), so the step count alone says which batch
 * comes next. A killed run restarted with the same inputs continues from the last checkpoint and ends
 * with exactly the weights of an uninterrupted run, since tfjs' cpu kernels are deterministic too.
 *
 * Output: model/ (a Hugging Face checkpoint: config.json, model.safetensors, tokenizer files),
 * train_log.jsonl (loss, lr, gradient norm, tokens per step), train_summary.json, and train.meta.json
 * (wall time, backend: run facts, excluded from the content digest).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import {
  describeError,
  InvalidConfig,
  NonFiniteLoss,
  TokenizerMismatch,
  type ToolkitError,
  WriteFailed,
} from "../errors.ts";
import { type MaskedRecord, readJsonl } from "../data/records.ts";
import { exists, readJson, removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { checkSeal, SEAL, sealOf } from "../io/sealed.ts";
import { defineStep, type Step, type StepContext } from "../engine/step.ts";
import { modelDirOf } from "./shared.ts";
import { contextLength, ModelConfig } from "../model/config.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { disposeParams, initParams, type Params } from "../model/model.ts";
import { loadOptimizerState, OPTIMIZER_FILE, saveOptimizerState } from "../train/optimizer_state.ts";
import { AdamW } from "../train/adamw.ts";
import { batchIndices, microBatches, type Sequence } from "../train/batches.ts";
import { Rng } from "../util/rng.ts";
import { Objective } from "../train/objectives.ts";
import { lrAt } from "../train/schedule.ts";
import { optimizerStep } from "../train/step.ts";

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
  /**
   * Optimizer steps completed; with the seed it fixes the next batch (train/batches.ts). Checkpoints
   * written before this comment also hold `cursor` and `rng` fields: they were never read and are ignored.
   */
  readonly step: number;
  readonly log: LogRow[];
  readonly seconds: number;
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

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
        // Only the fields TrainState has: older checkpoints also carry `cursor` and `rng`, dropped here.
        const state = yield* Effect.try((): TrainState => {
          const { step, log, seconds } = JSON.parse(Deno.readTextFileSync(`${path}/state.json`));
          return { step, log, seconds };
        });
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

/** Where training starts: a resumed checkpoint, else the init checkpoint, else a fresh model. */
const startingPoint = (config: TrainConfig, init: string | undefined, ctx: StepContext) =>
  Effect.gen(function* () {
    const resumed = ctx.resumed
      ? yield* loadTrainingCheckpoint(ctx.dir, (line) => ctx.reporter.log(`[${ctx.node}] ${line}`))
      : undefined;
    if (resumed) return { modelConfig: resumed.config, params: resumed.params, resumed };
    if (init) {
      const loaded = yield* loadCheckpoint(yield* Effect.promise(() => modelDirOf(init)));
      return { modelConfig: loaded.config, params: loaded.params, resumed };
    }
    if (config.model) {
      return {
        modelConfig: config.model,
        params: initParams(config.model, Rng.seeded(config.seed)),
        resumed,
      };
    }
    return yield* new InvalidConfig({
      where: `${ctx.node}.config.model`,
      reason: "no starting checkpoint is connected, so a model architecture is required",
    });
  });

/** Every row's token ids fit the model's vocabulary and its exactly computed context. */
const checkDataFits = (
  rows: ReadonlyArray<MaskedRecord>,
  modelConfig: ModelConfig,
  where: { readonly tokenizer: string; readonly node: string },
) =>
  Effect.gen(function* () {
    const maxId = Math.max(...rows.map((r) => Math.max(...r.input_ids)));
    if (maxId >= modelConfig.vocabSize) {
      return yield* new TokenizerMismatch({
        path: where.tokenizer,
        reason: `token id ${maxId} does not fit the model's vocabulary of ${modelConfig.vocabSize}`,
      });
    }
    const longest = Math.max(...rows.map((r) => r.input_ids.length));
    if (longest > contextLength(modelConfig)) {
      return yield* new InvalidConfig({
        where: where.node,
        reason: `a sequence of ${longest} tokens exceeds the ${
          contextLength(modelConfig)
        } positions the model computes exactly`,
      });
    }
  });

/**
 * The optimisation itself: from `state` to `config.steps`, one optimizer step per batch (the batch a pure
 * function of seed and step), a checkpoint every `checkpointEvery` steps. Returns the final state.
 */
const trainingLoop = (
  config: TrainConfig,
  data: ReadonlyArray<Sequence>,
  model: { readonly modelConfig: ModelConfig; readonly params: Params; readonly optimizer: AdamW },
  start: { readonly state: TrainState; readonly lastCheckpoint: string },
  ctx: StepContext,
) =>
  Effect.gen(function* () {
    const { modelConfig, params, optimizer } = model;
    let { state, lastCheckpoint } = start;
    const padId = 0;
    const progress = ctx.reporter.progress(`[${ctx.node}]`);
    const started = performance.now() - state.seconds * 1000;
    let windowStart = performance.now();
    let windowTokens = 0;
    while (state.step < config.steps) {
      const batch = batchIndices(data.length, config.batchSize, state.step, config.seed).map((i) => data[i]);
      const lr = lrAt(state.step, {
        lr: config.lr,
        warmupSteps: config.warmupSteps,
        totalSteps: config.steps,
        minLrRatio: config.minLrRatio,
      });
      const result = optimizerStep(
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
    return state;
  });

/** The `train` step: token-weighted SFT with AdamW, warm-up + cosine, clipping, accumulation and checkpoints. */
export const trainStep: Step<typeof TrainConfig.Type, "data" | "init" | "tokenizer", ToolkitError> =
  defineStep({
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
        const { modelConfig, params, resumed } = yield* startingPoint(config, inputs.init, ctx);
        yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
        yield* checkDataFits(rows, modelConfig, {
          tokenizer: inputs.tokenizer ?? inputs.data!,
          node: ctx.node,
        });

        const optimizer = new AdamW(params, { weightDecay: config.weightDecay });
        let start = { state: { step: 0, log: [], seconds: 0 } as TrainState, lastCheckpoint: "(none yet)" };
        if (resumed) {
          optimizer.importState(resumed.optimizer);
          start = { state: resumed.state, lastCheckpoint: resumed.path };
          ctx.reporter.log(`[${ctx.node}] resuming at optimizer step ${resumed.state.step}/${config.steps}`);
        }
        const state = yield* trainingLoop(config, data, { modelConfig, params, optimizer }, start, ctx);
        yield* writeOutputs(config, { modelConfig, params }, state, data.length, inputs, ctx);
        yield* Effect.promise(() => removeIfExists(checkpointDir(ctx.dir)));
        return { resumed: resumed !== undefined };
      }),
  });

/** The artifact: model/ as a Hugging Face checkpoint, the loss log, a summary, and the run's meta facts. */
const writeOutputs = (
  config: TrainConfig,
  model: { readonly modelConfig: ModelConfig; readonly params: Params },
  state: TrainState,
  examples: number,
  inputs: { readonly init?: string; readonly tokenizer?: string },
  ctx: StepContext,
) =>
  Effect.gen(function* () {
    // A model fine-tuned from a Hugging Face checkpoint keeps that checkpoint's other config.json fields
    // (eos_token_id, ...) and side files (generation_config.json, tokenizer files).
    const initDir = inputs.init ? yield* Effect.promise(() => modelDirOf(inputs.init!)) : undefined;
    const baseConfig = initDir
      ? (yield* readJson(`${initDir}/config.json`).pipe(Effect.orElseSucceed(() => undefined))) as
        | Record<string, unknown>
        | undefined
      : undefined;
    yield* saveCheckpoint(`${ctx.dir}/model`, model.modelConfig, model.params, {}, {
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
          examples,
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
