/**
 * The method context: what a method sees (where to add nodes, the prepared data, seed and budget), and
 * the training and evaluation nodes methods are built from. A method file (sftkey.ts, sft.ts, ...) only
 * says which masks it trains on, in which order, from which checkpoint.
 */
import type { MaskSpec } from "../src/data/masks.ts";
import type { NodeRef, PipelineBuilder } from "../src/engine/pipeline.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { type EvaluateConfig, evaluateStep } from "../src/steps/evaluate.ts";
import { type TrainConfig, trainStep } from "../src/steps/train.ts";
import { type Budget, budget, describeBudget } from "./budget.ts";
import { type Data, locatorOf, tinyModel, tokenizerVocabSize } from "./data.ts";

/** The answer-judging fields of the evaluate, sampleResponses, criticalTokens and s3ftSelect configs. */
export type AnswerJudging = Pick<EvaluateConfig, "format" | "locator" | "maxNewTokens">;

/**
 * What every step that judges a generated answer needs: the format, the locator, and how many tokens to
 * generate. Spread into the configs of evaluate, sampleResponses, criticalTokens and s3ftSelect.
 */
export const answerJudging = (ctx: MethodContext): AnswerJudging => ({
  format: ctx.data.options.format,
  ...locatorOf(ctx.data.options),
  maxNewTokens: ctx.data.options.maxNewTokens,
});

/**
 * What a method sees: where to add nodes, the prepared data, its seed and budget, and how to name its
 * nodes (a comparison runs many methods x seeds x datasets in one pipeline, so names get a prefix).
 */
export interface MethodContext {
  /** Where the method adds its nodes. */
  readonly p: PipelineBuilder;
  /** The prepared data. */
  readonly data: Data;
  /** Seed of its training runs. */
  readonly seed: number;
  /** Its optimisation budget. */
  readonly budget: Budget;
  /** The node name for a local name (adds the comparison's prefix). */
  readonly name: (local: string) => string;
}

/**
 * A model a method trained that is not judged like the others: its own tokenizer (e.g. one grown by
 * functional tokens) and answer judging (e.g. the `<output>` segment of a functional-token trace, and a
 * longer generation budget).
 */
export interface OwnEvaluation {
  /** The checkpoint node. */
  readonly model: NodeRef;
  /** The tokenizer that goes with it. */
  readonly tokenizer: NodeRef;
  /** What differs from the data's answer judging. */
  readonly judging: Partial<AnswerJudging>;
}

/** What a method returns for each label: a checkpoint node, judged like the data, or one with its own evaluation. */
export type MethodModel = NodeRef | OwnEvaluation;

/** The checkpoint node of a method's model. */
export const modelNode = (m: MethodModel): NodeRef => ("model" in m ? m.model : m);

/** A method adds its training nodes and returns the models to evaluate, by label. */
export type Method = (ctx: MethodContext) => Readonly<Record<string, MethodModel>>;

/** The context for methods on `data` with `seed`, naming nodes `<prefix><local>`. */
export const methodContext = (
  p: PipelineBuilder,
  data: Data,
  seed = data.options.seed,
  prefix = "",
): MethodContext => ({
  p,
  data,
  seed,
  budget: budget(data),
  name: (local) => `${prefix}${local}`,
});

/** The from-scratch model of a method context: sized by its tokenizer, --max-length and --max-new-tokens. */
const scratchModel = (ctx: MethodContext): ModelConfig =>
  tinyModel(
    tokenizerVocabSize(ctx.data.options.tokenizer),
    ctx.data.options.maxLength + ctx.data.options.maxNewTokens,
  );

/** Where a training node starts: a checkpoint (none: a fresh model) and a LoRA adapter on it. */
interface Start {
  readonly init?: NodeRef;
  readonly adapter?: NodeRef;
}

/** The `init` each LoRA training node of a pipeline started from: the base its adapter/ is on. */
const adapterBases = new WeakMap<PipelineBuilder, Map<string, NodeRef | undefined>>();

/**
 * Where a node asked to start from `from` starts. From the pipeline's base: the base, with the user's
 * --adapter if any. From an earlier LoRA training node under --lora with `loraStageTwo` "continue": that
 * node's own base with its adapter (trained further). Otherwise (full fine-tuning, "new", a node that is no
 * LoRA training node): `from`'s model, merged.
 */
const startOf = (ctx: MethodContext, from: NodeRef | undefined, lora: boolean): Start => {
  const { base, adapter } = ctx.data;
  if (from !== undefined && base !== undefined && from.node === base.node) {
    return adapter ? { init: from, adapter } : { init: from };
  }
  const bases = adapterBases.get(ctx.p);
  if (from !== undefined && lora && ctx.data.options.loraStageTwo === "continue" && bases?.has(from.node)) {
    return { init: bases.get(from.node), adapter: from };
  }
  return { init: from };
};

