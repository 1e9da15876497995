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
 * With `lora` (src/model/lora.ts) the base weights are frozen and only a LoRA adapter is trained: its
 * checkpoints hold the adapter (PEFT layout) and the adapter's AdamW moments, the base being rebuilt from
 * `init` (or the seeded fresh model) on resume, so a resumed LoRA run is exact too. It writes adapter/
 * (PEFT layout) besides model/, which is then the merged checkpoint (W + scaling B A), so every later
 * step (a stage two, evaluation, sampling) reads model/ unchanged.
 *
 * The optional `adapter` input (a train artifact's adapter/, or a PEFT adapter directory) is part of the
 * starting point: the base (`init`, or the seeded fresh model) with that adapter. With `lora` training
 * continues that adapter (its r, alpha, rsLoRA and modules must be the config's; its values are the
 * start, the AdamW moments start at zero), and adapter/ keeps `init` as base_model_name_or_path: this is
 * how a stage two continues stage one's adapter (pipelines/method_context.ts). Without `lora` the adapter
 * is merged into the base and every weight trains. A stage two whose `init` is stage one (no `adapter`)
 * trains a NEW adapter on stage one's merged model instead.
 *
 * Output: model/ (a Hugging Face checkpoint: config.json, model.safetensors, tokenizer files),
 * train_log.jsonl (loss, lr, gradient norm, tokens per step), train_summary.json, and train.meta.json
 * (wall time, backend: run facts, excluded from the content digest).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { InvalidConfig, NonFiniteLoss, TokenizerMismatch, type ToolkitError } from "../errors.ts";
import { readTrainingRows } from "../data/records.ts";
import { removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step, type StepContext } from "../engine/step.ts";
import { adapterDirOf, copyTokenizerFiles, modelDirOf, saveTrainedModel } from "./shared.ts";
import { contextLength, ModelConfig, type ModelConfigEncoded } from "../model/config.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { disposeParams, initParams, type Params, paramShapes } from "../model/model.ts";
import {
  attachFreshAdapter,
  defaultTargets,
  loraOf,
  loraScaling,
  LoraSettings,
  mergeAdapter,
  targetModules,
  trainableParams,
  withLoraDropout,
} from "../model/lora.ts";
import { loadAdapter, saveAdapter } from "../model/peft.ts";
import { checkpointDir, loadRunCheckpoint, saveRunCheckpoint } from "../train/run_checkpoint.ts";
import { AdamW } from "../train/adamw.ts";
import { batchIndices, microBatches, type Sequence, sequenceExtent } from "../train/batches.ts";
import { Rng } from "../util/rng.ts";
import { Objective } from "../train/objectives.ts";
import { lrAt } from "../train/schedule.ts";
import { optimizerStepAsync } from "../train/step.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());
const NonNegative = Schema.Number.pipe(Schema.nonNegative(), Schema.finite());

/** Decoder of the step's config; the fields are documented on the interface `TrainConfig`. */
export const TrainConfig: Schema.Schema<
  TrainConfig,
  Omit<TrainConfig, "model"> & { readonly model?: ModelConfigEncoded }
> = Schema.Struct({
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
  /**
   * Train a LoRA adapter instead of every weight (src/model/lora.ts). Absent means full fine-tuning, and
   * it is left out of the encoded config then, so earlier cache keys stay valid.
   */
  lora: Schema.optional(LoraSettings),
});

/**
 * The `train` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface TrainConfig {
  /** Optimizer steps. */
  readonly steps: number;
  /** Sequences per optimizer step. */
  readonly batchSize: number;
  /** Sequences per forward/backward pass; batchSize / microBatchSize passes are accumulated. */
  readonly microBatchSize: number;
  /** Peak learning rate, reached after `warmupSteps` of linear warm-up, then cosine decay. */
  readonly lr: number;
  /** Steps of linear warm-up. */
  readonly warmupSteps: number;
  /** The cosine ends at lr * minLrRatio. */
  readonly minLrRatio: number;
  /** AdamW's decoupled weight decay. */
  readonly weightDecay: number;
  /** Global gradient-norm clipping threshold. */
  readonly clipNorm: number;
  /** Optimizer steps between checkpoints (an interrupted run resumes from the last one). */
  readonly checkpointEvery: number;
  /** Seed of initialisation and data order. */
  readonly seed: number;
  /** Architecture of a model trained from scratch; required when `init` is not connected. */
  readonly model?: ModelConfig;
  /** The per-token objective (src/train/objectives.ts); absent means "ce". */
  readonly objective?: "ce" | "dft" | "tv" | "chi2" | "hellinger" | "js";
  /** Train a LoRA adapter instead of every weight; absent means full fine-tuning. */
  readonly lora?: LoraSettings;
}

