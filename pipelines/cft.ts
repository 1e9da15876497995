/**
 * CFT — Critical Token Fine-Tuning, "Enhancing Large Language Model Reasoning via Critical Token
 * Fine-Tuning" (arXiv 2510.10974).
 *
 * Most tokens of a correct solution could be replaced without changing the outcome; a few decide it.
 * CFT finds those by counterfactual perturbation: in each of the model's own correct greedy solutions,
 * every token is replaced by the model's 2nd and 3rd most probable alternatives and the model continues
 * greedily; a token is critical when every replacement makes the answer wrong. Fine-tuning then puts the
 * loss on the critical tokens only (src/steps/critical_tokens.ts).
 *
 * Deviations, and why: the paper searches a pretrained model's solutions. Here the model searched and
 * then fine-tuned is the pipeline's SFT warm-up (SFTKey's stage one, shared through the cache), for
 * SFTKey's stage-two budget; a model trained from scratch has no correct solution to search. The search
 * examines a seeded subset of the training set (MAX_EXAMPLES, fewer with --quick): each correct solution
 * of about 24 tokens costs 24 to 48 greedy continuations, and those ran at about 20 per second on the
 * 2-core CI machine (batches of 128, measured with the shipped tiny model).
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { criticalTokensStep } from "../src/steps/critical_tokens.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { answerJudging, type Method, responseStage, runMethods, trainOn } from "./method_context.ts";
import { sft } from "./sft.ts";

/** Examples searched for critical tokens (full / --quick). */
export const MAX_EXAMPLES = { full: 128, quick: 32 };

export const cft: Method = (ctx) => {
  const b = ctx.budget;
  const warm = responseStage(ctx, "cft-stage-one");
  const critical = ctx.p.add(ctx.name("cft-critical-tokens"), criticalTokensStep, {
    ...answerJudging(ctx),
    batchSize: 128,
    alternatives: 2,
    maxExamples: ctx.data.options.quick ? MAX_EXAMPLES.quick : MAX_EXAMPLES.full,
    seed: ctx.seed,
  }, { model: warm, data: ctx.data.trainTokens, tokenizer: ctx.data.tokenizer });
  return {
    cft: trainOn(ctx, "cft", critical, warm, {
      ...b.train,
      steps: b.stageTwoSteps,
      lr: b.stageTwoLr,
      warmupSteps: b.stageTwoWarmupSteps,
    }),
  };
};

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "cft",
    "CFT (loss on counterfactually critical tokens of own solutions) vs SFT",
  );
  runMethods(p, prepareData(p, opts), [cft, sft]);
  return p.build();
};
