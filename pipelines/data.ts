/**
 * Data preparation every method shares: the options a user can swap, the defaults for the embedded
 * fixtures, and the nodes that locate the key, tokenise, and build masks over the training set.
 */
import type { DataFormat } from "../src/data/formats.ts";
import type { LocatorSpec } from "../src/data/locate.ts";
import type { MaskSpec } from "../src/data/masks.ts";
import type { NodeRef, PipelineBuilder } from "../src/engine/pipeline.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { takeRowsStep } from "../src/steps/take_rows.ts";
import { heldOutCount, holdOutStep } from "../src/steps/hold_out.ts";
import { generationLocatorProblem } from "../src/data/formats.ts";
import { InvalidConfig } from "../src/errors.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { TOKENIZER_COMPANIONS, tokenizerVocabSizeSync } from "../src/data/tokenizer.ts";
import { FileUnreadable } from "../src/errors.ts";
import { countNonBlankLinesSync } from "../src/io/lines.ts";
import type { BudgetOverrides } from "./budget.ts";

/** A path inside the embedded fixtures/ directory. */
export const fixture = (path: string): string => new URL(`../fixtures/${path}`, import.meta.url).pathname;

/** What a user can swap from the command line without writing code. */
export interface PipelineOptions {
  /** Training data (JSONL); default the embedded arithmetic fixture. */
  readonly train?: string;
  /** Test data (JSONL); default the fixture's test set, or `train` when only that is given. */
  readonly test?: string;
  /** The rows' format (default "tags"). */
  readonly format?: DataFormat;
  /** How to find the key in gold responses and in generations; defaults to the format's locator. */
  readonly locator?: LocatorSpec;
  /** Longest prompt + response in tokens (default 128, sized for the fixtures); longer keys fail the step. */
  readonly maxLength?: number;
  /** Tokens generated per test prompt in evaluation and in the methods that sample (default 64). */
  readonly maxNewTokens?: number;
  /** Rows whose key is not found: "fail" (default) or "drop" (counted and listed in the reports). */
  readonly onMissingKey?: "drop" | "fail";
  /** Rows whose key maxLength cuts off: "fail" (default) or "drop". */
  readonly onTruncatedKey?: "drop" | "fail";
  /**
   * Without `test`: evaluate on the training rows instead of rows held out of them. Only for runs that
   * ask for it: training rows measure memorisation, not accuracy.
   */
  readonly evalOnTrain?: boolean;
  /** A tokenizer.json or tokenizer directory; default the fixture's. */
  readonly tokenizer?: string;
  /**
   * A Hugging Face checkpoint directory to start from (fine-tuning defaults, budget.ts); without it a tiny
   * model is initialised (from-scratch defaults).
   */
  readonly model?: string;
  /**
   * A LoRA adapter (PEFT layout) on `model`, part of the starting point: every training node that starts
   * from `model` starts from it with this adapter (continued under --lora, merged otherwise), and the
   * comparison's "base" row evaluates it merged.
   */
  readonly adapter?: string;
  /**
   * Under --lora, how a training node that starts from another one (SFTKey's stage two, every method's
   * second stage) starts: "continue" (default) trains the earlier node's adapter further, on the earlier
   * node's own base; "new" trains a new adapter on the earlier node's merged model.
   */
  readonly loraStageTwo?: LoraStageTwo;
  /** Seed of initialisation, data order and sampling (default 0). */
  readonly seed?: number;
  /** A smaller budget, for tests and smoke runs. */
  readonly quick?: boolean;
  /** Use only the first rows of the training / test set (smoke runs of the comparison, tests). */
  readonly limit?: { readonly train?: number; readonly test?: number };
  /** Replaces parts of the optimisation budget (tests, sweeps). */
  readonly budget?: BudgetOverrides;
}

/** How a later training stage starts under --lora (PipelineOptions.loraStageTwo). */
export type LoraStageTwo = "continue" | "new";
export const LORA_STAGE_TWO: ReadonlyArray<LoraStageTwo> = ["continue", "new"];
export const DEFAULT_LORA_STAGE_TWO: LoraStageTwo = "continue";

