/**
 * Evaluation of any checkpoint (`deno task eval`): the data preparation of a pipeline's test set (locate
 * the key, tokenise, key masks) and the evaluate step, on a model directory given by the user, e.g. one
 * trained elsewhere from this toolkit's export. Its nodes have the configs of a training pipeline's test
 * nodes, so the numbers are computed exactly as the pipelines compute theirs.
 */
import type { DataFormat } from "../src/data/formats.ts";
import { generationLocatorProblem } from "../src/data/formats.ts";
import type { LocatorSpec } from "../src/data/locate.ts";
import { TOKENIZER_COMPANIONS } from "../src/data/tokenizer_files.ts";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { InvalidConfig } from "../src/errors.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { evaluateStep } from "../src/steps/evaluate.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { DEFAULT_MAX_LENGTH, DEFAULT_MAX_NEW_TOKENS, TEMPLATE } from "./data.ts";

export interface EvalOptions {
  /** A Hugging Face checkpoint directory. */
  readonly model: string;
  /** A LoRA adapter (PEFT layout) on `model`, merged into it before evaluation. */
  readonly adapter?: string;
  /** The tokenizer file (tokenizer.json, or vocab.json beside merges.txt), usually the model's own. */
  readonly tokenizer: string;
  readonly data: string;
  readonly format: DataFormat;
  readonly locator?: LocatorSpec;
  readonly maxLength?: number;
  readonly maxNewTokens?: number;
  /** Rows without a findable key, or whose key maxLength cuts off: "fail" (default) or "drop". */
  readonly onMissingKey?: "drop" | "fail";
  readonly onTruncatedKey?: "drop" | "fail";
  /** Generations per prompt; with more than one, `temperature` must be above 0. */
  readonly samples?: number;
  readonly temperature?: number;
  readonly seed?: number;
  /** RFTT's test-time search: functional-token MCTS rollouts per prompt, voted over (src/steps/evaluate.ts). */
  readonly rollouts?: number;
  /** Sequences generated at once (default 50). */
  readonly batchSize?: number;
}

/** Throws InvalidConfig when the evaluation could not extract answers from what the model generates. */
export const build = (opts: EvalOptions) => {
  const problem = generationLocatorProblem(opts.format, opts.locator);
  if (problem) throw new InvalidConfig({ where: "--locator", reason: problem });
  const p = new PipelineBuilder("eval", "generation-based evaluation of a checkpoint");
  const locator = opts.locator ? { locator: opts.locator } : {};
  const tokenizer = p.source("tokenizer", opts.tokenizer, { companions: TOKENIZER_COMPANIONS });
  const model = p.source("model", opts.model);
  const adapter = opts.adapter !== undefined ? p.source("adapter", opts.adapter) : undefined;
  const data = p.source("test-data", opts.data);
  const examples = p.add("test-keys", locateKeyStep, {
    format: opts.format,
    ...locator,
    onMissingKey: opts.onMissingKey ?? "fail",
  }, { data });
  const tokens = p.add("test-tokens", tokeniseStep, {
    template: TEMPLATE,
    maxLength: opts.maxLength ?? DEFAULT_MAX_LENGTH,
    onTruncatedKey: opts.onTruncatedKey ?? "fail",
  }, { examples, tokenizer });
  const testSet = p.add("test-set", buildMasksStep, { mask: { kind: "key" } }, { tokens });
  // Sampling settings only when asked for: a greedy evaluation has the pipelines' evaluate config.
  const sampling = opts.rollouts !== undefined
    ? {
      rollouts: opts.rollouts,
      ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
      seed: opts.seed ?? 0,
    }
    : opts.samples !== undefined || opts.temperature !== undefined
    ? { samples: opts.samples ?? 1, temperature: opts.temperature ?? 0, seed: opts.seed ?? 0 }
    : {};
  p.add("eval-model", evaluateStep, {
    format: opts.format,
    ...locator,
    maxNewTokens: opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
    batchSize: opts.batchSize ?? 50,
    ...sampling,
  }, { model, data: testSet, tokenizer, ...(adapter ? { adapter } : {}) });
  return p.build();
};
