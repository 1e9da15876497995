/**
 * SFTKey — "Rethinking Supervised Fine-Tuning: Emphasizing Key Answer Tokens for Improved LLM Accuracy"
 * (Shi, Kou, Li, Zhou; arXiv 2512.21017).
 *
 * Stage one is ordinary SFT on the whole response, chain of thought and answer, so the model learns the
 * output format. Stage two continues from stage one with the loss on the key part only: the tokens after
 * the thinking part (`<Answer>...</Answer>` and EOS in the tag format, the `#### ` line in GSM8K).
 * Both stages are evaluated.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { type Method, runMethods, train } from "./method_context.ts";
import { sft } from "./sft.ts";

/** SFTKey: stage one on the whole response, stage two from it on the answer part only. */
export const sftkey: Method = (ctx) => {
  const b = ctx.budget;
  // Stage one: every response token (thinking and answer) carries weight 1.
  const stageOne = train(ctx, "sftkey-stage-one", { kind: "response" }, ctx.data.base, {
    ...b.train,
    steps: b.stageOneSteps,
  });
  // Stage two: from stage one, loss on the answer part only.
  const stageTwo = train(ctx, "sftkey-stage-two", { kind: "answer" }, stageOne, {
    ...b.train,
    steps: b.stageTwoSteps,
    lr: b.stageTwoLr,
    warmupSteps: 0,
  });
  return { "sftkey-stage-one": stageOne, "sftkey-stage-two": stageTwo };
};

/** The default pipeline: SFTKey and, for comparison, plain SFT with the same number of optimizer steps. */
export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "sftkey",
    "SFTKey (stage one: whole response; stage two: answer only) vs SFT",
  );
  runMethods(p, prepareData(p, opts), [sftkey, sft]);
  return p.build();
};
