/**
 * DFT — Dynamic Fine-Tuning, from "On the Generalization of SFT: A Reinforcement Learning Perspective with
 * Reward Rectification" (Wu et al., arXiv 2508.05629).
 *
 * Read as policy gradient, the SFT gradient weights every gold token by 1/p(y_t): an implicit reward that
 * is largest where the model is least likely to produce the token. DFT rectifies it by multiplying each
 * token's loss by its own probability under a stop-gradient, L = -sum_t sg(p(y_t)) log p(y_t)
 * (src/train/objectives.ts "dft"). Everything else is SFT: the same tokens (the whole response), the same
 * optimizer steps and learning rate as the SFT baseline, from the same starting point.
 *
 * Deviation: the paper fine-tunes pretrained models; on the embedded fixtures the model starts from
 * scratch, where p(y_t) is about 1/vocab at first and DFT's steps are correspondingly small.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { type Method, runMethods, train } from "./method_context.ts";
import { sft } from "./sft.ts";

export const dft: Method = (ctx) => ({
  dft: train(ctx, "dft", { kind: "response" }, ctx.data.base, {
    ...ctx.budget.train,
    steps: ctx.budget.stageOneSteps + ctx.budget.stageTwoSteps,
    objective: "dft",
  }),
});

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder("dft", "DFT (loss -sg(p) log p on every response token) vs SFT");
  runMethods(p, prepareData(p, opts), [dft, sft]);
  return p.build();
};
