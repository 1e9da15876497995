/**
 * S3FT — "Selective Self-to-Supervised Fine-Tuning for Generalization in Large Language Models" (Gupta et
 * al., arXiv 2502.08130).
 *
 * Many questions have several correct responses, and a model trained on its own correct wording drifts
 * less from what it already knows. For each training prompt the model generates a response; if the judge
 * (answer match) accepts it the example trains on it; otherwise on the model's paraphrase of the gold
 * response when the judge accepts that; otherwise on the gold response (src/steps/s3ft_select.ts).
 *
 * Deviation, and why: the paper starts from an instruction-tuned model. Here the model that generates and
 * is then fine-tuned is the pipeline's SFT warm-up (SFTKey's stage one, shared through the cache), for
 * SFTKey's stage-two budget. With --quick only QUICK_EXAMPLES examples are used, to keep smoke runs short.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { PARAPHRASE_TEMPLATE, s3ftSelectStep } from "../src/steps/s3ft_select.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { answerJudging, type Method, responseStage, runMethods, trainOn } from "./method_context.ts";
import { sft } from "./sft.ts";

/** With --quick, targets are selected for (and trained on) this many examples only. */
export const QUICK_EXAMPLES = 256;

export const s3ft: Method = (ctx) => {
  const b = ctx.budget;
  const warm = responseStage(ctx, "s3ft-stage-one");
  const targets = ctx.p.add(ctx.name("s3ft-targets"), s3ftSelectStep, {
    ...answerJudging(ctx),
    batchSize: 64,
    paraphraseTemplate: PARAPHRASE_TEMPLATE,
    seed: ctx.seed,
    maxExamples: ctx.data.options.quick ? QUICK_EXAMPLES : undefined,
  }, { model: warm, data: ctx.data.trainTokens, tokenizer: ctx.data.tokenizer });
  return {
    s3ft: trainOn(ctx, "s3ft", targets, warm, {
      ...b.train,
      steps: b.stageTwoSteps,
      lr: b.stageTwoLr,
      warmupSteps: b.stageTwoWarmupSteps,
    }),
  };
};

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "s3ft",
    "S3FT (own correct responses, else accepted paraphrases, else gold) vs SFT",
  );
  runMethods(p, prepareData(p, opts), [s3ft, sft]);
  return p.build();
};
