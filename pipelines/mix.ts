/**
 * Mixed masks: masks are float weights, and weighted sums of masks are masks. A variant of SFTKey
 * (arXiv 2512.21017) whose second stage, instead of training on the answer part only, weights it
 *
 *   lambda * response + (1 - lambda) * answer
 *
 * so thinking tokens carry weight lambda and answer tokens weight 1 (lambda = 0 is SFTKey's stage two,
 * lambda = 1 is more plain SFT). Stage one is SFTKey's own: the same node config and inputs, so the
 * cache trains it once when both methods run in one pipeline.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { type PipelineOptions, prepareData } from "./data.ts";
import { type Method, responseStage, runMethods, train } from "./method_context.ts";
import { sft } from "./sft.ts";
import { sftkey } from "./sftkey.ts";

export const DEFAULT_LAMBDA = 0.5;

export const mixWith = (lambda: number): Method => (ctx) => {
  if (!(lambda >= 0 && lambda <= 1)) throw new RangeError(`mix: lambda must be in [0, 1], got ${lambda}`);
  const b = ctx.budget;
  const stageOne = responseStage(ctx, "mix-stage-one");
  const stageTwo = train(
    ctx,
    `mix${lambda}-stage-two`,
    {
      kind: "mix",
      parts: [
        { weight: lambda, mask: { kind: "response" } },
        { weight: 1 - lambda, mask: { kind: "answer" } },
      ],
    },
    stageOne,
    { ...b.train, steps: b.stageTwoSteps, lr: b.stageTwoLr, warmupSteps: b.stageTwoWarmupSteps },
  );
  return { [`mix${lambda}`]: stageTwo };
};

export const mix: Method = mixWith(DEFAULT_LAMBDA);

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "mix",
    "SFTKey with a mixed stage-two mask (lambda * response + (1 - lambda) * answer) vs SFTKey and SFT",
  );
  runMethods(p, prepareData(p, opts), [mix, sftkey, sft]);
  return p.build();
};
