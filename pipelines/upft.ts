/**
 * UPFT — "The First Few Tokens Are All You Need: An Efficient and Effective Unsupervised Prefix
 * Fine-Tuning Method for Reasoning Models" (Ji et al., arXiv 2503.02875).
 *
 * Different solutions to one question share their first steps, so training on a short prefix of a
 * solution teaches how to start reasoning at a fraction of the cost. On a share p of the examples
 * (default 90%) the loss covers only the first k response tokens and the prompt carries the paper's
 * instruction asking for the initial step only; on the rest the loss covers the whole response so the
 * model still learns where solutions end (src/steps/upft_data.ts).
 *
 * Two settings:
 * - `upft`: the gold responses;
 * - `upftSelf`: the paper's unsupervised setting, the model's own responses, one sample per question,
 *   not verified (src/steps/sample_responses.ts).
 *
 * Deviations, and why:
 * - the paper fine-tunes a model that can already reason. Here the method fine-tunes the pipeline's
 *   SFT warm-up (SFTKey's stage one, shared through the cache) for SFTKey's stage-two budget, and samples
 *   from it in the unsupervised setting; a model trained from scratch could not produce a solution to
 *   sample;
 * - k defaults to 8, the low end of the paper's range (8 to 128), because the fixture responses are
 *   about 24 tokens long;
 * - the paper's instruction is 140 tokens under the fixtures' tokenizer, more than the tiny model's 128
 *   positions leave room for, so a model trained from scratch gets the short SHORT_INSTRUCTION; with a
 *   base model (--model) the paper's own wording is used;
 * - the sampling temperature (0.7) is our choice;
 * - with --quick the unsupervised setting samples QUICK_SAMPLES examples only (smoke runs).
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { sampleResponsesStep } from "../src/steps/sample_responses.ts";
import { UPFT_INSTRUCTION, upftDataStep } from "../src/steps/upft_data.ts";
import type { NodeRef } from "../src/engine/pipeline.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import {
  answerJudging,
  type Method,
  type MethodContext,
  responseStage,
  runMethods,
  trainOn,
} from "./method_context.ts";
import { sft } from "./sft.ts";

/** With --quick, only this many examples are sampled (and trained on) in the unsupervised setting. */
export const QUICK_SAMPLES = 256;

/** The instruction for models without room for the paper's (see the file comment). */
export const SHORT_INSTRUCTION = "Give the initial step.";

export interface UpftOptions {
  /** Response tokens trained on prefix examples. */
  readonly k?: number;
  /** Share of examples trained on their prefix. */
  readonly share?: number;
  /** Train on the model's own samples instead of the gold responses. */
  readonly selfSampled?: boolean;
  readonly instruction?: string;
  readonly temperature?: number;
}

export const upftWith = (opts: UpftOptions = {}): Method => (ctx: MethodContext) => {
  const b = ctx.budget;
  const label = opts.selfSampled ? "upft-self" : "upft";
  const warm = responseStage(ctx, `${label}-stage-one`);
  let responses: NodeRef = ctx.data.trainTokens;
  if (opts.selfSampled) {
    responses = ctx.p.add(ctx.name(`${label}-samples`), sampleResponsesStep, {
      ...answerJudging(ctx),
      batchSize: 64,
      temperature: opts.temperature ?? 0.7,
      seed: ctx.seed,
      maxExamples: ctx.data.options.quick ? QUICK_SAMPLES : undefined,
    }, { model: warm, data: ctx.data.trainTokens, tokenizer: ctx.data.tokenizer });
  }
  const data = ctx.p.add(ctx.name(`${label}-data`), upftDataStep, {
    k: opts.k ?? 8,
    share: opts.share ?? 0.9,
    seed: ctx.seed,
    instruction: opts.instruction ?? (ctx.data.base ? UPFT_INSTRUCTION : SHORT_INSTRUCTION),
    // The instruction counts toward --max-length: an example it pushes past fails with its file:line.
    maxLength: ctx.data.options.maxLength,
  }, { tokens: responses, tokenizer: ctx.data.tokenizer });
  const tuned = trainOn(ctx, label, data, warm, {
    ...b.train,
    steps: b.stageTwoSteps,
    lr: b.stageTwoLr,
    warmupSteps: b.stageTwoWarmupSteps,
  });
  return { [label]: tuned };
};

export const upft: Method = upftWith();
export const upftSelf: Method = upftWith({ selfSampled: true });

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder("upft", "UPFT (prefix fine-tuning; gold and self-sampled responses) vs SFT");
  runMethods(p, prepareData(p, opts), [upft, upftSelf, sft]);
  return p.build();
};