/** The nodes `prepareData` added, and the options with their defaults filled in. */
export interface Data {
  /** The tokenizer source. */
  readonly tokenizer: NodeRef;
  /** The located training examples (located.jsonl: prompts, responses, gold answers), before --limit. */
  readonly trainExamples: NodeRef;
  /** The tokenised training set (tokens.jsonl). */
  readonly trainTokens: NodeRef;
  /** The test set with key masks: prompts for generation, key tokens for the key loss. */
  readonly testSet: NodeRef;
  /** The starting checkpoint, when the user gave one. */
  readonly base?: NodeRef;
  /** A LoRA adapter on `base` that the start carries (PipelineOptions.adapter). */
  readonly adapter?: NodeRef;
  /** Rows of the training set (after --limit), counted when fine-tuning: its budget is in epochs. */
  readonly trainRows?: number;
  /** Masks over the training set; the same spec gives the same node, so methods share it. */
  readonly masks: (spec: MaskSpec) => NodeRef;
  /** The options the data was prepared with, defaults filled in. */
  readonly options:
    & Required<Omit<PipelineOptions, "model" | "adapter" | "quick" | "budget" | "limit" | "locator">>
    & {
      model?: string;
      adapter?: string;
      locator?: LocatorSpec;
      quick: boolean;
      budget: NonNullable<PipelineOptions["budget"]>;
    };
}

export const DEFAULT_MAX_LENGTH = 128;
export const DEFAULT_MAX_NEW_TOKENS = 64;

/**
 * The tiny Llama the fixtures train from scratch (vocabulary size comes from the tokenizer). Its positions
 * cover the longest training sequence plus what evaluation generates after a prompt; RoPE has no learned
 * positions, so this sizes the generation budget, not the weights.
 */
export const tinyModel = (
  vocabSize: number,
  positions = DEFAULT_MAX_LENGTH + DEFAULT_MAX_NEW_TOKENS,
): ModelConfig => ({
  architecture: "llama",
  vocabSize,
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 176,
  maxPositions: positions,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: false,
});

/**
 * Size of a tokenizer's vocabulary, added tokens included (for initialising a model from scratch): a
 * tokenizer.json, or a directory with one or with vocab.json + merges.txt.
 *
 * Synchronous on purpose (with countRows, the only places building a pipeline touches the disk): pipeline factories are
 * plain functions (PipelineOptions => Pipeline), and a from-scratch model's config, which is part of its
 * train node's cache key, needs the vocabulary size while the graph is built.
 */
export const tokenizerVocabSize = (path: string): number => tokenizerVocabSizeSync(path);

/**
 * Non-empty lines of a JSONL file, read synchronously while the graph is built (like tokenizerVocabSize):
 * a fine-tuning budget in epochs becomes optimizer steps in the train nodes' configs, so it needs the row
 * count then. A row the key locator later rejects fails its step, so lines and rows agree.
 */
export const countRows = (path: string): number => {
  try {
    return countNonBlankLinesSync(path);
  } catch (e) {
    throw new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) });
  }
};

/**
 * The locator entry of a step config: absent unless the user chose one, so that configs (and cache keys)
 * of runs with the format's default locator stay as they were.
 */
export const locatorOf = (options: { locator?: LocatorSpec }): { locator?: LocatorSpec } =>
  options.locator ? { locator: options.locator } : {};

/** The prompt template: the question, then the response on the next line. */
export const TEMPLATE = "{prompt}\n";

/**
 * Without --test, the test rows are held out of --data: this share of its rows, at most HELD_OUT_MAX, drawn
 * with seed HELD_OUT_SEED whatever the training seed, so that runs with several seeds score the same rows.
 */
export const HELD_OUT_FRACTION = 0.1;
export const HELD_OUT_MAX = 500;
export const HELD_OUT_SEED = 0;