/**
 * Trains on `data`, a node whose output is a masked.jsonl (a mask over the training set, or one a method's
 * own step built: self-generated responses, critical-token weights, ...), from `init` (a checkpoint node:
 * the base or an earlier stage, see startOf) or from a fresh tiny model.
 */
export const trainOn = (
  ctx: MethodContext,
  local: string,
  data: NodeRef,
  init: NodeRef | undefined,
  config: Omit<TrainConfig, "seed" | "model">,
): NodeRef => {
  const start = startOf(ctx, init, config.lora !== undefined);
  const node = ctx.p.add(ctx.name(local), trainStep, {
    ...config,
    seed: ctx.seed,
    model: start.init ? undefined : scratchModel(ctx),
  }, {
    data,
    init: start.init,
    tokenizer: ctx.data.tokenizer,
    ...(start.adapter ? { adapter: start.adapter } : {}),
  });
  if (config.lora) {
    if (!adapterBases.has(ctx.p)) adapterBases.set(ctx.p, new Map());
    adapterBases.get(ctx.p)!.set(node.node, start.init);
  }
  return node;
};

/** Trains on `mask` over the training set: `trainOn` the mask's node. */
export const train = (
  ctx: MethodContext,
  local: string,
  mask: MaskSpec,
  init: NodeRef | undefined,
  config: Omit<TrainConfig, "seed" | "model">,
): NodeRef => trainOn(ctx, local, ctx.data.masks(mask), init, config);

/**
 * Plain SFT on every response token for `stageOneSteps`, from the base model: SFTKey's stage one. Methods
 * that fine-tune a model which can already answer (and generate from it) start here; the node has exactly
 * the config and inputs of SFTKey's stage one, so the content-addressed cache trains it once for all.
 */
export const responseStage = (ctx: MethodContext, local: string): NodeRef =>
  train(ctx, local, { kind: "response" }, ctx.data.base, {
    ...ctx.budget.train,
    steps: ctx.budget.stageOneSteps,
  });

const made = new WeakMap<PipelineBuilder, Map<string, unknown>>();

/**
 * The nodes `make` adds, added once per pipeline and node name (`ctx.name(local)`): for nodes that several
 * of a context's methods start from (a shared warm-up), since a name may be added to a pipeline only once.
 */
export const once = <T>(ctx: MethodContext, local: string, make: () => T): T => {
  const key = ctx.name(local);
  const known = made.get(ctx.p) ?? new Map<string, unknown>();
  made.set(ctx.p, known);
  if (!known.has(key)) known.set(key, make());
  return known.get(key) as T;
};

/**
 * Generation-based evaluation of `model` on the test set; the node is named eval-<label>. The base is
 * evaluated with the user's --adapter merged into it, as training starts from it.
 */
export const evaluate = (ctx: MethodContext, label: string, model: MethodModel): NodeRef =>
  ctx.p.add(ctx.name(`eval-${label}`), evaluateStep, {
    ...answerJudging(ctx),
    ...("model" in model ? model.judging : {}),
    batchSize: 50,
  }, {
    model: modelNode(model),
    data: ctx.data.testSet,
    tokenizer: "model" in model ? model.tokenizer : ctx.data.tokenizer,
    ...(ctx.data.adapter && modelNode(model).node === ctx.data.base?.node
      ? { adapter: ctx.data.adapter }
      : {}),
  });

/**
 * Puts which budget applied, and why, into the pipeline's settings (header and summary.json); under
 * --lora also the adapter's settings and how second stages start.
 */
export const recordBudget = (p: PipelineBuilder, ctx: Pick<MethodContext, "budget" | "data">): void => {
  p.setting("budget", describeBudget(ctx.budget));
  const lora = ctx.budget.train.lora;
  if (lora) {
    const { loraStageTwo } = ctx.data.options;
    p.setting(
      "lora",
      `r ${lora.r}, alpha ${lora.alpha}${lora.useRslora ? " (rsLoRA)" : ""}, dropout ${lora.dropout}, ` +
        `targets ${lora.targets?.join(",") ?? "every block projection"}${
          ctx.data.adapter ? `, starting from --adapter ${ctx.data.options.adapter}` : ""
        }; second stages ${
          loraStageTwo === "continue"
            ? "continue the first stage's adapter"
            : "train a new adapter on the first stage's merged model"
        }`,
    );
  }
};

/** Runs each method once and evaluates every model it returns. */
export const runMethods = (p: PipelineBuilder, data: Data, methods: ReadonlyArray<Method>): void => {
  const ctx = methodContext(p, data);
  recordBudget(p, ctx);
  for (const method of methods) {
    for (const [label, model] of Object.entries(method(ctx))) evaluate(ctx, label, model);
  }
};