interface LogRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
}

/** Only the fields TrainState has: older checkpoints also carry `cursor` and `rng`, dropped here. */
const parseTrainState = (json: unknown): TrainState => {
  const { step, log, seconds } = json as TrainState;
  return { step, log, seconds };
};

interface TrainState {
  /**
   * Optimizer steps completed; with the seed it fixes the next batch (train/batches.ts). Checkpoints
   * written before this comment also hold `cursor` and `rng` fields: they were never read and are ignored.
   */
  readonly step: number;
  readonly log: LogRow[];
  readonly seconds: number;
}

/** The model training starts from before any adapter: the init checkpoint, else a fresh seeded model. */
const baseModel = (config: TrainConfig, init: string | undefined, ctx: StepContext) =>
  Effect.gen(function* () {
    if (init) {
      const loaded = yield* loadCheckpoint(yield* Effect.promise(() => modelDirOf(init)));
      return { config: loaded.config, params: loaded.params };
    }
    if (config.model) {
      return { config: config.model, params: initParams(config.model, Rng.seeded(config.seed)) };
    }
    return yield* new InvalidConfig({
      where: `${ctx.node}.config.model`,
      reason: "no starting checkpoint is connected, so a model architecture is required",
    });
  });

/**
 * Attaches the adapter in `dir` to `base` (mutated): to train further under `lora`, whose settings it
 * must have, else merged into the base. With `lora` the adapter's dropout is the config's.
 */
const startAdapter = (
  dir: string,
  base: { readonly config: ModelConfig; readonly params: Params },
  lora: LoraSettings | undefined,
  ctx: StepContext,
) =>
  Effect.gen(function* () {
    const { adapter } = yield* loadAdapter(dir, base.config, base.params, lora?.dropout);
    if (!lora) {
      mergeAdapter(base.params, base.config);
      return;
    }
    const modules = (list: ReadonlyArray<{ readonly module: string }>) => list.map((m) => m.module).join(",");
    const wanted = modules(
      targetModules(base.config, paramShapes(base.config), lora.targets ?? defaultTargets(base.config)),
    );
    const has = loraOf(base.params)!;
    const differs = adapter.settings.r !== lora.r
      ? `r ${adapter.settings.r}, the config ${lora.r}`
      : loraScaling(adapter.settings) !== loraScaling(lora)
      ? `scaling ${loraScaling(adapter.settings)} (lora_alpha ${adapter.settings.alpha}${
        adapter.settings.useRslora ? ", rsLoRA" : ""
      }), the config ${loraScaling(lora)} (alpha ${lora.alpha}${lora.useRslora ? ", rsLoRA" : ""})`
      : modules(has.modules) !== wanted
      ? `${has.modules.length} adapted modules, the config's targets select ${wanted.split(",").length}`
      : undefined;
    if (differs) {
      return yield* new InvalidConfig({
        where: `${ctx.node}.config.lora`,
        reason: `the adapter to continue (${dir}) has ${differs}`,
      });
    }
  });

/**
 * Where training starts: a resumed checkpoint, else the init checkpoint, else a fresh model; then the
 * `adapter` input if connected (startAdapter); else, with `lora`, a fresh adapter (PEFT's init, drawn
 * from seed + 1 so that it differs from the fresh model's draw). A resumed LoRA run rebuilds the base from
 * init (or fresh) and attaches the checkpoint's adapter.
 */
const startingPoint = (
  config: TrainConfig,
  inputs: { readonly init?: string; readonly adapter?: string },
  ctx: StepContext,
) =>
  Effect.gen(function* () {
    const { init } = inputs;
    const lora = config.lora;
    const log = (line: string) => ctx.reporter.log(`[${ctx.node}] ${line}`);
    const resumed = !ctx.resumed
      ? undefined
      : lora
      ? yield* loadRunCheckpoint(ctx.dir, log, (path) =>
        Effect.gen(function* () {
          const base = yield* baseModel(config, init, ctx);
          return yield* loadAdapter(path, base.config, base.params).pipe(
            Effect.map(({ params }) => ({ config: base.config, params })),
            Effect.tapError(() => Effect.sync(() => disposeParams(base.params))),
          );
        }), parseTrainState)
      : yield* loadRunCheckpoint(ctx.dir, log, loadCheckpoint, parseTrainState);
    if (resumed) return { modelConfig: resumed.config, params: resumed.params, resumed };
    const base = yield* baseModel(config, init, ctx);
    if (inputs.adapter) {
      const dir = yield* Effect.promise(() => adapterDirOf(inputs.adapter!));
      yield* startAdapter(dir, base, lora, ctx).pipe(
        Effect.tapError(() => Effect.sync(() => disposeParams(base.params))),
      );
    } else if (lora) {
      attachFreshAdapter(
        base.params,
        base.config,
        paramShapes(base.config),
        lora,
        Rng.seeded(config.seed + 1),
      );
    }
    return { modelConfig: base.config, params: base.params, resumed };
  });

