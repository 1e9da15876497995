/**
 * Plain supervised fine-tuning: the baseline every selective method is compared with. Loss on every
 * response token for as many optimizer steps as SFTKey's two stages together, so the comparison is fair
 * in compute.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { type Method, runMethods, train } from "./method_context.ts";

/** Plain SFT on every response token for both stages' steps together. */
export const sft: Method = (ctx) => ({
  sft: train(ctx, "sft", { kind: "response" }, ctx.data.base, {
    ...ctx.budget.train,
    steps: ctx.budget.stageOneSteps + ctx.budget.stageTwoSteps,
  }),
});

/** The SFT baseline alone. */
export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder("sft", "plain SFT on the whole response");
  runMethods(p, prepareData(p, opts), [sft]);
  return p.build();
};
