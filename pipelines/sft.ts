/**
 * Plain supervised fine-tuning: the baseline every selective method is compared with. Loss on every
 * response token for as many optimizer steps as SFTKey's two stages together, so the comparison is fair
 * in compute.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { budget, type Data, evaluate, type PipelineOptions, prepareData, train } from "./common.ts";

export const addSft = (p: PipelineBuilder, data: Data) => {
  const b = budget(data);
  const model = train(p, "sft", data, { kind: "response" }, data.base, {
    ...b.train,
    steps: b.stageOneSteps + b.stageTwoSteps,
  });
  evaluate(p, "sft", model, data);
  return model;
};

export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder("sft", "plain SFT on the whole response");
  addSft(p, prepareData(p, opts));
  return p.build();
};
