/**
 * SFT objectives from f-divergences, and SFT with a reduced learning rate, from "Implicit Reward as the
 * Bridge: A Unified View of SFT and DPO Connections" (Wang et al., arXiv 2507.00018).
 *
 * The paper reads SFT as minimising a divergence between the data distribution and the policy; with the
 * KL divergence the term that should keep the policy near its starting point drops out of the gradient,
 * and it proposes (1) simply lowering SFT's learning rate and (2) replacing KL by other f-divergences.
 * Per token, with P one-hot at the gold token and q the model's probability of it,
 * D_f(P || Q) = q f(1/q) + (1 - q) f(0): total variation 1 - q, Pearson chi^2 1/q - 1, squared Hellinger
 * 2 - 2 sqrt(q), Jensen-Shannon (see src/train/objectives.ts for the forms and where they come from);
 * KL gives -log q, which is the SFT baseline itself.
 *
 * Each variant trains on every response token with the SFT baseline's steps and learning rate; only the
 * objective differs. `sftLowLr` is SFT with the peak learning rate multiplied by LOW_LR_FACTOR.
 *
 * Deviations: only the paper's abstract was reachable from our machines, so the reduction factor (0.1)
 * is our choice, not a number taken from the paper; the paper applies the method after DPO on pretrained
 * models, here the models start from the pipeline's base (from scratch on the embedded fixtures).
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import type { Objective } from "../src/train/objectives.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { type Method, runMethods, train } from "./method_context.ts";
import { sft } from "./sft.ts";

/** The f-divergences other than KL (KL is plain SFT). */
export const DIVERGENCES: ReadonlyArray<Exclude<Objective, "ce" | "dft">> = ["tv", "chi2", "hellinger", "js"];

/** SFT with one f-divergence objective per entry of `divergences`, labelled fdiv-<name>. */
export const fdivWith = (divergences: ReadonlyArray<Objective>): Method => (ctx) =>
  Object.fromEntries(divergences.map((objective) => [
    `fdiv-${objective}`,
    train(ctx, `fdiv-${objective}`, { kind: "response" }, ctx.data.base, {
      ...ctx.budget.train,
      steps: ctx.budget.stageOneSteps + ctx.budget.stageTwoSteps,
      objective,
    }),
  ]));

export const fdiv: Method = fdivWith(DIVERGENCES);

/** The learning-rate reduction applied to SFT's peak learning rate. */
export const LOW_LR_FACTOR = 0.1;

export const sftLowLr: Method = (ctx) => ({
  "sft-lowlr": train(ctx, "sft-lowlr", { kind: "response" }, ctx.data.base, {
    ...ctx.budget.train,
    steps: ctx.budget.stageOneSteps + ctx.budget.stageTwoSteps,
    lr: ctx.budget.train.lr * LOW_LR_FACTOR,
  }),
});

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "fdiv",
    "SFT with f-divergence objectives and with a reduced learning rate vs SFT",
  );
  runMethods(p, prepareData(p, opts), [fdiv, sftLowLr, sft]);
  return p.build();
};