/** `prefix` names the nodes (e.g. "gsm8k/"), so that one pipeline can prepare several datasets. */
export const prepareData = (p: PipelineBuilder, opts: PipelineOptions, prefix = ""): Data => {
  const options = {
    train: opts.train ?? fixture("arith/train.jsonl"),
    test: opts.test ?? opts.train ?? fixture("arith/test.jsonl"),
    format: opts.format ?? "tags",
    locator: opts.locator,
    maxLength: opts.maxLength ?? DEFAULT_MAX_LENGTH,
    maxNewTokens: opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
    onMissingKey: opts.onMissingKey ?? "fail",
    onTruncatedKey: opts.onTruncatedKey ?? "fail",
    evalOnTrain: opts.evalOnTrain ?? false,
    tokenizer: opts.tokenizer ?? fixture("arith/tokenizer.json"),
    seed: opts.seed ?? 0,
    model: opts.model,
    adapter: opts.adapter,
    loraStageTwo: opts.loraStageTwo ?? DEFAULT_LORA_STAGE_TWO,
    quick: opts.quick ?? false,
    budget: opts.budget ?? {},
  };
  const problem = generationLocatorProblem(options.format, options.locator);
  if (problem) throw new InvalidConfig({ where: "--locator", reason: problem });
  if (options.adapter !== undefined && options.model === undefined) {
    throw new InvalidConfig({
      where: "--adapter",
      reason: "needs --model, the base the adapter was trained on",
    });
  }
  if (!LORA_STAGE_TWO.includes(options.loraStageTwo)) {
    throw new InvalidConfig({
      where: "--lora-stage-two",
      reason: `must be ${LORA_STAGE_TWO.join(" or ")}, got ${JSON.stringify(options.loraStageTwo)}`,
    });
  }
  const tokenizer = p.source(`${prefix}tokenizer`, options.tokenizer, { companions: TOKENIZER_COMPANIONS });
  const keys = (split: string, path: string) =>
    p.add(`${prefix}${split}-keys`, locateKeyStep, {
      format: options.format,
      ...locatorOf(options),
      onMissingKey: options.onMissingKey,
    }, { data: p.source(`${prefix}${split}-data`, path) });
  const tokens = (split: string, examples: NodeRef) =>
    p.add(`${prefix}${split}-tokens`, tokeniseStep, {
      template: TEMPLATE,
      maxLength: options.maxLength,
      onTruncatedKey: options.onTruncatedKey,
    }, { examples, tokenizer });
  const first = (split: string, of: NodeRef, n: number | undefined) =>
    n === undefined ? of : p.add(`${prefix}${split}-first${n}`, takeRowsStep, { n, file: "tokens.jsonl" }, {
      from: of,
    });
  // --data without --test: a seeded held-out split of --data, unless --eval-on-train asks for its rows.
  // Each split is prepared to the end before the next starts, so that a bad test file leaves the
  // training data's steps finished and cached.
  const holdOut = opts.train !== undefined && opts.test === undefined && !options.evalOnTrain;
  const all = holdOut ? keys("train", options.train) : undefined;
  const split = { fraction: HELD_OUT_FRACTION, max: HELD_OUT_MAX, seed: HELD_OUT_SEED };
  const examples = (part: "train" | "test", path: string) =>
    all
      ? p.add(`${prefix}${part}-split`, holdOutStep, { part, ...split }, { examples: all })
      : keys(part, path);
  const trainExamples = examples("train", options.train);
  const trainTokens = first("train", tokens("train", trainExamples), opts.limit?.train);
  const testTokens = first("test", tokens("test", examples("test", options.test)), opts.limit?.test);
  const testSet = p.add(`${prefix}test-set`, buildMasksStep, { mask: { kind: "key" } }, {
    tokens: testTokens,
  });
  const base = options.model ? p.source(`${prefix}base-model`, options.model) : undefined;
  const adapter = options.adapter ? p.source(`${prefix}base-adapter`, options.adapter) : undefined;
  const made = new Map<string, NodeRef>();
  const masks = (spec: MaskSpec) => {
    const name = `${prefix}mask-${maskName(spec)}`;
    if (!made.has(name)) made.set(name, p.add(name, buildMasksStep, { mask: spec }, { tokens: trainTokens }));
    return made.get(name)!;
  };
  // A from-scratch model is sized by the tokenizer while the graph is built, which checks it; a checkpoint
  // is not, so a missing or broken --tokenizer is checked here, to be reported before any step runs.
  if (base) tokenizerVocabSize(options.tokenizer);
  // Only fine-tuning budgets need the count; a from-scratch pipeline does not read the data at build time.
  // With a held-out split, training sees the file's rows less the held-out ones (counting the file alone
  // over-counted the epochs by the held-out share).
  const fileRows = base ? countRows(options.train) : 0;
  const trainRows = base
    ? Math.min(
      fileRows - (holdOut ? heldOutCount(fileRows, split) : 0),
      opts.limit?.train ?? Number.POSITIVE_INFINITY,
    )
    : undefined;
  return { tokenizer, trainExamples, trainTokens, testSet, base, adapter, trainRows, masks, options };
};

const maskName = (spec: MaskSpec): string => {
  switch (spec.kind) {
    case "prefix":
      return `prefix${spec.k}`;
    case "mix":
      return `mix-${spec.parts.map((p) => `${p.weight}${maskName(p.mask)}`).join("-")}`;
    default:
      return spec.kind;
  }
};