/** Every row's token ids fit the model's vocabulary and its exactly computed context. */
const checkDataFits = (
  rows: ReadonlyArray<Sequence>,
  modelConfig: ModelConfig,
  where: { readonly tokenizer: string; readonly node: string },
) =>
  Effect.gen(function* () {
    // A loop, not Math.max(...rows): a spread of a few hundred thousand arguments overflows the stack.
    const { maxId, longest } = sequenceExtent(rows);
    if (maxId >= modelConfig.vocabSize) {
      return yield* new TokenizerMismatch({
        path: where.tokenizer,
        reason: `token id ${maxId} does not fit the model's vocabulary of ${modelConfig.vocabSize}`,
      });
    }
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
      // LoRA dropout masks are a function of (seed, step), like the batch: resume stays exact.
      const dropoutRng = config.lora && config.lora.dropout > 0
        ? Rng.seeded(((config.seed >>> 0) ^ Math.imul(state.step + 1, 0x9e3779b1)) >>> 0)
        : undefined;
      // Asynchronous so that it also runs on webgpu (src/backend/webgpu.ts); the same step elsewhere.
      const result = yield* Effect.promise(() =>
        optimizerStepAsync(
          params,
          modelConfig,
          optimizer,
          microBatches(batch, config.microBatchSize, padId),
          {
            lr,
            clipNorm: config.clipNorm,
            objective: config.objective,
          },
          (f) => withLoraDropout(dropoutRng, f),
        )
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
        lastCheckpoint = yield* saveRunCheckpoint(
          ctx.dir,
          modelConfig,
          params,
          optimizer,
          state,
          config.lora,
        );
      }
    }
    progress.finish();
    return state;
  });

/**
 * The `train` step's inputs: the masked data, the starting checkpoint (`init`), the tokenizer, and a LoRA
 * adapter the start carries (`adapter`, see the file comment); unconnected, a node's key is what it was
 * before the input existed.
 */
export type TrainInput = "data" | "init" | "tokenizer" | "adapter";

/** The `train` step: token-weighted SFT with AdamW, warm-up + cosine, clipping, accumulation and checkpoints. */
export const trainStep: Step<typeof TrainConfig.Type, TrainInput, ToolkitError> = defineStep({
  name: "train",
  version: 1,
  description: "token-weighted SFT with AdamW, warm-up + cosine, clipping, accumulation and checkpoints",
  config: TrainConfig,
  inputs: ["data", "init", "tokenizer", "adapter"] as const,
  optionalInputs: ["init", "tokenizer", "adapter"] as const,
  resumable: true,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      // Streamed: masked.jsonl may be larger than one string can hold.
      const data: Sequence[] = yield* readTrainingRows(`${inputs.data}/masked.jsonl`);
      const { modelConfig, params, resumed } = yield* startingPoint(config, inputs, ctx);
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
      yield* checkDataFits(data, modelConfig, {
        tokenizer: inputs.tokenizer ?? inputs.data!,
        node: ctx.node,
      });

      // With LoRA only the adapter is trainable: no moments for the frozen base weights.
      const optimizer = new AdamW(trainableParams(params), { weightDecay: config.weightDecay });
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
    const initDir = inputs.init ? yield* Effect.promise(() => modelDirOf(inputs.init!)) : undefined;
    if (config.lora) {
      const lora = config.lora;
      yield* saveAdapter(
        `${ctx.dir}/adapter`,
        model.modelConfig,
        model.params,
        lora,
        lora.targets ?? defaultTargets(model.modelConfig),
        initDir ?? "(a fresh model drawn from the train step's seed)",
      );
      if (inputs.tokenizer) yield* copyTokenizerFiles(inputs.tokenizer, `${ctx.dir}/adapter`);
      mergeAdapter(model.params, model.modelConfig);
    }
    yield* saveTrainedModel(`${ctx.dir}/model`, model.modelConfig, model.params, initDir, inputs.tokenizer);
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
          ...(config.lora ? { lora: config.lora } : {}),
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
